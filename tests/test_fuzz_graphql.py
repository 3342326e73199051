"""Fuzzing: operations generated from schema.graphql (hypothesis-graphql) posted to the app as a customer, its
partner and a read-only integrator, with a fixed budget. No answer may be a server error, carry an internal
message (or the generic one an unexpected error gets), or show a customer's caller anything of another customer.

The world lives in a database of its own: two customers, A and B, each with contracts on every kind of plan,
tickets with comments and time, bookings, ledger entries, a calendar feed, an outage, on-call days, report
contacts, a user, a partner linked to it alone and queued monthly reports. Everything of B's that has a name
carries "fzb", and every id of a row that belongs to B is known, so a leak is found by looking for them.

Generated values are drawn from what the world holds (every id of A's and B's, the programs' codes, months,
dates around "now", cursors) as well as at random, so the operations reach past "not found" into the services.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import tomllib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis_graphql import mutations, nodes, queries
from sqlalchemy import Table, inspect, select, update

from api.config import PROJECT_ROOT, Settings
from api.db import Database
from api.jobs.monthly_reports import queue_monthly_reports
from api.migrate import upgrade
from api.models import Base, OutboxMessage, OutboxStatus, StaffRole, TokenAccess, TokenScope, UserKind
from api.programs.loader import read_program_file
from api.services import (
    availability,
    bookings,
    calendar_feeds,
    contracts,
    deductions,
    identity,
    ledger,
    on_call,
    outbox,
    parties,
    programs,
    tickets,
)
from api.services.context import AppContext, FixedClock
from api.services.errors import DomainError
from tests.conftest import ADMIN, NOW, DatabaseFactory

SCHEMA = (PROJECT_ROOT / "schema.graphql").read_text(encoding="utf-8")
PASSWORD = "fuzzing password, long enough"

# The budget, set on each test below: a few operations on every root field for every caller (so each is
# reached, whatever the schema grows to), and a few dozen on many root fields at once. derandomize makes
# every run (and CI) try the same operations; no example database, so nothing is replayed from an earlier run.
BUDGET = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# ---- what an answer must never hold ---------------------------------------------------------------

# Internals: a stack trace, the ORM's or a driver's name, a server error page, an SQL statement.
INTERNAL = re.compile(
    r"Traceback|File \"|sqlalchemy|psycopg|aiosqlite|asyncpg|sqlite3|Internal Server Error|\[SQL:|"
    r"\(Background on this error|IntegrityError|OperationalError|ProgrammingError|DataError|"
    r"\b(?:SELECT|INSERT INTO|UPDATE|DELETE FROM)\b[\s\S]*\b(?:FROM|VALUES|SET|WHERE)\b",
    re.IGNORECASE,
)
# The answer an unexpected error gets (a generic message with a request id, code INTERNAL_ERROR), or a
# statement stopped by the database timeout: right answers from the service, but met by fuzzing on a world
# this small each is a bug to report, so here they fail.
UNEXPECTED = re.compile(
    r"unexpected error|internal (?:server )?error|request[ _-]?id|INTERNAL_ERROR|STATEMENT_TIMEOUT", re.IGNORECASE
)
B_MARKER = re.compile(r"fzb", re.IGNORECASE)
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


# ---- the world ------------------------------------------------------------------------------------


@dataclass
class Party:
    """One customer's side of the world, every name of it carrying `mark` (fza or fzb)."""

    mark: str
    customer_id: uuid.UUID
    partner_id: uuid.UUID
    contract_ids: list[uuid.UUID] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # ids the API gives out, to feed back in


@dataclass(repr=False)  # Hypothesis prints the arguments of a failing example: keep that short
class World:
    ctx: AppContext
    http: httpx.AsyncClient
    a: Party
    b: Party
    headers: dict[str, dict[str, str]]  # caller -> its credentials
    strings: list[str]  # values for String arguments besides random text
    b_ids: frozenset[str] = frozenset()  # every id of a row that belongs to B, as the API writes it
    scalars: dict[str, st.SearchStrategy[graphql.ValueNode]] = field(default_factory=dict)
    # Built once per root field (None: every root field): hypothesis-graphql caches per strategy object.
    strategies: dict[tuple[str, str | None], st.SearchStrategy[str]] = field(default_factory=dict)
    mutations_posted: int = 0

    def __repr__(self) -> str:
        return f"World(a={self.a.customer_id}, b={self.b.customer_id})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # Hypothesis's printer
        printer.text(repr(self))

    def operations(self, kind: str, root_field: str | None) -> st.SearchStrategy[str]:
        key = (kind, root_field)
        if key not in self.strategies:
            make = queries if kind == "query" else mutations
            fields = None if root_field is None else [root_field]
            self.strategies[key] = make(SCHEMA, fields=fields, custom_scalars=self.scalars)
        return self.strategies[key]


@pytest.fixture(scope="module")
def fuzz_database_url(database_factory: DatabaseFactory) -> str:
    """A database of this module's own: fuzzed mutations write there, never into the run's shared one."""
    url = database_factory.new()
    upgrade(url)
    return url


async def _party(ctx: AppContext, mark: str, manager_email: str) -> Party:
    upper = mark.upper()
    customer = await parties.create_customer(
        ctx, ADMIN,
        parties.NewCustomer(code=f"{mark}-customer", name=f"{upper} Industries", email=f"it@{mark}-corp.example"),
    )
    partner = await parties.create_partner(
        ctx, ADMIN,
        parties.NewPartner(code=f"{mark}-partner", name=f"{upper} Partner", email=f"desk@{mark}-partner.example"),
    )
    await parties.link_partner(
        ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=True,
        can_file_tickets=True, can_view_entitlements=True, can_book_activities=True,
    )
    await parties.set_report_contacts(ctx, ADMIN, customer.id, [f"reports@{mark}-corp.example"])
    party = Party(mark, customer.id, partner.id)

    async def contract(  # type: ignore[no-untyped-def]
        suffix: str, program: str, plan: str, effective: date, fee: str, currency: str, **extra: Any
    ):
        end = date(effective.year + 1, effective.month, effective.day) - timedelta(days=1)
        made = await contracts.create_contract(
            ctx, ADMIN,
            contracts.NewContract(
                reference=f"{upper}-{suffix}", customer_id=customer.id, program_code=program, plan_code=plan,
                effective_date=effective, end_date=end,
                monthly_fee=Decimal(fee), currency=currency, client_manager_email=manager_email, **extra,
            ),
        )
        party.contract_ids.append(made.id)
        return made

    # Filing takes the first contract by reference that offers the ticket type: the support one.
    await contract("1-SUPPORT", "partner-support", "enterprise", date(2026, 1, 1), "500.00", "EUR",
                             custom_allowances={"support-hours": 600})
    assure = await contract("2-ASSURE", "advisory-assure", "custom", date(2026, 1, 15), "900.00", "EUR",
                            custom_allowances={"activities": 1000})
    premium = await contract("3-PREMIUM", "premium-availability", "premium-16", date(2026, 1, 1), "2500.00", "EUR")
    tiered = await contract("4-TIERED", "tiered-support", "premium", date(2026, 1, 1), "18500.00", "DKK")

    # The ledger: consumption in February (the reported month) and this month, one reversed, one keyed.
    # Idempotency keys are the same for A and B: a key must never reach across contracts.
    entries = [
        await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(
            assure.id, "activities", Decimal(quantity), day, f"{upper} consumption {n}", idempotency_key=f"key-{n}"))
        for n, (quantity, day) in enumerate(((2, date(2026, 2, 10)), (1, date(2026, 3, 2)), (1, date(2026, 3, 3))))
    ]
    reversal = await ledger.reverse_entry(ctx, ADMIN, entries[2].entry.id, reason=f"{upper} reversal")

    ticket = await tickets.open_ticket(ctx, ADMIN, tickets.NewTicket(
        customer.id, "question", "standard", f"{upper} ticket subject", description=f"{upper} ticket description"))
    comment = await tickets.add_comment(ctx, ADMIN, ticket.id, f"{upper} staff reply")
    time_entry, _ = await deductions.log_time(ctx, ADMIN, ticket.id, 30, note=f"{upper} time note")

    booked = await bookings.book_activity(ctx, ADMIN, bookings.NewBooking(
        assure.id, "advisory-call", date(2026, 4, 1), note=f"{upper} booking note", partner_ids=[partner.id],
        idempotency_key="booking-key"))
    scheduled = await bookings.book_activity(ctx, ADMIN, bookings.NewBooking(
        assure.id, "code-review", date(2026, 3, 20), note=f"{upper} scheduled booking"))
    await bookings.schedule_booking(ctx, ADMIN, bookings.Schedule(
        scheduled.booking.id, datetime(2026, 3, 20, 9, tzinfo=UTC), staff_email=manager_email))
    feed, _secret = await calendar_feeds.create_feed(ctx, ADMIN, assure.id, f"{upper} feed")
    outage = await availability.record_outage(ctx, ADMIN, availability.NewOutage(
        datetime(2026, 2, 2, 10, tzinfo=UTC), datetime(2026, 2, 2, 11, tzinfo=UTC), Decimal("0.5"),
        note=f"{upper} outage note", contract_id=premium.id))
    reserved = await on_call.reserve_on_call(ctx, ADMIN, on_call.NewReservation(
        tiered.id, [date(2026, 3, 14), date(2026, 3, 21)], 1, Decimal(4000), note=f"{upper} on-call note"))
    user = await identity.create_user(ctx, ADMIN, identity.NewUser(
        email=f"someone@{mark}-corp.example", name=f"{upper} User", password=PASSWORD, kind=UserKind.CUSTOMER,
        customer_id=customer.id))
    delivery = await _failed_delivery(ctx, customer.id, mark)

    party.ids = [str(i) for i in (
        customer.id, partner.id, *party.contract_ids, *(e.entry.id for e in entries), reversal.entry.id, ticket.id,
        comment.id, time_entry.id, booked.booking.id, scheduled.booking.id, feed.id, outage.id,
        *(r.id for r in reserved), user.id, delivery,
    )]
    return party


async def _failed_delivery(ctx: AppContext, customer_id: uuid.UUID, mark: str) -> uuid.UUID:
    """A message to the customer left failed, as the sender leaves one after its last attempt."""
    recipient = outbox.Recipient("customer", f"{mark.upper()} IT", f"it@{mark}-corp.example")
    async with ctx.db.write() as session:
        [queued] = await outbox.queue_all(session, ctx, [outbox.Message(
            "fuzz.delivery", customer_id, f"{mark}-delivery", f"{mark.upper()} notice", f"{mark.upper()} text.",
            recipient)])
        await session.execute(update(OutboxMessage).where(OutboxMessage.id == queued).values(
            status=OutboxStatus.FAILED, attempts=6, failed_at=ctx.now(), last_error="SMTPDataError: (550, 'no')"))
    return queued


async def _owned_by(ctx: AppContext, roots: dict[str, set[Any]]) -> dict[str, set[Any]]:
    """Every row that belongs to the given customer and partner: the rows that point, through any chain of
    foreign keys, at a row already known to be theirs. Programs, plans and staff stay shared."""
    owned = {name: set(ids) for name, ids in roots.items()}
    async with ctx.db.read() as session:
        present = set(await session.run_sync(lambda s: inspect(s.connection()).get_table_names()))
        tables: list[Table] = [
            t for t in Base.metadata.sorted_tables if t.name in present and t.name not in ("programs", "plans")
        ]
        changed = True
        while changed:
            changed = False
            for table in tables:
                keys = [c for c in table.columns if c.foreign_keys]
                pointing = [(c, next(iter(c.foreign_keys)).column.table.name) for c in keys]
                pointing = [(c, target) for c, target in pointing if owned.get(target)]
                if not pointing or "id" not in table.columns:
                    continue
                for column, target in pointing:
                    found = set(await session.scalars(select(table.c.id).where(column.in_(owned[target]))))
                    if not found <= owned.setdefault(table.name, set()):
                        owned[table.name] |= found
                        changed = True
    return owned


async def b_rows(ctx: AppContext, b: Party) -> dict[str, frozenset[str]]:
    owned = await _owned_by(ctx, {"customers": {b.customer_id}, "partners": {b.partner_id}})
    async with ctx.db.read() as session:
        balances = Base.metadata.tables["entitlement_balances"]
        rows = await session.execute(select(balances).where(balances.c.contract_id.in_(owned["contracts"])))
        owned["entitlement_balances"] = {json.dumps(list(r), default=str) for r in rows}
    return {name: frozenset(str(i) for i in ids) for name, ids in owned.items()}


async def _cursors(http: httpx.AsyncClient, headers: dict[str, str], world_ids: dict[str, str]) -> list[str]:
    """End cursors of a few of each customer's lists, read by the integrator: fed back as `after`."""
    found: list[str] = []
    for contract in world_ids.values():
        answer = (await http.post("/graphql", headers=headers, json={"query": """
            query Run($c: ID!) { contract(id: $c) { ledger(first: 1) { pageInfo { endCursor } }
                                                   bookings(first: 1) { pageInfo { endCursor } } } }""",
            "variables": {"c": contract}})).json()
        node = (answer.get("data") or {}).get("contract") or {}
        found += [node[k]["pageInfo"]["endCursor"] for k in ("ledger", "bookings") if node.get(k)]
    for customer in world_ids:
        answer = (await http.post("/graphql", headers=headers, json={"query": """
            query Run($c: ID) { tickets(first: 1, filter: {customerId: $c}) { pageInfo { endCursor } } }""",
            "variables": {"c": customer}})).json()
        found.append(((answer.get("data") or {}).get("tickets") or {}).get("pageInfo", {}).get("endCursor"))
    return [c for c in found if c]


def _vocabulary() -> list[str]:
    """The codes the shipped programs use, and the values the API's free String arguments mean something for."""
    words: set[str] = set()

    def codes(value: Any) -> set[str]:  # a table's keys, or the codes of an array of tables
        if isinstance(value, dict):
            return set(value)
        return {str(item.get("code", "")) if isinstance(item, dict) else str(item) for item in value or ()}

    for path in sorted((PROJECT_ROOT / "programs").glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        words.add(data["code"])
        for part in ("calendars", "catalog", "out_of_scope", "out_of_support"):
            words |= codes(data.get(part))
        for code, plan in data.get("plans", {}).items():
            words.add(code)
            for part in ("buckets", "ticket_types", "severities", "add_ons", "out_of_scope", "out_of_support"):
                words |= codes(plan.get(part))
    words.update((
        "evenings", "weekends", "new", "acknowledged", "in_progress", "waiting_on_customer", "resolved", "closed",
        "reopened", "customer", "partner", "staff", "2026-01", "2026-02", "2026-03", "2026-04", "2025-12", "2027-01",
        "0000-00", "9999-12", "2026-13", "EUR", "DKK", "USD", "ledger.consume", "booking.create",
        "it@fza-corp.example", "someone@fza-corp.example", "manager@fuzz-provider.example", "",
    ))
    return sorted(w for w in words if w and not B_MARKER.search(w))


@pytest.fixture(scope="module")
async def world(database_factory: DatabaseFactory, fuzz_database_url: str) -> AsyncIterator[World]:
    from api.app import create_app

    database = Database(fuzz_database_url)
    settings_ = Settings(database_url=fuzz_database_url)
    ctx = AppContext(db=database, settings=settings_, clock=FixedClock(NOW))
    shipped = sorted((PROJECT_ROOT / "programs").glob("*.toml"))
    await programs.load_programs(ctx, ADMIN, [read_program_file(p) for p in shipped])
    manager = await identity.create_user(ctx, ADMIN, identity.NewUser(
        email="manager@fuzz-provider.example", name="Fuzz Manager", password=PASSWORD, kind=UserKind.STAFF,
        staff_role=StaffRole.CLIENT_MANAGER))
    a, b = await _party(ctx, "fza", manager.email), await _party(ctx, "fzb", manager.email)
    run = await queue_monthly_reports(ctx, date(2026, 2, 1))
    assert run.contracts >= 8, run

    async def token(scope: TokenScope, access: TokenAccess, **target: Any) -> dict[str, str]:
        new = identity.NewToken(f"fuzz {scope.value}", scope, access, **target)
        _, secret = await identity.create_token(ctx, ADMIN, new)
        return {"Authorization": f"Bearer {secret}"}

    headers = {
        "customer": await token(TokenScope.CUSTOMER, TokenAccess.READ_WRITE, customer_id=a.customer_id),
        "partner": await token(TokenScope.PARTNER, TokenAccess.READ_WRITE, partner_id=a.partner_id),
        "provider": await token(TokenScope.PROVIDER, TokenAccess.READ),
    }
    app = create_app(settings_, database=database, clock=FixedClock(NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        cursors = await _cursors(http, headers["provider"], {str(c): str(c) for c in a.contract_ids + b.contract_ids})
        made = World(ctx, http, a, b, headers, _vocabulary() + cursors)
        made.b_ids = frozenset().union(*(await b_rows(ctx, b)).values())
        assert set(b.ids) <= made.b_ids
        made.scalars = _scalars(made)
        yield made
    await database.dispose()


# ---- generated values -----------------------------------------------------------------------------


def _mix(*weighted: tuple[st.SearchStrategy[Any], int]) -> st.SearchStrategy[Any]:
    """One of the strategies, each as often as its weight says (st.one_of would take each alike)."""
    table = [strategy for strategy, weight in weighted for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(table.__getitem__)


def _scalars(w: World) -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    """Values for every scalar: mostly ones that mean something here (ids of both customers, codes, dates
    around now), and random ones."""
    a_ids, b_ids = st.sampled_from(w.a.ids), st.sampled_from(w.b.ids)
    unknown_ids = st.one_of(
        st.uuids().map(str), st.sampled_from(["0", "not-an-id", "", "00000000-0000-0000-0000-000000000000"])
    )
    ids = _mix((a_ids, 10), (b_ids, 6), (unknown_ids, 2))
    strings = _mix((st.sampled_from(w.strings), 8), (st.text(max_size=40), 2))
    days = _mix(
        (st.dates(date(2026, 3, 10), date(2026, 6, 30)), 6),
        (st.dates(date(2025, 12, 1), date(2027, 3, 31)), 2),
        (st.sampled_from([date.min, date.max, date(2000, 1, 1), date(2100, 12, 31), date(1970, 1, 1)]), 1),
    ).map(date.isoformat)
    instants = _mix(
        (st.datetimes(datetime(2026, 3, 10, 12), datetime(2026, 6, 30), timezones=st.just(UTC)).map(
            datetime.isoformat), 6),
        (st.sampled_from(["2026-03-10T12:00:00", "0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00"]), 1),
    )
    amounts = _mix(
        (st.sampled_from(["1", "2", "0", "-1", "0.5", "15", "30", "60", "4000", "1e3", "1E+2", "-0", "0.0000001",
                         "NaN", "-Infinity", "Infinity", "sNaN", "1e400", "12345678901234567890.5"]), 1),
        (st.decimals(min_value=-10000, max_value=10000, places=2, allow_nan=False).map(str), 1),
    )
    bad = st.sampled_from(["", "x", "2026-02-30", "2026-13-01", "2026-03-10T25:00:00+00:00", "1,5"])

    def scalar(values: st.SearchStrategy[str]) -> st.SearchStrategy[graphql.ValueNode]:
        # A malformed value rejects the whole document before it runs: rarely, so that most run.
        return _mix((values, 15), (bad, 1)).map(nodes.String)

    return {
        "Int": _mix((st.integers(-2, 250), 4), (st.integers(-(2**31), 2**31 - 1), 1)).map(nodes.Int),
        "ID": ids.map(nodes.String),
        "String": strings.map(nodes.String),
        "Date": scalar(days),
        "DateTime": scalar(instants),
        "Decimal": st.one_of(scalar(amounts), st.integers(-100, 10000).map(nodes.Int)),
    }


# ---- the oracle -----------------------------------------------------------------------------------


class Records(logging.Handler):
    """Every log record of the app while one request runs: an unexpected error shows here whatever the
    answer says."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def records() -> Iterator[Records]:
    handler = Records()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def _unexpected(record: logging.LogRecord) -> str | None:
    """What a record says went wrong unexpectedly, or None for a refusal or a rejected document."""
    if not record.exc_info or record.exc_info[1] is None:
        return None
    exc = record.exc_info[1]
    if isinstance(exc, DomainError):
        return None
    error = record.msg
    # graphql-core reports a literal a scalar cannot parse as a validation error, before anything runs.
    before_running = isinstance(error, graphql.GraphQLError) and error.path is None
    if before_running and not isinstance(exc, (AttributeError, TypeError, KeyError)):
        return None
    return f"{type(exc).__name__}: {exc} (logged by {record.name})"


def problems(
    w: World, caller: str, document: str, response: httpx.Response, logged: list[logging.LogRecord]
) -> list[str]:
    """Everything wrong with one answer."""
    found = [f"unexpected error: {u}" for u in filter(None, map(_unexpected, logged))]
    if response.status_code >= 500:
        found.append(f"HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        return [*found, f"not JSON: {response.text[:200]!r}"]
    if not isinstance(body, dict) or not ({"data", "errors"} & body.keys()):
        found.append(f"not a GraphQL answer: {response.text[:200]!r}")
    for error in body.get("errors") or []:
        text = json.dumps(error)
        if UNEXPECTED.search(text):
            found.append(f"unexpected error answered: {text[:400]}")
        elif INTERNAL.search(text):
            found.append(f"internal detail in an error: {text[:400]}")
    if caller in ("customer", "partner"):
        answer = response.text
        marks = sorted(set(m.group(0) for m in B_MARKER.finditer(answer)))
        if marks:
            at = B_MARKER.search(answer).start()  # type: ignore[union-attr]
            found.append(f"B's data in {caller}'s answer: …{answer[max(0, at - 120):at + 80]}…")
        leaked = {i.lower() for i in UUID_TEXT.findall(answer)} & w.b_ids
        leaked -= {i.lower() for i in UUID_TEXT.findall(document)}  # an id the caller sent, answered back
        if leaked:
            found.append(f"ids of B's rows in {caller}'s answer: {sorted(leaked)}")
    return found


async def _post(w: World, caller: str, document: str, records: Records) -> list[str]:
    records.records.clear()
    try:
        response = await w.http.post("/graphql", headers=w.headers[caller], json={"query": document})
    except (Exception, asyncio.CancelledError) as exc:  # the app raised instead of answering: a 500, or no answer
        task = asyncio.current_task()
        if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling():
            raise  # this test itself is being cancelled
        return [f"the app raised {type(exc).__name__} instead of answering: {exc!r}"]
    found = problems(w, caller, document, response, list(records.records))
    return found + await _connections_returned(w)


async def _connections_returned(w: World) -> list[str]:
    """Requests run one at a time here, so once an answer is in, every pooled connection must come back
    (work a cancelled field left may finish just after it). One that never does is held until the garbage
    collector finds it: a few such requests exhaust the pool, and on PostgreSQL the server's connections."""
    pool = w.ctx.db.engine.sync_engine.pool
    for _ in range(200):
        if pool.checkedout() == 0:  # type: ignore[attr-defined]
            return []
        await asyncio.sleep(0.01)
    return [f"database connections not returned to the pool after the answer: {pool.status()}"]


def _fail(document: str, found: list[str]) -> None:
    assert not found, "\n".join(["the operation:", document, "got:", *found])


# ---- the runs -------------------------------------------------------------------------------------


_PARSED = graphql.build_schema(SCHEMA)
QUERY_FIELDS = sorted(_PARSED.query_type.fields)  # type: ignore[union-attr]
MUTATION_FIELDS = sorted(_PARSED.mutation_type.fields)  # type: ignore[union-attr]
READERS = ["customer", "partner", "provider"]
WRITERS = ["customer", "partner"]  # the integrator's token reads only


@pytest.mark.parametrize("root_field", QUERY_FIELDS)
@pytest.mark.parametrize("caller", READERS)
@settings(BUDGET, max_examples=6)
@given(data=st.data())
async def test_generated_queries(
    world: World, records: Records, caller: str, root_field: str, data: st.DataObject
) -> None:
    document = data.draw(world.operations("query", root_field), label="query")
    _fail(document, await _post(world, caller, document, records))


@pytest.mark.parametrize("root_field", MUTATION_FIELDS)
@pytest.mark.parametrize("caller", WRITERS)
@settings(BUDGET, max_examples=8)
@given(data=st.data())
async def test_generated_mutations(
    world: World, records: Records, caller: str, root_field: str, data: st.DataObject
) -> None:
    document = data.draw(world.operations("mutation", root_field), label="mutation")
    world.mutations_posted += 1
    _fail(document, await _post(world, caller, document, records))


@pytest.mark.parametrize(("caller", "kind"), [(c, "query") for c in READERS] + [(c, "mutation") for c in WRITERS])
@settings(BUDGET, max_examples=30)
@given(data=st.data())
async def test_generated_operations_on_many_root_fields(
    world: World, records: Records, caller: str, kind: str, data: st.DataObject
) -> None:
    """Sibling root fields resolve concurrently, and one refused non-null field ends the others early."""
    document = data.draw(world.operations(kind, None), label=kind)
    world.mutations_posted += kind == "mutation"
    _fail(document, await _post(world, caller, document, records))


async def test_the_oracle_finds_b_in_an_answer(world: World, records: Records) -> None:
    """The checks above can fail: B's contracts as the integrator sees them, judged as if A had been
    answered, are a leak (by name and by id); A's own contracts are not."""
    document = "{ contracts(first: 200) { edges { node { id reference customer { name } } } } }"
    records.records.clear()
    everyone = await world.http.post("/graphql", headers=world.headers["provider"], json={"query": document})
    found = problems(world, "customer", document, everyone, records.records)
    assert any(f.startswith("B's data in customer's answer") for f in found), found
    assert any(f.startswith("ids of B's rows in customer's answer") for f in found), found
    assert await _post(world, "customer", document, records) == []
    broken = httpx.Response(500, text="Internal Server Error")
    assert problems(world, "provider", document, broken, []) == ["HTTP 500", "not JSON: 'Internal Server Error'"]


async def test_the_mutations_left_b_as_it_was(world: World) -> None:
    """Run after the generated mutations: nothing of B's was added, removed or changed by A's side."""
    assert world.mutations_posted, "runs after test_generated_mutations, in the same module run"
    before = world.b_ids
    after = frozenset().union(*(await b_rows(world.ctx, world.b)).values())
    assert after == before
