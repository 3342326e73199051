"""Expiry reminders: when a period ends within its plan's warning days with units still unused, the
contract's client manager and the customer (or the partner that manages it) are each reminded once.
Each message goes through the outbox under a key naming the contract, the bucket's period and the
recipient, so a second run, or two workers at once, queue nothing more."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from api.domain.units import format_quantity
from api.models import Contract, Customer, User, UserKind
from api.services import access, contracts, outbox
from api.services.context import Actor, AppContext
from api.services.contracts import ContractView, EntitlementPeriod

__all__ = ["BATCH", "REMINDER_ACTOR", "ReminderRun", "queue_expiry_reminders"]

BATCH = 500
REMINDER_ACTOR = Actor.system("expiry-reminders", interface="worker")


@dataclass
class ReminderRun:
    contracts: int = 0  # contracts in force today that were checked
    expiring: int = 0  # periods expiring soon with units left
    queued: int = 0  # messages newly queued (a run that finds them all queued already adds none)


async def queue_expiry_reminders(ctx: AppContext) -> ReminderRun:
    """Check every contract in force today, BATCH at a time: four reads, and for a batch with reminders
    not queued yet three more and one write."""
    run = ReminderRun()
    utc_day = ctx.now().date()
    after: uuid.UUID | None = None
    while True:
        # A day either side of the UTC date: each program's own today is decided on its time zone.
        query = (
            select(Contract.id)
            .where(
                Contract.effective_date <= utc_day + timedelta(days=1), Contract.end_date >= utc_day - timedelta(days=1)
            )
            .order_by(Contract.id)
            .limit(BATCH)
        )
        if after is not None:
            query = query.where(Contract.id > after)
        async with ctx.db.read() as session:
            ids = list(await session.scalars(query))
        if not ids:
            break
        after = ids[-1]
        current = await contracts.current_entitlements(ctx, REMINDER_ACTOR, ids)
        in_force = [(view, periods) for view, periods in current if periods]
        run.contracts += len(in_force)
        expiring = [(view, period) for view, periods in in_force for period in periods if period.expiring_soon]
        run.expiring += len(expiring)
        if expiring:
            run.queued += await _queue(ctx, expiring)
        if len(ids) < BATCH:
            break
    return run


async def _queue(ctx: AppContext, expiring: list[tuple[ContractView, EntitlementPeriod]]) -> int:
    """Queue the batch's reminders not queued yet: one read for what is already queued, and only for the
    rest two reads (customers and correspondents, client managers) and one write, whatever the batch's size.
    The outbox's unique key still decides when two runs race."""
    wanted = {
        f"{_key(view, period)}:{role}": (view, period, role)
        for view, period in expiring
        for role in ("correspondent", "client-manager")
        if role == "correspondent" or view.contract.client_manager_id is not None
    }
    async with ctx.db.read() as session:
        for key in await outbox.queued_keys(session, list(wanted)):
            del wanted[key]
        if not wanted:
            return 0
        customer_ids = {view.contract.customer_id for view, _, _ in wanted.values()}
        customers = {c.id: c for c in await session.scalars(select(Customer).where(Customer.id.in_(customer_ids)))}
        correspondents = await access.correspondents_in(session, list(customer_ids))
        manager_ids = {view.contract.client_manager_id for view, _, role in wanted.values() if role == "client-manager"}
        managers = {
            u.id: u
            for u in await session.scalars(
                select(User).where(User.id.in_(manager_ids), User.kind == UserKind.STAFF, User.active)
            )
        } if manager_ids else {}
    messages = []
    for key, (view, period, role) in wanted.items():
        customer = customers[view.contract.customer_id]
        if role == "correspondent":
            found = correspondents[customer.id]
            recipient = outbox.Recipient(found.kind, found.name, found.email)
            opening = "" if found.kind == "customer" else f"{customer.name} is a customer you manage. "
        else:
            manager = managers.get(view.contract.client_manager_id)
            if manager is None:
                continue  # no longer an active staff member: nobody to remind on the provider's side
            recipient = outbox.Recipient("staff", manager.name, manager.email)
            opening = (
                f"You are the client manager of this contract: help {customer.name} schedule what is left before "
                "the period ends. "
            )
        messages.append(outbox.Message(
            "expiry_reminder", customer.id, key, _subject(view, period), opening + _body(ctx, view, customer, period),
            recipient,
        ))
    if not messages:
        return 0
    async with ctx.db.write() as session:
        return len(await outbox.queue_all(session, ctx, messages))


def _key(view: ContractView, period: EntitlementPeriod) -> str:
    return f"expiry:{view.contract.id}:{period.bucket_code}:{period.period.start.isoformat()}"


def _subject(view: ContractView, period: EntitlementPeriod) -> str:
    left = format_quantity(period.remaining, period.bucket.ledger_unit)
    return (
        f"[{view.plan.program.provider}] {left} of {period.bucket.name} expire on {period.period.end} "
        f"({view.contract.reference})"
    )


def _body(ctx: AppContext, view: ContractView, customer: Customer, period: EntitlementPeriod) -> str:
    unit = period.bucket.ledger_unit
    days = period.expires_in_days
    when = "today" if days == 0 else "tomorrow" if days == 1 else f"in {days} days"
    return (
        f"Contract {view.contract.reference} of {customer.name} ({view.plan.rules.name}): "
        f"{format_quantity(period.consumed, unit)} of {format_quantity(period.allowance, unit)} of "
        f"{period.bucket.name} used in the period {period.period.start} to {period.period.end}; "
        f"{format_quantity(period.remaining, unit)} remain.\n\n"
        f"What is not used by the end of {period.period.end} ({when}) expires and is not carried over.\n\n"
        f"See what is left and book activities: {ctx.settings.link_base}/contracts/{view.contract.id}"
    )
