"""Ticket list benchmark: `list_tickets` (the service behind the GraphQL `tickets` connection and the portal's
ticket pages), in-process, on a generated PostgreSQL set, as staff, one customer and one partner, for each
filter, first page and a deep page.

    .venv/bin/python bench/ticket_list.py [--database-url URL ...] [--rounds 5] [--repeat 4] [--budget 3] [--gc-freeze]

Default: postgresql://postgres@127.0.0.1:5432/bench10k (`entitle generate --customers 10000 --seed 1 --now
2026-11-30T12:00:00+00:00`, about 1 M tickets), opened read-only; the clock stands at that --now, so the SLA
filters see the data as generated. Several --database-url run side by side (the same generated set before
and after a change, e.g. a copy with a new index): every case is timed on each in turn, round after round.

Actors: a support engineer (staff, sees every ticket), the customer with the most tickets, the partner linked
to the most customers. Filters: none, status, severity, ticketType, filedBy, customerId, text, atRisk,
breached (values picked from the data: the most common ones, the customer's most frequent filer, one of the
actor's customers). Pages: the first (`first=100`) and a deep one, from a cursor --deep-days (365) before the
clock, as a client paging far back would send. Each round times every case --repeat times (once when a call
takes over a second); the figures are p50 and p95 over all samples. A case whose page takes over --budget
seconds is not timed but noted. --gc-freeze calls gc.freeze() once the cases are warmed up, as a server could
after start-up: the full collections that otherwise scan every long-lived object make most of the p95.
Goal: p95 < 50 ms for every case. For cases over the goal the ticket SELECT
is shown with EXPLAIN (ANALYZE, BUFFERS).

With --graphql-url (a generated set that may be written to: creating the provider token writes its row, so
bench1k, never bench10k) the whole GraphQL page of tests/graphql/test_tickets_connection.py (FULL: customer,
contract, plan, last comment, SLA of each ticket) is also timed in-process through `create_app` and httpx's
ASGITransport, first=100, as that provider token.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url

from api.config import Settings
from api.db import Database
from api.models import Customer, PartnerCustomer, Ticket
from api.services import tickets
from api.services.context import Actor, AppContext, FixedClock
from api.services.paging import encode_cursor

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
MAX_ID = uuid.UUID(int=(1 << 128) - 1)  # with an instant: a cursor just after every ticket of that instant
GOAL_MS = 50.0
FILTERS = ("none", "status", "severity", "ticketType", "filedBy", "customerId", "text", "atRisk", "breached")
STAFF = Actor(kind="staff", ref="user:bench-engineer", name="Bench engineer", roles=frozenset({"support_engineer"}))
FULL = """
query($filter: TicketFilter, $first: Int) {
  tickets(filter: $filter, first: $first) {
    edges { node {
      id subject filedBy
      customer { id code }
      contract { id reference }
      plan { code name }
      lastComment { body createdAt internal authorKind }
      sla { target dueAt breached atRisk }
    } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def read_only(url: str) -> str:
    """The same PostgreSQL database with every transaction read-only: a bench can never write into it."""
    return make_url(url).update_query_dict({"options": "-c default_transaction_read_only=on"}).render_as_string(False)


def context(url: str, *, writable: bool = False) -> AppContext:
    db = Database(url if writable else read_only(url), pool_size=2)
    return AppContext(db=db, settings=Settings(database_url=url), clock=FixedClock(NOW))


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def _most_common(session, column, *where) -> Any:  # type: ignore[no-untyped-def]
    return await session.scalar(
        select(column).where(column.is_not(None), *where).group_by(column).order_by(func.count().desc(), column).limit(1)
    )


async def pick(ctx: AppContext, text_filter: str) -> tuple[dict[str, Actor], dict[str, dict[str, dict[str, Any]]], str]:
    """The actors, each actor's filter arguments, and a description of what was picked."""
    async with ctx.db.read() as session:
        customer_id = await _most_common(session, Ticket.customer_id)
        partner_id = await _most_common(session, PartnerCustomer.partner_id, PartnerCustomer.can_file_tickets)
        linked = list(await session.scalars(
            select(PartnerCustomer.customer_id).where(PartnerCustomer.partner_id == partner_id, PartnerCustomer.can_file_tickets)
        ))
        partner_customer = await _most_common(session, Ticket.customer_id, Ticket.customer_id.in_(linked))
        common = {
            "status": {"status": "in_progress"},
            "severity": {"severity": await _most_common(session, Ticket.severity, Ticket.severity != "")},
            "ticketType": {"ticket_type": await _most_common(session, Ticket.ticket_type)},
            "text": {"text": text_filter},
            "atRisk": {"at_risk": True},
            "breached": {"breached": True},
        }
        filer = await _most_common(session, Ticket.filed_by_ref, Ticket.customer_id == customer_id)
        partner_filer = await _most_common(session, Ticket.filed_by_ref, Ticket.customer_id == partner_customer)
        counts = dict((await session.execute(text(
            "SELECT 'tickets', count(*) FROM tickets UNION ALL SELECT 'customer', count(*) FROM tickets WHERE customer_id = :c "
            "UNION ALL SELECT 'partner', count(*) FROM tickets WHERE customer_id = ANY(:l)"
        ), {"c": customer_id, "l": linked})).all())
        code = await session.scalar(select(Customer.code).where(Customer.id == customer_id))
    actors = {
        "staff": STAFF,
        "customer": Actor(kind="customer", ref="user:bench-customer", name="Bench customer", customer_id=customer_id),
        "partner": Actor(kind="partner", ref="user:bench-partner", name="Bench partner", partner_id=partner_id),
    }
    own = {"filedBy": {"filed_by": filer}, "customerId": {"customer_id": customer_id}}
    filters = {
        "staff": {"none": {}, **common, **own},
        "customer": {"none": {}, **common, **own},
        "partner": {"none": {}, **common, "filedBy": {"filed_by": partner_filer}, "customerId": {"customer_id": partner_customer}},
    }
    about = (
        f"{counts['tickets']:,} tickets; customer {code}: {counts['customer']:,} tickets; partner with "
        f"{len(linked)} customers: {counts['partner']:,} tickets; filters: "
        + ", ".join(f"{k}={next(iter(v.values()))!r}" for k, v in {**common, **own}.items() if v and k not in ("atRisk", "breached"))
    )
    return actors, filters, about


@dataclass
class Case:
    actor: str
    filter: str
    page: str
    kwargs: dict[str, Any]
    after: dict[str, str | None] = field(default_factory=dict)  # per database: the deep page's cursor
    rows: dict[str, int] = field(default_factory=dict)
    repeat: dict[str, int] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # per database: why the case was not timed
    samples: dict[str, list[float]] = field(default_factory=dict)


TIMED_OUT = object()


async def within(ctx: AppContext, budget: float, call: Awaitable[Any]) -> Any:
    """The call's answer, or TIMED_OUT when it takes longer than `budget` seconds (then it is cancelled and
    the pool's connections are closed, in case one was left mid-statement)."""
    try:
        return await asyncio.wait_for(call, budget)
    except TimeoutError:
        await ctx.db.engine.dispose()
        return TIMED_OUT


async def explain(ctx: AppContext, budget: float, call: Awaitable[Any]) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the first statement the call runs on tickets (the list's SELECT); the call
    itself is stopped after `budget` seconds."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
        if "FROM tickets" in statement and not seen:
            seen.append((statement, parameters))

    engine = ctx.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        await within(ctx, budget, call)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = seen[0]
    async with ctx.db.engine.connect() as connection:
        result = await connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)
        plan = "\n".join(row[0] for row in result)
        await connection.rollback()
    return plan


async def graphql_page(url: str, rounds: int, repeat: int, first: int) -> list[float]:
    """The FULL tickets page over GraphQL, in-process, as a provider token (written to `url`)."""
    import httpx

    from api.app import create_app
    from api.models import TokenAccess, TokenScope
    from api.services import identity

    ctx = context(url, writable=True)
    token, secret = await identity.create_token(
        ctx, Actor.system("bench"), identity.NewToken(f"bench-ticket-list-{uuid.uuid4().hex[:8]}", TokenScope.PROVIDER, TokenAccess.READ)
    )
    app = create_app(ctx.settings, database=ctx.db, clock=ctx.clock)
    samples = []
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench",
                                     headers={"Authorization": f"Bearer {secret}"}) as http:
            body = {"query": FULL, "variables": {"first": first}}
            answer = (await http.post("/graphql", json=body)).json()
            assert "errors" not in answer and len(answer["data"]["tickets"]["edges"]) == first, answer
            for _ in range(rounds * repeat):
                start = time.perf_counter()
                response = await http.post("/graphql", json=body)
                samples.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200
    finally:
        await identity.revoke_token(ctx, Actor.system("bench"), token.id)
        await ctx.db.dispose()
    return samples


async def prepare(ctx: AppContext, name: str, actors: dict[str, Actor], cases: list[Case], args: argparse.Namespace) -> None:
    """Each case's first answer on one database; a case over the budget is noted, not timed."""
    for case in cases:
        actor = actors[case.actor]
        case.samples[name] = []
        case.after[name] = None
        if case.page == "deep":
            case.after[name] = encode_cursor(NOW - timedelta(days=args.deep_days), MAX_ID)
        start = time.perf_counter()
        page = await within(ctx, args.budget, tickets.list_tickets(ctx, actor, first=args.first, after=case.after[name], **case.kwargs))
        if page is TIMED_OUT:
            case.notes[name] = f"a page takes over {args.budget:g} s"
            continue
        case.rows[name] = len(page.views)
        # A case taking over a second is timed once per round, not --repeat times.
        case.repeat[name] = args.repeat if time.perf_counter() - start < 1 else 1


def report(cases: list[Case], names: list[str]) -> list[tuple[str, Case]]:
    """The table of figures; returns the (database, case) pairs over the goal."""
    print(f"{'':<28}" + "".join(f" | {n[:24]:^24}" for n in names))
    header = f"{'actor':<9} {'filter':<11} {'page':<6}" + " | rows  p50 ms  p95 ms   " * len(names)
    print(header)
    print("-" * len(header))
    over: list[tuple[str, Case]] = []
    for case in cases:
        line = f"{case.actor:<9} {case.filter:<11} {case.page:<6}"
        for name in names:
            if name in case.notes:
                line += f" | {case.notes[name]:<24}"
                over.append((name, case))
                continue
            p50, p95 = statistics.median(case.samples[name]), percentile(case.samples[name], 0.95)
            line += f" | {case.rows[name]:>4} {p50:>7.1f} {p95:>7.1f} {'' if p95 < GOAL_MS else '*':<2}"
            if p95 >= GOAL_MS:
                over.append((name, case))
        print(line)
    for name in names:
        missed = [case for n, case in over if n == name]
        print(f"{name}: {len(cases) - len(missed)}/{len(cases)} cases meet p95 < {GOAL_MS:.0f} ms"
              + (f"; over: {', '.join(f'{c.actor}/{c.filter}/{c.page}' for c in missed)}" if missed else ""))
    for name in names[1:]:
        timed = [c for c in cases if names[0] not in c.notes and name not in c.notes]
        ratios = [statistics.median(c.samples[names[0]]) / statistics.median(c.samples[name]) for c in timed]
        if ratios:
            print(f"p50 {names[0]} / {name}, over the {len(timed)} cases timed on both: median {statistics.median(ratios):.2f}x "
                  f"(from {min(ratios):.2f}x to {max(ratios):.2f}x)")
    return over


async def main(args: argparse.Namespace) -> None:
    urls = args.database_url or ["postgresql://postgres@127.0.0.1:5432/bench10k"]
    names = [make_url(u).database or u for u in urls]
    contexts = {name: context(url) for name, url in zip(names, urls)}
    actors, filters, about = await pick(contexts[names[0]], args.text)
    cases = [Case(who, which, page, filters[who][which]) for who in actors for which in FILTERS for page in ("first", "deep")]
    for name, ctx in contexts.items():
        await prepare(ctx, name, actors, cases, args)
    if args.gc_freeze:
        gc.collect()
        gc.freeze()
    started = time.perf_counter()
    for _ in range(args.rounds):
        for name in names:
            ctx = contexts[name]
            for case in (c for c in cases if name not in c.notes):
                for _ in range(case.repeat[name]):
                    start = time.perf_counter()
                    await tickets.list_tickets(ctx, actors[case.actor], first=args.first, after=case.after[name], **case.kwargs)
                    case.samples[name].append((time.perf_counter() - start) * 1000)
    seconds = time.perf_counter() - started

    print(f"ticket list, in-process, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average "
          f"{' '.join(f'{n:.1f}' for n in os.getloadavg())}, clock {NOW.isoformat()}")
    print(f"data ({names[0]}): {about}")
    print(f"first={args.first}, deep page: older than {args.deep_days} days before the clock; {args.rounds} rounds x {args.repeat} calls per case "
          f"(1 when a call takes over 1 s; not timed over {args.budget:g} s) on {', '.join(names)} in turn, "
          f"{'gc.freeze() after warming up' if args.gc_freeze else 'garbage collector as is'} "
          f"({seconds:.0f} s); goal p95 < {GOAL_MS:.0f} ms\n")
    over = report(cases, names)

    if args.graphql_url:
        samples = await graphql_page(args.graphql_url, args.rounds, args.repeat, args.first)
        print(f"\nGraphQL FULL page, first={args.first}, provider token, in-process on "
              f"{make_url(args.graphql_url).database}: p50 {statistics.median(samples):.1f} ms, "
              f"p95 {percentile(samples, 0.95):.1f} ms")

    for name, case in over[: args.explain]:
        ctx = contexts[name]
        plan = await explain(ctx, args.budget, tickets.list_tickets(
            ctx, actors[case.actor], first=args.first, after=case.after[name], **case.kwargs
        ))
        print(f"\n== {name}: {case.actor} / {case.filter} / {case.page} page: EXPLAIN (ANALYZE, BUFFERS) of its first "
              f"statement on tickets\n{plan}")
    for ctx in contexts.values():
        await ctx.db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", action="append",
                        help="a generated PostgreSQL set, opened read-only (repeat to compare side by side)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=4, help="calls per case per round")
    parser.add_argument("--first", type=int, default=100)
    parser.add_argument("--deep-days", type=int, default=365, help="the deep page starts this many days before the clock")
    parser.add_argument("--text", default="shopify", help="the text filter")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() once warmed up: the objects alive then are never scanned again by the collector")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds: a case slower than this is noted, not timed")
    parser.add_argument("--explain", type=int, default=8, help="EXPLAIN this many cases over the goal (0: none)")
    parser.add_argument("--graphql-url", help="also time the GraphQL page here (writes a token row: bench1k, not bench10k)")
    asyncio.run(main(parser.parse_args()))
