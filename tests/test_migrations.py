"""The migrations build exactly the models' schema, go down and up again, and keep the ledger append-only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, inspect, pool, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from api.db import sync_url
from api.migrate import alembic_config, model_differences, upgrade
from api.models import Base, Contract, Customer, LedgerEntry, LedgerKind, PlanRecord, ProgramRecord
from tests.conftest import NOW

TABLES = set(Base.metadata.tables)


@pytest.fixture
def fresh_url(database_factory) -> str:  # type: ignore[no-untyped-def]
    return database_factory.new()


@pytest.fixture
def engine(fresh_url: str) -> Iterator[Engine]:
    upgrade(fresh_url)
    engine = create_engine(sync_url(fresh_url), poolclass=pool.NullPool)
    yield engine
    engine.dispose()


def tables(url: str) -> set[str]:
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def assert_models_match(url: str) -> None:
    differences = model_differences(url)
    assert differences == [], (
        "the models and the migrations differ; run `alembic revision --autogenerate -m '...'`, "
        f"review the new file in migrations/versions/ and commit it: {differences}"
    )


def test_migrations_build_the_models_schema(fresh_url):
    assert tables(fresh_url) == set()
    upgrade(fresh_url)
    assert TABLES <= tables(fresh_url)
    assert_models_match(fresh_url)


def test_downgrade_to_base_and_upgrade_again(fresh_url, engine):
    command.downgrade(alembic_config(fresh_url), "base")
    assert tables(fresh_url) <= {"alembic_version"}
    upgrade(fresh_url)
    assert TABLES <= tables(fresh_url)
    assert_models_match(fresh_url)
    # The append-only guard came back with the table.
    entry_id = _ledger_entry(engine)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_entries WHERE id = :id"), {"id": _bind_id(engine, entry_id)})


def test_model_differences_notices_a_schema_drift(fresh_url, engine):
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_contracts_customer_id"))
    assert model_differences(fresh_url) != []


def _bind_id(engine: Engine, ident: uuid.UUID) -> object:
    # Uuid is CHAR(32) hex on SQLite and a native uuid on PostgreSQL.
    return ident.hex if engine.dialect.name == "sqlite" else ident


def _ledger_entry(engine: Engine) -> uuid.UUID:
    """One customer, program, plan, contract and ledger entry, written through the ORM."""
    with Session(engine) as session, session.begin():
        customer = Customer(code="raw", name="Raw", created_at=NOW)
        program = ProgramRecord(
            code="raw", name="Raw", provider="Raw", version="1", document={}, source="", source_sha256="0" * 64,
            source_file="raw.toml", loaded_at=NOW,
        )
        session.add_all([customer, program])
        session.flush()
        plan = PlanRecord(program_id=program.id, code="basic", name="Basic")
        session.add(plan)
        session.flush()
        contract = Contract(
            reference="RAW-1", customer_id=customer.id, plan_id=plan.id, effective_date=date(2026, 1, 1),
            end_date=date(2026, 12, 31), monthly_fee=Decimal("1.00"), currency="EUR", custom_allowances={},
            created_at=NOW,
        )
        session.add(contract)
        session.flush()
        entry = LedgerEntry(
            contract_id=contract.id, bucket_code="activities", period_start=date(2026, 1, 1),
            period_end=date(2026, 3, 31), quantity=2, kind=LedgerKind.CONSUME, reason="raw", actor_kind="system",
            actor_ref="tests", request_hash="0" * 64, created_at=NOW,
        )
        session.add(entry)
        session.flush()
        return entry.id


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET quantity = 1 WHERE id = :id",
        "UPDATE ledger_entries SET reason = 'rewritten'",
        "DELETE FROM ledger_entries WHERE id = :id",
        "DELETE FROM ledger_entries",
    ],
)
def test_the_database_refuses_to_change_ledger_entries(engine, statement):
    entry_id = _ledger_entry(engine)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement), {"id": _bind_id(engine, entry_id)})
    with Session(engine) as session:
        entry = session.scalar(select(LedgerEntry).where(LedgerEntry.id == entry_id))
        assert entry is not None
        assert (entry.quantity, entry.reason) == (2, "raw")
    # Appending is still allowed.
    with Session(engine) as session, session.begin():
        session.add(
            LedgerEntry(
                contract_id=entry.contract_id, bucket_code="activities", period_start=date(2026, 1, 1),
                period_end=date(2026, 3, 31), quantity=-2, kind=LedgerKind.REVERSE, reason="undo",
                actor_kind="system", actor_ref="tests", request_hash="1" * 64, reverses_entry_id=entry_id,
                created_at=NOW,
            )
        )
    with Session(engine) as session:
        assert session.scalar(select(LedgerEntry.quantity).where(LedgerEntry.reverses_entry_id == entry_id)) == -2


def test_processes_migrating_at_once_take_turns(fresh_url, database_factory):  # type: ignore[no-untyped-def]
    """Every web process runs `entitle migrate` as it starts: three at once on a fresh database all succeed
    (on PostgreSQL one migrates while the others wait on an advisory lock; SQLite serializes its writers)."""
    import subprocess
    import sys

    command_line = [sys.executable, "-c", "import sys; from api.migrate import upgrade; upgrade(sys.argv[1])", fresh_url]
    runs = [subprocess.Popen(command_line, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(3)]
    outputs = [run.communicate(timeout=300)[0].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    assert_models_match(fresh_url)
