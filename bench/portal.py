"""Portal benchmark: server time of the portal's pages (home, a contract page, the ticket list, the staff
queue) as a customer user, a partner user acting for a customer and a staff user, on a large generated
PostgreSQL set and on the demo, side by side in one run.

    .venv/bin/python bench/portal.py [--database-url URL] [--rounds 15] [--no-demo] [--profile]

The large set defaults to postgresql://postgres@127.0.0.1:5432/bench10k (`entitle generate --customers 10000
--seed 1 --now 2026-11-30T12:00:00+00:00`), read with the clock at that instant; the demo is a throw-away
SQLite file filled by `entitle migrate` and `entitle demo`, read with the real clock. Each set is served by
`create_app(settings)` in this process, driven through httpx's ASGITransport (no sockets). Server time is the
time around the application's ASGI call (middleware, session, services, templates; not httpx), one request at
a time, with this process's CPU time in it (on a shared machine the wall time also holds waits for a core);
statements and their time are counted with SQLAlchemy cursor events.

The users are the worst cases the data offers: the customer with the most contracts (then tickets) that has
a user, the partner whose linked customers hold the most contracts (then tickets), acting (the portal's
"Acting for" cookie) for its linked customer with the most tickets, and the first support engineer (staff
see every customer). The contract page is the viewer's contract with the most ledger entries. Each user signs
in once with the password (POST /login, as a browser does): on the large set that login, which records the
session (with its audit row and last-login time), is the only write; the sessions are ended at the end.

Rounds visit every page of every user on both sets (alternating which set goes first), after one warm-up
round; figures are p50 and p95 of the rounds. Goal (issue 14): p95 < 50 ms server time on the large set.
With --profile, each page over the goal on the large set is run again under cProfile: the functions that
take the time, and the statements grouped by text with their count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import os
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, func, select

from api.app import create_app
from api.config import Settings
from api.models import Contract, LedgerEntry, PartnerCustomer, Ticket, User
from api.services.context import FixedClock
from web.session import ACTING_COOKIE

ROOT = Path(__file__).resolve().parent.parent
LARGE = "postgresql://postgres@127.0.0.1:5432/bench10k"
GENERATED_NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)  # the sets' --now
GENERATED_PASSWORD, DEMO_PASSWORD = "generated-password-2026", "entitle-demo-2026"
GOAL_MS = 50.0


@dataclass
class Viewer:
    role: str  # customer, partner, staff
    email: str
    pages: dict[str, str]  # name -> path
    note: str
    acting_for: uuid.UUID | None = None
    client: httpx.AsyncClient | None = None


@dataclass
class Target:
    """One data set served in-process, with the server time and statements of each request."""

    name: str
    url: str
    password: str
    clock: FixedClock | None
    app: Any = None
    viewers: list[Viewer] = field(default_factory=list)
    size: str = ""
    samples: dict[tuple[str, str], list[tuple[float, int, float, int, float]]] = field(default_factory=dict)
    statements: list[tuple[str, float]] = field(default_factory=list)  # (SQL, seconds) of the current request
    elapsed: float = 0.0  # server time of the last request
    cpu: float = 0.0  # this process's CPU time in it

    async def start(self) -> None:
        self.app = create_app(Settings(database_url=self.url), clock=self.clock)
        engine = self.app.state.context.db.engine.sync_engine

        @event.listens_for(engine, "before_cursor_execute")
        def started(conn, _cursor, _statement, _parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
            conn.info["bench_started"] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def ended(conn, _cursor, statement, _parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
            self.statements.append((statement, time.perf_counter() - conn.info.pop("bench_started")))

        self.size, self.viewers = await _choose(self)
        for viewer in self.viewers:
            viewer.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self._timed), base_url="http://portal.test")
            await _log_in(viewer.client, viewer.email, self.password)
            if viewer.acting_for is not None:
                viewer.client.cookies.set(ACTING_COOKIE, str(viewer.acting_for))

    async def _timed(self, scope: Any, receive: Any, send: Any) -> None:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            await self.app(scope, receive, send)
        finally:
            self.elapsed, self.cpu = time.perf_counter() - started, time.process_time() - cpu

    async def get(self, viewer: Viewer, path: str) -> tuple[float, int, float, int, float]:
        """One page: server ms, statements, ms of them in the database, bytes, CPU ms of this process."""
        self.statements.clear()
        response = await viewer.client.get(path)
        if response.status_code not in (200, 303):
            raise RuntimeError(f"{self.name}: {viewer.email} GET {path}: {response.status_code} {response.text[:300]}")
        db_ms = 1000 * sum(seconds for _, seconds in self.statements)
        return 1000 * self.elapsed, len(self.statements), db_ms, len(response.content), 1000 * self.cpu

    async def stop(self) -> None:
        for viewer in self.viewers:
            if viewer.client is not None:
                await _log_out(viewer.client)
                await viewer.client.aclose()
        await self.app.state.context.db.dispose()


async def _log_in(client: httpx.AsyncClient, email: str, password: str) -> None:
    await client.get("/login")
    response = await client.post(
        "/login", data={"email": email, "password": password, "csrf_token": client.cookies.get("entitle_csrf", "")}
    )
    if response.status_code != 303:
        raise RuntimeError(f"login as {email} failed: {response.status_code} {response.text[:300]}")


async def _log_out(client: httpx.AsyncClient) -> None:
    page = await client.get("/tickets")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text) or re.search(r'"X-CSRF-Token": ?"([^"]+)"', page.text)
    if token:
        await client.post("/logout", data={"csrf_token": token.group(1)})


async def _choose(target: Target) -> tuple[str, list[Viewer]]:
    """The worst-case customer, partner and staff user of the set, and the set's size (read only)."""
    db = target.app.state.context.db
    async with db.read() as s:
        contracts_of = (
            select(Contract.customer_id.label("customer_id"), func.count().label("contracts"))
            .group_by(Contract.customer_id).subquery()
        )
        tickets_of = (
            select(Ticket.customer_id.label("customer_id"), func.count().label("tickets"))
            .group_by(Ticket.customer_id).subquery()
        )
        tickets = func.coalesce(tickets_of.c.tickets, 0)
        size = (
            f"{await s.scalar(select(func.count()).select_from(contracts_of)):,} customers with contracts, "
            f"{await s.scalar(select(func.count(Contract.id))):,} contracts, "
            f"{await s.scalar(select(func.count(Ticket.id))):,} tickets, "
            f"{await s.scalar(select(func.count(LedgerEntry.id))):,} ledger entries"
        )

        has_user = select(User.customer_id).where(User.kind == "customer", User.active)
        customer_id, n_contracts, n_tickets = (await s.execute(
            select(contracts_of.c.customer_id, contracts_of.c.contracts, tickets)
            .outerjoin(tickets_of, tickets_of.c.customer_id == contracts_of.c.customer_id)
            .where(contracts_of.c.customer_id.in_(has_user))
            .order_by(contracts_of.c.contracts.desc(), tickets.desc()).limit(1)
        )).one()
        customer_email = await s.scalar(
            select(User.email).where(User.customer_id == customer_id, User.active).order_by(User.email).limit(1)
        )

        has_partner_user = select(User.partner_id).where(User.kind == "partner", User.active)
        partner_id, p_customers, p_contracts, p_tickets = (await s.execute(
            select(
                PartnerCustomer.partner_id, func.count(),
                func.sum(func.coalesce(contracts_of.c.contracts, 0)), func.sum(tickets),
            )
            .outerjoin(contracts_of, contracts_of.c.customer_id == PartnerCustomer.customer_id)
            .outerjoin(tickets_of, tickets_of.c.customer_id == PartnerCustomer.customer_id)
            .where(PartnerCustomer.partner_id.in_(has_partner_user))
            .group_by(PartnerCustomer.partner_id)
            .order_by(func.sum(func.coalesce(contracts_of.c.contracts, 0)).desc(), func.sum(tickets).desc())
            .limit(1)
        )).one()
        partner_email = await s.scalar(
            select(User.email).where(User.partner_id == partner_id, User.active).order_by(User.email).limit(1)
        )
        acting, acting_tickets = (await s.execute(
            select(PartnerCustomer.customer_id, tickets)
            .outerjoin(tickets_of, tickets_of.c.customer_id == PartnerCustomer.customer_id)
            .where(PartnerCustomer.partner_id == partner_id)
            .order_by(tickets.desc(), PartnerCustomer.customer_id).limit(1)
        )).one()
        staff_email = await s.scalar(
            select(User.email).where(User.staff_role == "support_engineer", User.active).order_by(User.email).limit(1)
        )

        async def busiest_contract(customer: uuid.UUID | None) -> uuid.UUID:
            entries = select(LedgerEntry.contract_id, func.count().label("n")).group_by(LedgerEntry.contract_id).subquery()
            query = select(Contract.id).outerjoin(entries, entries.c.contract_id == Contract.id)
            if customer is not None:
                query = query.where(Contract.customer_id == customer)
            return await s.scalar(query.order_by(func.coalesce(entries.c.n, 0).desc(), Contract.id).limit(1))

        own, partners, anyone = await busiest_contract(customer_id), await busiest_contract(acting), await busiest_contract(None)

    def pages(contract: uuid.UUID, *extra: tuple[str, str]) -> dict[str, str]:
        return {"home": "/", "contract": f"/contracts/{contract}", "tickets": "/tickets", **dict(extra)}

    return size, [
        Viewer("customer", customer_email, pages(own), f"{n_contracts} contracts, {n_tickets:,} tickets"),
        Viewer(
            "partner", partner_email, pages(partners),
            f"{p_customers} customers, {p_contracts} contracts, {p_tickets:,} tickets; "
            f"acting for one with {acting_tickets:,} tickets",
            acting_for=acting,
        ),
        Viewer("staff", staff_email, pages(anyone, ("queue", "/queue")), "support engineer, every customer"),
    ]


def _demo_database(folder: str) -> str:
    url = f"sqlite:///{folder}/demo.db"
    env = {**os.environ, "DATABASE_URL": url}
    for command in ("migrate", "demo"):
        subprocess.run([sys.executable, "-m", "api.cli", command], cwd=ROOT, env=env, check=True, capture_output=True)
    return url


def _pct(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def _profile(target: Target, viewer: Viewer, page: str, requests: int) -> None:
    """cProfile of a page over a few requests: the functions taking the time, and the statements."""
    profiler, by_sql = cProfile.Profile(), Counter()
    count: Counter[str] = Counter()
    for _ in range(requests):
        profiler.enable()
        await target.get(viewer, viewer.pages[page])
        profiler.disable()
        for statement, seconds in target.statements:
            key = " ".join(statement.split())[:150]
            by_sql[key] += seconds
            count[key] += 1
    print(f"\n--- profile: {target.name} {viewer.role} {page} ({viewer.pages[page]}), {requests} requests")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(r"(api|web|sqlalchemy/orm|jinja2)/", 18)
    print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))
    print("statements (ms per request, count per request):")
    for key, seconds in by_sql.most_common(6):
        print(f"  {1000 * seconds / requests:8.1f} ms {count[key] / requests:5.1f}x  {key}")


async def main(args: argparse.Namespace) -> None:
    logging.getLogger("entitle").setLevel(logging.WARNING)
    load = os.getloadavg()
    print(f"portal server time, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    with tempfile.TemporaryDirectory() as folder:
        targets = [Target("large", args.database_url, GENERATED_PASSWORD, FixedClock(GENERATED_NOW))]
        if not args.no_demo:
            targets.insert(0, Target("demo", _demo_database(folder), DEMO_PASSWORD, None))
        try:
            for target in targets:
                await target.start()
                print(f"{target.name}: {target.url.split('@')[-1]}: {target.size}")
                for viewer in target.viewers:
                    print(f"  {viewer.role:<8} {viewer.email} ({viewer.note})")
            for n in range(args.rounds + 1):  # the first round warms up
                for target in targets if n % 2 else targets[::-1]:
                    for viewer in target.viewers:
                        for page, path in viewer.pages.items():
                            figures = await target.get(viewer, path)
                            if n:
                                target.samples.setdefault((viewer.role, page), []).append(figures)
            _report(targets, args.rounds)
            if args.profile:
                large = targets[-1]
                for viewer in large.viewers:
                    for page in viewer.pages:
                        if _pct([s[0] for s in large.samples[(viewer.role, page)]], 0.95) > GOAL_MS:
                            await _profile(large, viewer, page, args.profile_requests)
        finally:
            for target in targets:
                if target.app is not None:
                    await target.stop()
    load = os.getloadavg()
    print(f"load average after: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


def _report(targets: list[Target], rounds: int) -> None:
    print(f"\n{rounds} rounds; server ms (p50, p95), this process's CPU ms, statements and their ms (p50) per"
          " request, KB of HTML")
    names = [t.name for t in targets]
    header = "".join(f" | {n:>5} p50 {'p95':>6} {'cpu':>5} {'stmts':>5} {'db ms':>6} {'KB':>4}" for n in names)
    print(f"{'user':<8} {'page':<9}{header} | {'ratio':>5} goal")
    missed = 0
    for viewer in targets[-1].viewers:
        for page in viewer.pages:
            cells, p50s = "", []
            for target in targets:
                found = target.samples[(viewer.role, page)]
                ms = [s[0] for s in found]
                p50s.append(statistics.median(ms))
                cells += (
                    f" | {p50s[-1]:>9.1f} {_pct(ms, 0.95):>6.1f} {statistics.median(s[4] for s in found):>5.1f}"
                    f" {statistics.median(s[1] for s in found):>5.0f} {statistics.median(s[2] for s in found):>6.1f}"
                    f" {statistics.median(s[3] for s in found) / 1024:>4.0f}"
                )
            p95 = _pct([s[0] for s in targets[-1].samples[(viewer.role, page)]], 0.95)
            ok = p95 < GOAL_MS
            missed += not ok
            ratio = f"{p50s[-1] / p50s[0]:>5.1f}" if len(p50s) > 1 else "    -"
            print(f"{viewer.role:<8} {page:<9}{cells} | {ratio} {'met' if ok else 'MISSED'}")
    print(f"goal p95 < {GOAL_MS:.0f} ms on the large set: {'met on every page' if not missed else f'missed on {missed} page(s)'}"
          " (ratio: large p50 / demo p50; staff home is the 303 to the queue)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=LARGE, help="the large generated set (read; logging in writes sessions)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--no-demo", action="store_true", help="only the large set")
    parser.add_argument("--profile", action="store_true", help="profile each page over the goal on the large set")
    parser.add_argument("--profile-requests", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
