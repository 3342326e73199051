"""The demo shows every state the portal draws (issue 12): a period expiring soon, activities in each status,
an open ticket at risk and one breached, a managed and a non-managed customer; and loading it again adds
nothing while those states hold."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from api.config import PROJECT_ROOT, Settings
from api.db import Database
from api.migrate import upgrade
from api.models import Booking, Contract, Customer, Partner, PartnerCustomer, Ticket
from api.services import contracts, dashboards
from api.services.context import AppContext, FixedClock
from api.services.demo import AT_RISK_SUBJECT, BREACHED_SUBJECT, EXPIRING_SOON, load_demo
from tests.conftest import ADMIN

# The day the demo is run for real: a Monday.
DEMO_DAY = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)


@pytest.fixture
async def demo(database_factory) -> AsyncIterator[AppContext]:  # type: ignore[no-untyped-def]
    url = database_factory.new()
    upgrade(url)
    db = Database(url)
    ctx = AppContext(db=db, settings=Settings(database_url=url), clock=FixedClock(DEMO_DAY))
    try:
        await load_demo(ctx, PROJECT_ROOT / "programs")
        yield ctx
    finally:
        await db.dispose()


async def test_the_demo_shows_every_state(demo):
    ctx = demo
    async with ctx.db.read() as session:
        small = await session.scalar(select(Contract).where(Contract.reference == EXPIRING_SOON))
        statuses = set(await session.scalars(select(Booking.status)))
        links = {
            (partner, customer): managed
            for partner, customer, managed in await session.execute(
                select(Partner.code, Customer.code, PartnerCustomer.managed)
                .join(Partner, Partner.id == PartnerCustomer.partner_id)
                .join(Customer, Customer.id == PartnerCustomer.customer_id)
            )
        }
    [(_, periods)] = await contracts.current_entitlements(ctx, ADMIN, [small.id])
    assert [p.expiring_soon for p in periods] == [True]
    assert periods[0].expires_in_days == 14 and periods[0].remaining > 0
    assert {s.value for s in statuses} == {"requested", "scheduled", "delivered", "cancelled"}
    assert links[("northwind-solutions", "globex")] is True
    assert links[("northwind-solutions", "acme-retail")] is False

    open_rows = {row.ticket.subject: row.sla for row in await dashboards.open_tickets(ctx, ADMIN)}
    assert open_rows[BREACHED_SUBJECT].breached
    assert open_rows[AT_RISK_SUBJECT].at_risk and not open_rows[AT_RISK_SUBJECT].breached


async def test_loading_the_demo_again_adds_nothing(demo):
    ctx = demo
    async with ctx.db.read() as session:
        before = (await session.scalar(select(func.count()).select_from(Ticket)),
                  await session.scalar(select(func.count()).select_from(Booking)))
    again = await load_demo(ctx, PROJECT_ROOT / "programs")
    async with ctx.db.read() as session:
        after = (await session.scalar(select(func.count()).select_from(Ticket)),
                 await session.scalar(select(func.count()).select_from(Booking)))
    assert (again.bookings, again.tickets) == (0, 0) and before == after


async def test_an_at_risk_ticket_is_filed_again_once_the_last_one_has_passed(demo):
    ctx = demo
    ctx.clock.instant = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)  # three days on, the first one is breached
    again = await load_demo(ctx, PROJECT_ROOT / "programs")
    assert again.tickets == 1
    rows = [r for r in await dashboards.open_tickets(ctx, ADMIN) if r.ticket.subject == AT_RISK_SUBJECT]
    assert sorted((r.sla.at_risk, r.sla.breached) for r in rows) == [(False, True), (True, False)]
