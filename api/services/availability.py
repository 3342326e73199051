"""Outages and the monthly service credits they earn: staff record outages for one contract or for every
contract of a program; a contract's availability and credit for a calendar month come from
`api.domain.availability`, one contract at a time or batched for the monthly reports."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.domain.availability import OutageSpan, ServiceCredit, compute_credit, month_bounds, month_start
from api.models import Contract, Outage, PlanRecord, ProgramRecord
from api.services import audit, inputs, policy
from api.services.context import Actor, AppContext
from api.services.contracts import load_contract_view
from api.services.errors import ErrorCode, NotFound, ValidationFailed
from api.services.programs import plan_view, program_model

__all__ = [
    "EARLIEST",
    "MAX_OUTAGE_DAYS",
    "NewOutage",
    "ServiceCredit",
    "list_outages",
    "record_outage",
    "service_credit",
    "service_credits",
]

# Outages recorded are facts of this century and of at most a year each: anything else is a typo.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_OUTAGE_DAYS = 366
_PORTION_STEP = Decimal("0.0001")  # the column keeps four decimals
# Up to this many contracts, a batch asks for their outages by id; above it, for the month's outages of
# every contract (they are few), so one statement never binds more parameters than a backend allows.
_IDS_IN_QUERY = 1000


@dataclass(frozen=True)
class NewOutage:
    """An outage of one contract's service (`contract_id`) or of every contract of a program
    (`program_code`): exactly one of the two."""

    started_at: datetime
    ended_at: datetime
    impacted_portion: Decimal  # the share of the service impacted, 0 < portion ≤ 1
    note: str = ""
    contract_id: uuid.UUID | None = None
    program_code: str | None = None


def _check(ctx: AppContext, new: NewOutage) -> tuple[datetime, datetime, Decimal, str]:
    if (new.contract_id is None) == (new.program_code is None):
        raise ValidationFailed(
            "an outage concerns one contract or every contract of one program: give exactly one", field="contractId"
        )
    inputs.optional_text(ctx, new.program_code, "programCode")
    for value, name in ((new.started_at, "startedAt"), (new.ended_at, "endedAt")):
        inputs.instant(ctx, value, name)
        if value.utcoffset() is None:
            raise ValidationFailed(f"{name} must be given with its time zone", field=name)
    started, ended = new.started_at.astimezone(UTC), new.ended_at.astimezone(UTC)
    if ended <= started:
        raise ValidationFailed(
            f"the outage must end after it started ({ended.isoformat()} is not after {started.isoformat()})",
            field="endedAt",
        )
    if started < EARLIEST:
        raise ValidationFailed(f"an outage starts on {EARLIEST.date()} or later", field="startedAt")
    if ended > ctx.now():
        raise ValidationFailed(
            f"an outage is recorded once it has ended: {ended.isoformat()} is in the future", field="endedAt"
        )
    if ended - started > timedelta(days=MAX_OUTAGE_DAYS):
        raise ValidationFailed(f"an outage lasts at most {MAX_OUTAGE_DAYS} days", field="endedAt")
    portion = new.impacted_portion
    if isinstance(portion, Decimal) and portion.is_finite():
        portion = inputs.decimal(portion, "impactedPortion", label="the impacted portion")
    if not isinstance(portion, Decimal) or not portion.is_finite() or not 0 < portion <= 1:
        raise ValidationFailed(
            f"the impacted portion is a share of the service above 0 and at most 1, not {portion}",
            field="impactedPortion",
        )
    if portion != portion.quantize(_PORTION_STEP):
        raise ValidationFailed(
            f"the impacted portion has at most 4 decimals, not {portion}", field="impactedPortion"
        )
    note = inputs.text(ctx, (new.note or "").strip(), "note")
    return started, ended, portion, note


def _no_terms(where: str) -> ValidationFailed:
    return ValidationFailed(
        f"{where} has no availability commitment: outages earn no service credit there",
        code=ErrorCode.NO_AVAILABILITY_TERMS,
        field="programCode" if where.startswith("program") else "contractId",
    )


async def record_outage(ctx: AppContext, actor: Actor, new: NewOutage) -> Outage:
    """Record an outage that has ended: for one contract whose plan has availability terms (admins,
    integrators, or the contract's client manager), or for every contract of a program (admins and
    integrators). Refused with a typed error naming the field, and nothing written, when the times or the
    portion do not make sense or the scope has no availability terms."""
    policy.require(actor, "outage.record")
    if new.program_code is not None:
        policy.require(actor, "outage.record_program")
    started, ended, portion, note = _check(ctx, new)
    async with ctx.db.write() as session:
        customer_id: uuid.UUID | None = None
        if new.contract_id is not None:
            view = await load_contract_view(session, actor, new.contract_id)
            contract = view.contract
            if view.plan.rules.availability is None:
                raise _no_terms(f"contract {contract.reference} (plan {view.plan.rules.name!r})")
            term_start = datetime.combine(contract.effective_date, time(), UTC)
            term_end = datetime.combine(contract.end_date + timedelta(days=1), time(), UTC)
            if ended <= term_start or started >= term_end:
                raise ValidationFailed(
                    f"the outage is outside contract {contract.reference}'s term ({contract.effective_date} to "
                    f"{contract.end_date}, UTC days)",
                    field="startedAt",
                )
            outage = Outage(contract_id=contract.id)
            customer_id, scope = contract.customer_id, {"contract": contract.reference}
        else:
            record = await session.scalar(select(ProgramRecord).where(ProgramRecord.code == new.program_code))
            if record is None:
                raise NotFound("program", new.program_code, field="programCode")
            if not any(plan.availability is not None for plan in program_model(record).plans.values()):
                raise _no_terms(f"program {record.code!r}")
            outage = Outage(program_id=record.id)
            scope = {"program": record.code}
        outage.started_at, outage.ended_at, outage.impacted_portion, outage.note = started, ended, portion, note
        outage.created_by_ref, outage.created_by_name, outage.created_at = actor.ref, actor.name[:200], ctx.now()
        session.add(outage)
        await session.flush()
        await audit.record(
            session, ctx, actor, "outage.record", target_type="outage", target_id=outage.id,
            on_behalf_of_customer_id=customer_id,
            detail={
                **scope, "started_at": started.isoformat(), "ended_at": ended.isoformat(),
                "impacted_portion": str(portion),
            },
        )
        return outage


async def list_outages(
    ctx: AppContext, actor: Actor, contract_id: uuid.UUID, month: date | None = None
) -> list[Outage]:
    """The outages that concern a contract (its own and its program's), oldest first; with a month, those
    overlapping that calendar month (UTC)."""
    policy.require(actor, "availability.read")
    inputs.optional_day(ctx, month, "month")
    async with ctx.db.read() as session:
        view = await load_contract_view(session, actor, contract_id)
        query = (
            select(Outage)
            .where(or_(Outage.contract_id == contract_id, Outage.program_id == view.plan.record.program_id))
            .order_by(Outage.started_at, Outage.id)
        )
        if month is not None:
            start, end = month_bounds(month)
            query = query.where(Outage.started_at < end, Outage.ended_at > start)
        return list(await session.scalars(query))


async def service_credit(ctx: AppContext, actor: Actor, contract_id: uuid.UUID, month: date) -> ServiceCredit | None:
    """A contract's availability over a calendar month (any day of it names it) and the credit it earns;
    None when its plan has no availability terms. A month the contract is not in force on any day of is
    refused (field `month`). A month under way counts the outages recorded so far."""
    policy.require(actor, "availability.read")
    inputs.day(ctx, month, "month")
    async with ctx.db.read() as session:
        view = await load_contract_view(session, actor, contract_id)
        if view.plan.rules.availability is None:
            return None
        contract = view.contract
        first = month_start(month)
        if contract.end_date < first or contract.effective_date >= _next_month(first):
            raise ValidationFailed(
                f"contract {contract.reference} is not in force in {first:%Y-%m} (its term is "
                f"{contract.effective_date} to {contract.end_date})",
                field="month",
            )
        return (await service_credits(session, [contract], first))[contract.id]


def _next_month(first: date) -> date:
    return month_bounds(first)[1].date()


async def service_credits(
    session: AsyncSession, contracts: Sequence[Contract], month: date
) -> dict[uuid.UUID, ServiceCredit | None]:
    """Each contract's service credit for the calendar month, in two statements for any number of
    contracts (their plans, then the month's outages): None where the plan has no availability terms or
    the contract is not in force that month. No access check: the caller has chosen the contracts."""
    if not contracts:
        return {}
    first = month_start(month)
    start, end = month_bounds(first)
    plans = {
        plan.id: plan_view(plan, program)
        for plan, program in await session.execute(
            select(PlanRecord, ProgramRecord)
            .join(ProgramRecord, ProgramRecord.id == PlanRecord.program_id)
            .where(PlanRecord.id.in_({c.plan_id for c in contracts}))
        )
    }
    measured = [
        c for c in contracts
        if plans[c.plan_id].rules.availability is not None and c.effective_date < end.date() and c.end_date >= first
    ]
    found: dict[uuid.UUID, ServiceCredit | None] = {c.id: None for c in contracts}
    if not measured:
        return found

    query = select(
        Outage.contract_id, Outage.program_id, Outage.started_at, Outage.ended_at, Outage.impacted_portion
    ).where(Outage.started_at < end, Outage.ended_at > start)
    if len(measured) <= _IDS_IN_QUERY:
        query = query.where(
            or_(
                Outage.contract_id.in_({c.id for c in measured}),
                Outage.program_id.in_({plans[c.plan_id].record.program_id for c in measured}),
            )
        )
    of_contract: dict[uuid.UUID, list[OutageSpan]] = defaultdict(list)
    of_program: dict[uuid.UUID, list[OutageSpan]] = defaultdict(list)
    for contract_id, program_id, started_at, ended_at, portion in await session.execute(query):
        span = OutageSpan(started_at, ended_at, Decimal(portion))
        if contract_id is not None:
            of_contract[contract_id].append(span)
        else:
            of_program[program_id].append(span)

    for contract in measured:
        plan = plans[contract.plan_id]
        terms = plan.rules.availability
        assert terms is not None
        found[contract.id] = compute_credit(
            first, terms, monthly_fee=contract.monthly_fee, currency=contract.currency,
            effective_date=contract.effective_date, end_date=contract.end_date,
            outages=of_contract.get(contract.id, []) + of_program.get(plan.record.program_id, []),
        )
    return found
