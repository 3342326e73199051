"""A large, realistic data set for benchmarks: `entitle generate --customers N` fills a migrated database
with N customers on the loaded programs (the shipped ones, loaded first if none is) and three years of their
history, consistent with every rule the services enforce (the ledger reconciles, balances stay within their
allowance, tickets replay through the SLA clocks), written in bulk: COPY on PostgreSQL, executemany on SQLite.

At N = 10,000: about 12,000 contracts, 1,000,000 tickets with their events and comments, 3,000,000 ledger
entries. The same seed, size, years and `now` give the same rows, ids included.

The load is one transaction: the big tables' indexes and key and foreign-key constraints are dropped at its
start and put back (checking every row) at its end, so a failure leaves the database as it was, and other
sessions wait on those tables meanwhile. Worker processes build the rows and make them ready to
write (binary COPY data for PostgreSQL, converted values for SQLite) while this process writes the previous
batch."""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

import psycopg
from argon2 import PasswordHasher
from argon2.low_level import Type, hash_secret
from sqlalchemy import inspect, select

from api.generate.bulk import BackgroundWriter, BulkWriter, Prepared, column_types, connect_postgresql, prepare
from api.generate.rows import COLUMNS, TABLE_ORDER, RowSet
from api.generate.world import World, WorldSpec
from api.models import Customer
from api.programs.loader import read_program_file
from api.services import programs
from api.services.context import Actor, AppContext
from api.services.errors import Conflict, ValidationFailed

__all__ = ["GENERATED_PASSWORD", "GenerateReport", "generate"]

ACTOR = Actor.system("generate")
# Every generated user (staff, customers, partners) logs in with it: for benchmarks, never for production.
GENERATED_PASSWORD = "generated-password-2026"
# Customers per batch: small enough to keep memory flat, large enough for COPY to pay.
BATCH = 50
# The tables whose indexes and constraints are rebuilt after the load rather than maintained row by row.
RELAXED = ("tickets", "ticket_events", "ticket_comments", "time_entries", "ledger_entries", "bookings", "audit_log")

Progress = Callable[[int, int], None]


@dataclass
class GenerateReport:
    customers: int
    seed: int
    years: int
    now: datetime
    database: str
    workers: int
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    write_seconds: dict[str, float] = field(default_factory=dict)  # time spent sending each table
    finish_seconds: float = 0.0  # indexes and constraints put back and checked, commit, statistics

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def _password_hash(seed: int) -> str:
    """An argon2 hash of GENERATED_PASSWORD with the library's parameters and a salt from the seed, so a
    run is reproducible to the byte; one hash for every user (hashing is slow on purpose)."""
    params = PasswordHasher()
    salt = hashlib.sha256(f"entitle-generate:{seed}".encode()).digest()[: params.salt_len]
    return hash_secret(
        GENERATED_PASSWORD.encode(), salt, time_cost=params.time_cost, memory_cost=params.memory_cost,
        parallelism=params.parallelism, hash_len=params.hash_len, type=Type.ID,
    ).decode()


async def _check_schema(ctx: AppContext) -> None:
    """Every column the generator fills must exist: the database is migrated to the code's schema."""

    def missing(connection) -> list[str]:  # type: ignore[no-untyped-def]
        inspector = inspect(connection)
        found = []
        for table in TABLE_ORDER:
            have = {column["name"] for column in inspector.get_columns(table)} if inspector.has_table(table) else set()
            found += [f"{table}.{name}" for name in COLUMNS[table] if name not in have]
        return found

    async with ctx.db.engine.connect() as connection:
        absent = await connection.run_sync(missing)
    if absent:
        raise ValidationFailed(
            f"the database lacks {', '.join(absent[:5])}{' …' if len(absent) > 5 else ''}: run `entitle migrate` first"
        )


async def _plan_specs(ctx: AppContext) -> list[tuple[Any, ...]]:
    """(program code, plan code, plan id, program id, program document) of every loaded plan; the shipped
    programs are loaded first if none is."""
    loaded = await programs.list_programs(ctx, ACTOR)
    if not loaded:
        parsed = [read_program_file(path) for path in sorted(ctx.settings.programs_dir.glob("*.toml"))]
        await programs.load_programs(ctx, ACTOR, parsed)
        loaded = await programs.list_programs(ctx, ACTOR)
    return sorted(
        (record.code, view.record.code, view.record.id, record.id, record.document)
        for record, views in loaded
        for view in views
    )


# ---- worker processes (PostgreSQL) ---------------------------------------------------------------------

_worker: dict[str, Any] = {}


@contextmanager
def _collecting_per_batch() -> Iterator[None]:
    """Automatic garbage collection off: a batch keeps millions of objects alive, which every automatic
    collection would scan again (it cost more than building the rows); `gc.collect()` runs once per batch."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _start_worker(spec: WorldSpec, dialect: str, url: str, types: dict[str, list[int]] | None) -> None:
    gc.disable()  # see _collecting_per_batch: this process only builds batches
    _worker["world"] = spec.build()[0]
    _worker["dialect"] = dialect
    _worker["types"] = types
    if dialect == "postgresql":
        _worker["connection"] = connect_postgresql(url)  # lends its adapters to format COPY data; sends nothing


def _make_batch(first: int, last: int) -> tuple[int, Prepared, dict[str, int]]:
    gc.collect()
    world: World = _worker["world"]
    rows = RowSet()
    for index in range(first, last):
        world.customer_rows(index, rows)
    connection: psycopg.Connection | None = _worker.get("connection")
    prepared = prepare(rows, dialect=_worker["dialect"], cursor=connection and connection.cursor(),
                       types=_worker["types"])
    return last - first, prepared, rows.counts()


# ---- the run ---------------------------------------------------------------------------------------------


async def generate(
    ctx: AppContext, *, customers: int, seed: int = 1, years: int = 3, progress: Progress | None = None,
    batch: int = BATCH, workers: int | None = None,
) -> GenerateReport:
    """Fill the database of `ctx` (migrated; it must hold no generated customers yet) with `customers`
    customers and `years` years of history up to `ctx.now()`, in one transaction on a connection of its own.
    `workers` processes (default: one per CPU) build the rows while this one writes; with one worker this
    process builds them while a thread writes. It blocks the event loop while it runs."""
    if customers < 1:
        raise ValueError("generate at least one customer")
    if not 1 <= years <= 10:
        raise ValueError("years must be 1 to 10")
    started = time.perf_counter()
    await _check_schema(ctx)
    async with ctx.db.read() as session:
        if await session.scalar(select(Customer.id).where(Customer.code.like("gen-%")).limit(1)) is not None:
            raise Conflict("this database already holds generated customers (codes gen-…): generate into a fresh one")
    spec = WorldSpec(seed, customers, years, ctx.now(), await _plan_specs(ctx), _password_hash(seed))
    world, global_rows = spec.build()
    url = ctx.db.sync_url.render_as_string(hide_password=False)
    workers = max(1, workers or os.cpu_count() or 1)
    report = GenerateReport(customers, seed, years, world.now_dt, ctx.db.dialect, workers)
    writer = BulkWriter(url, one_transaction=True)
    batches = [(first, min(first + batch, customers)) for first in range(0, customers, batch)]
    try:
        writer.relax(RELAXED)
        writer.write(global_rows)
        if workers > 1:
            _write_in_parallel(writer, spec, url, batches, workers, customers, progress)
        else:
            _write_in_turn(writer, world, batches, customers, progress)
        writer.finish(analyze=TABLE_ORDER)
    finally:
        writer.close()
    report.rows = dict(writer.written)
    report.write_seconds = dict(writer.seconds)
    report.finish_seconds = writer.finish_seconds
    report.seconds = time.perf_counter() - started
    return report


def _write_in_parallel(
    writer: BulkWriter, spec: WorldSpec, url: str, batches: list[tuple[int, int]], workers: int, customers: int,
    progress: Progress | None,
) -> None:
    """Workers build batches ahead (at most two each) and make them ready to write; this process writes them
    in order."""
    done = 0
    context = multiprocessing.get_context("spawn")
    types = column_types(writer.connection) if writer.dialect == "postgresql" else None
    with context.Pool(workers, initializer=_start_worker, initargs=(spec, writer.dialect, url, types)) as pool:
        waiting = iter(batches)
        pending = deque(pool.apply_async(_make_batch, b) for b in islice(waiting, 2 * workers))
        while pending:
            count, data, counts = pending.popleft().get()
            following = next(waiting, None)
            if following is not None:
                pending.append(pool.apply_async(_make_batch, following))
            writer.write_prepared(data, counts)
            done += count
            if progress is not None:
                progress(done, customers)


def _write_in_turn(
    writer: BulkWriter, world: World, batches: list[tuple[int, int]], customers: int, progress: Progress | None
) -> None:
    """This process builds each batch while a thread writes the one before."""
    done = 0

    def write(rows: RowSet) -> None:
        nonlocal done
        writer.write(rows)
        done += rows.customers
        if progress is not None:
            progress(done, customers)

    background = BackgroundWriter(write)
    try:
        with _collecting_per_batch():
            for first, last in batches:
                gc.collect()
                rows = RowSet()
                for index in range(first, last):
                    world.customer_rows(index, rows)
                rows.customers = last - first
                background.put(rows)
    finally:
        background.close()
