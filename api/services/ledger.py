"""Consuming, reversing and adjusting entitlements: every movement is a ledger entry, in one transaction
with the balance row it changes; consumption never leaves [0, allowance] and overage never goes below 0,
whatever the interleaving."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.domain.periods import Period
from api.models import EntitlementBalance, LedgerEntry, LedgerKind
from api.programs.schema import Bucket
from api.services import audit, inputs, policy, webhooks
from api.services.context import Actor, AppContext
from api.services.contracts import ContractView, EntitlementPeriod, load_contract_view
from api.services.errors import (
    Conflict,
    ContractInactive,
    DomainError,
    ErrorCode,
    InsufficientBalance,
    NotFound,
    PeriodEnded,
    ValidationFailed,
)
from api.services.paging import cut_page, encode_cursor, newest_first

__all__ = [
    "Adjustment",
    "BalanceRow",
    "Consumption",
    "LedgerOutcome",
    "LedgerPage",
    "adjust_entitlement",
    "balance_column",
    "consume_entitlement",
    "entry_cursor",
    "hash_request",
    "ledger_page",
    "lock_balance",
    "post",
    "post_in_session",
    "reverse_entry",
    "run_idempotent",
]

MAX_QUANTITY = 2**31 - 1  # a GraphQL Int; far beyond any allowance, and safe in every integer column


@dataclass(frozen=True)
class Consumption:
    contract_id: uuid.UUID
    bucket: str
    quantity: Decimal  # in ledger units: activities, or minutes for hours buckets
    on: date | None = None  # the day the work belongs to; today when None
    reason: str = ""
    idempotency_key: str | None = None
    on_behalf_of_customer_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Adjustment:
    contract_id: uuid.UUID
    bucket: str
    quantity: Decimal  # signed: positive consumes, negative gives units back
    on: date
    reason: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class LedgerOutcome:
    entry: LedgerEntry
    period: EntitlementPeriod
    replayed: bool  # True when an idempotency key returned an earlier result


@dataclass(frozen=True)
class BalanceRow:
    """A period's balance row as read under its lock."""

    allowance: int
    consumed: int
    overage: int

    @property
    def remaining(self) -> int:
        return self.allowance - self.consumed


@dataclass(frozen=True)
class LedgerPage:
    entries: list[LedgerEntry]
    has_next_page: bool
    end_cursor: str | None


def hash_request(action: str, **payload: object) -> str:
    text = json.dumps({"action": action, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _whole_units(quantity: Decimal, bucket: Bucket, *, allow_negative: bool = False) -> int:
    try:
        if not quantity.is_finite():
            raise InvalidOperation
    except (AttributeError, InvalidOperation):
        raise ValidationFailed(f"quantity {quantity} is not a number", field="quantity") from None
    if quantity == 0 or (quantity < 0 and not allow_negative):
        raise ValidationFailed(
            f"quantity must be greater than 0, got {quantity}", code=ErrorCode.NON_POSITIVE_QUANTITY, field="quantity"
        )
    if quantity != quantity.to_integral_value():
        raise ValidationFailed(
            f"quantity {quantity} is not a whole number of {bucket.ledger_unit}",
            code=ErrorCode.NOT_WHOLE_UNIT,
            field="quantity",
        )
    units = int(quantity)
    if abs(units) > MAX_QUANTITY:
        raise ValidationFailed(f"quantity {quantity} is too large", field="quantity")
    if units % bucket.increment:
        raise ValidationFailed(
            f"quantity {units} is not a multiple of {bucket.increment} {bucket.ledger_unit}, "
            f"the smallest amount bucket {bucket.name!r} counts",
            code=ErrorCode.NOT_WHOLE_UNIT,
            field="quantity",
        )
    return units


def _bucket(view: ContractView, code: str) -> Bucket:
    bucket = view.plan.bucket(code)
    if bucket is None:
        known = ", ".join(view.plan.rules.buckets) or "none"
        raise ValidationFailed(
            f"plan {view.plan.record.code!r} has no bucket {code!r} (it has: {known})",
            code=ErrorCode.UNKNOWN_BUCKET,
            field="bucket",
        )
    return bucket


def _period_on(view: ContractView, bucket: Bucket, day: date) -> Period:
    period = view.period(bucket, day)
    if period is None:
        contract = view.contract
        raise ContractInactive(
            f"contract {contract.reference} is not active on {day} "
            f"(its term is {contract.effective_date} to {contract.end_date})",
            field="on",
        )
    return period


async def _ensure_balance(session: AsyncSession, view: ContractView, code: str, period: Period, now: datetime) -> None:
    insert = postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
    await session.execute(
        insert(EntitlementBalance)
        .values(
            contract_id=view.contract.id,
            bucket_code=code,
            period_start=period.start,
            period_end=period.end,
            allowance=view.allowance(code),
            consumed=0,
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )


def balance_column(kind: LedgerKind, reversed_kind: LedgerKind | None = None) -> str:
    """The balance column an entry moves: `overage` for overage entries and their reversals, else `consumed`."""
    if kind == LedgerKind.OVERAGE or (kind == LedgerKind.REVERSE and reversed_kind == LedgerKind.OVERAGE):
        return "overage"
    return "consumed"


async def _move_balance(
    session: AsyncSession, view: ContractView, code: str, period: Period, delta: int, now: datetime,
    *, column: str = "consumed",
) -> tuple[int, int] | None:
    """Add `delta` to the period's consumption (or overage) in one guarded statement; None when it would
    leave [0, allowance] (or take overage below 0). Returns (consumed, overage) after the move. On
    PostgreSQL the UPDATE row lock serialises racers; on SQLite BEGIN IMMEDIATE does."""
    await _ensure_balance(session, view, code, period, now)
    balance = EntitlementBalance
    if column == "consumed":
        guards = (balance.consumed + delta <= balance.allowance, balance.consumed + delta >= 0)
        values = {"consumed": balance.consumed + delta}
    elif column == "overage":
        guards = (balance.overage + delta >= 0,)
        values = {"overage": balance.overage + delta}
    else:  # pragma: no cover - a programming error
        raise ValueError(f"unknown balance column {column!r}")
    row = (
        await session.execute(
            update(balance)
            .where(
                balance.contract_id == view.contract.id,
                balance.bucket_code == code,
                balance.period_start == period.start,
                *guards,
            )
            .values(**values, updated_at=now)
            .returning(balance.consumed, balance.overage)
            .execution_options(synchronize_session=False)
        )
    ).first()
    return None if row is None else (int(row[0]), int(row[1]))


async def _current_consumed(session: AsyncSession, view: ContractView, code: str, period: Period) -> int:
    return (await _current(session, view, code, period))[0]


async def _current(session: AsyncSession, view: ContractView, code: str, period: Period) -> tuple[int, int]:
    row = (
        await session.execute(
            select(EntitlementBalance.consumed, EntitlementBalance.overage).where(
                EntitlementBalance.contract_id == view.contract.id,
                EntitlementBalance.bucket_code == code,
                EntitlementBalance.period_start == period.start,
            )
        )
    ).first()
    return (0, 0) if row is None else (int(row[0]), int(row[1] or 0))


async def lock_balance(
    session: AsyncSession, ctx: AppContext, view: ContractView, code: str, period: Period
) -> BalanceRow:
    """Create the period's balance row if needed and lock it for the rest of the caller's transaction
    (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers), so what remains
    can be decided on before posting."""
    await _ensure_balance(session, view, code, period, ctx.now())
    row = (
        await session.execute(
            select(EntitlementBalance.allowance, EntitlementBalance.consumed, EntitlementBalance.overage)
            .where(
                EntitlementBalance.contract_id == view.contract.id,
                EntitlementBalance.bucket_code == code,
                EntitlementBalance.period_start == period.start,
            )
            .with_for_update()
        )
    ).one()
    return BalanceRow(int(row[0]), int(row[1]), int(row[2] or 0))


async def _replay(
    session: AsyncSession, ctx: AppContext, view: ContractView, key: str | None, request_hash: str
) -> LedgerOutcome | None:
    """The stored result of an idempotency key already used on this contract, if any."""
    if key is None:
        return None
    entry = await session.scalar(
        select(LedgerEntry).where(LedgerEntry.contract_id == view.contract.id, LedgerEntry.idempotency_key == key)
    )
    if entry is None:
        return None
    if entry.request_hash != request_hash:
        raise Conflict(
            f"idempotency key {key!r} was already used on this contract for a different request",
            code=ErrorCode.IDEMPOTENCY_CONFLICT,
            field="idempotencyKey",
        )
    period = Period(0, entry.period_start, entry.period_end)
    consumed, overage = await _current(session, view, entry.bucket_code, period)
    return LedgerOutcome(entry, view.balance(ctx, entry.bucket_code, period, consumed, overage), replayed=True)


def _check_key(ctx: AppContext, key: str | None) -> None:
    if key is not None and not 1 <= len(key) <= 200:
        raise ValidationFailed("idempotency key must be 1 to 200 characters", field="idempotencyKey")
    inputs.optional_text(ctx, key, "idempotencyKey")


async def run_idempotent(
    ctx: AppContext,
    actor: Actor,
    contract_id: uuid.UUID,
    key: str | None,
    request_hash: str,
    work: Callable[[AsyncSession, ContractView], Awaitable[LedgerOutcome]],
) -> LedgerOutcome:
    """Run `work` in one write transaction unless the key was used before; a racer that loses the
    unique key gets the winner's result."""
    _check_key(ctx, key)
    try:
        async with ctx.db.write() as session:
            view = await load_contract_view(session, actor, contract_id)
            replay = await _replay(session, ctx, view, key, request_hash)
            if replay is not None:
                return replay
            return await work(session, view)
    except (IntegrityError, DomainError):
        # A racer with the same key may have committed after this transaction looked for the key. Its
        # entry then trips the unique key here, or (on PostgreSQL, where each statement sees what was
        # committed before it) what it consumed or reversed makes `work` refuse this request, e.g.
        # InsufficientBalance. Either way the key's first result is the answer.
        if key is None:
            raise
        async with ctx.db.read() as session:
            view = await load_contract_view(session, actor, contract_id)
            replay = await _replay(session, ctx, view, key, request_hash)
        if replay is None:
            raise
        return replay


async def post(
    session: AsyncSession,
    ctx: AppContext,
    actor: Actor,
    view: ContractView,
    period: Period,
    *,
    bucket_code: str,
    units: int,
    kind: LedgerKind,
    reason: str,
    request_hash: str,
    idempotency_key: str | None,
    on_behalf_of_customer_id: uuid.UUID | None = None,
    reverses: LedgerEntry | None = None,
    ticket_id: uuid.UUID | None = None,
    time_entry_id: uuid.UUID | None = None,
    booking_id: uuid.UUID | None = None,
) -> LedgerOutcome | None:
    """Move the period's balance by `units` and write the entry for it; None (nothing written) when
    consumption would leave [0, allowance] or overage go below 0, so the caller can say why in its own
    words. Overage entries, and reversals of them, move `overage`; everything else moves `consumed`."""
    if (kind == LedgerKind.REVERSE) != (reverses is not None):
        raise ValueError("a reversal, and only a reversal, names the entry it reverses")  # pragma: no cover
    now = ctx.now()
    column = balance_column(kind, reverses.kind if reverses is not None else None)
    moved = await _move_balance(session, view, bucket_code, period, units, now, column=column)
    if moved is None:
        return None
    entry = LedgerEntry(
        contract_id=view.contract.id,
        bucket_code=bucket_code,
        period_start=period.start,
        period_end=period.end,
        quantity=units,
        kind=kind,
        reason=reason.strip(),
        actor_kind=actor.kind,
        actor_ref=actor.ref,
        on_behalf_of_customer_id=on_behalf_of_customer_id,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        reverses_entry_id=reverses.id if reverses is not None else None,
        ticket_id=ticket_id,
        time_entry_id=time_entry_id,
        booking_id=booking_id,
        created_at=now,
    )
    session.add(entry)
    await session.flush()
    detail: dict[str, object] = {"contract": view.contract.reference, "bucket": bucket_code, "quantity": units}
    if ticket_id is not None:
        detail["ticket"] = str(ticket_id)
    if time_entry_id is not None:
        detail["time_entry"] = str(time_entry_id)
    if booking_id is not None:
        detail["booking"] = str(booking_id)
    await audit.record(
        session, ctx, actor, f"ledger.{kind.value}", target_type="ledger_entry", target_id=entry.id,
        on_behalf_of_customer_id=on_behalf_of_customer_id or view.contract.customer_id,
        detail=detail,
    )
    outcome = LedgerOutcome(entry, view.balance(ctx, bucket_code, period, *moved), replayed=False)
    await webhooks.emit(
        session, ctx, webhooks.LEDGER_EVENTS[kind.value], view.contract.customer_id,
        webhooks.entry_data(
            entry, contract_reference=view.contract.reference, allowance=outcome.period.allowance,
            consumed=outcome.period.consumed, overage=outcome.period.overage,
        ),
    )
    return outcome


async def post_in_session(
    session: AsyncSession,
    ctx: AppContext,
    actor: Actor,
    view: ContractView,
    period: Period,
    *,
    bucket_code: str,
    units: int,
    kind: LedgerKind,
    reason: str,
    on_behalf_of_customer_id: uuid.UUID | None = None,
    reverses: LedgerEntry | None = None,
    ticket_id: uuid.UUID | None = None,
    time_entry_id: uuid.UUID | None = None,
    booking_id: uuid.UUID | None = None,
) -> LedgerOutcome | None:
    """Post one movement inside the caller's write transaction (no idempotency key: the caller's own
    transaction decides what is owed). Same guarantees and audit row as every other ledger movement;
    None, with nothing written, when the guarded balance update refuses it."""
    if units == 0 or abs(units) > MAX_QUANTITY:
        raise ValidationFailed(f"quantity {units} must be non-zero and at most {MAX_QUANTITY}", field="quantity")
    request_hash = hash_request(
        kind.value, bucket=bucket_code, quantity=units, period=period.start, reason=reason, ticket=ticket_id,
        time_entry=time_entry_id, booking=booking_id, reverses=reverses.id if reverses is not None else None,
    )
    return await post(
        session, ctx, actor, view, period, bucket_code=bucket_code, units=units, kind=kind, reason=reason,
        request_hash=request_hash, idempotency_key=None, on_behalf_of_customer_id=on_behalf_of_customer_id,
        reverses=reverses, ticket_id=ticket_id, time_entry_id=time_entry_id, booking_id=booking_id,
    )


async def consume_entitlement(ctx: AppContext, actor: Actor, request: Consumption) -> LedgerOutcome:
    policy.require(actor, "entitlement.consume")
    quantity = inputs.decimal(request.quantity, "quantity")
    inputs.text(ctx, request.bucket, "bucket")
    inputs.optional_day(ctx, request.on, "on")
    inputs.text(ctx, request.reason, "reason")
    request_hash = hash_request(
        "consume",
        bucket=request.bucket,
        quantity=str(request.quantity),
        on=request.on,
        reason=request.reason,
        on_behalf_of=request.on_behalf_of_customer_id,
    )

    async def work(session: AsyncSession, view: ContractView) -> LedgerOutcome:
        bucket = _bucket(view, request.bucket)
        units = _whole_units(quantity, bucket)
        on_behalf = request.on_behalf_of_customer_id
        if on_behalf is not None and on_behalf != view.contract.customer_id:
            # Work on a contract is only ever done for that contract's customer.
            raise ValidationFailed(
                f"onBehalfOfCustomerId must be the contract's customer ({view.contract.customer_id})",
                field="onBehalfOfCustomerId",
            )
        today = view.today(ctx)
        period = _period_on(view, bucket, request.on or today)
        if today > period.end:
            raise PeriodEnded(
                f"the period {period.start} to {period.end} of bucket {request.bucket!r} has ended; "
                "unused units expired with it",
                field="on",
            )
        outcome = await post(
            session,
            ctx,
            actor,
            view,
            period,
            bucket_code=request.bucket,
            units=units,
            kind=LedgerKind.CONSUME,
            reason=request.reason,
            request_hash=request_hash,
            idempotency_key=request.idempotency_key,
            on_behalf_of_customer_id=on_behalf,
        )
        if outcome is None:
            remaining = view.allowance(request.bucket) - await _current_consumed(session, view, request.bucket, period)
            raise InsufficientBalance(
                f"only {remaining} {bucket.ledger_unit} remain in bucket {request.bucket!r} for "
                f"{period.start} to {period.end}; {units} requested",
                requested=units,
                remaining=remaining,
            )
        return outcome

    return await run_idempotent(ctx, actor, request.contract_id, request.idempotency_key, request_hash, work)


async def _refuse_if_reversed(session: AsyncSession, original: LedgerEntry) -> None:
    already = await session.scalar(select(LedgerEntry.id).where(LedgerEntry.reverses_entry_id == original.id))
    if already is not None:
        raise Conflict(
            f"ledger entry {original.id} was already reversed by entry {already}",
            code=ErrorCode.ALREADY_REVERSED,
            field="entryId",
        )


async def reverse_entry(
    ctx: AppContext, actor: Actor, entry_id: uuid.UUID, *, reason: str, idempotency_key: str | None = None
) -> LedgerOutcome:
    """Give back what an entry took, to the period it was taken from; an entry is reversed at most once."""
    policy.require(actor, "ledger.reverse")
    inputs.text(ctx, reason, "reason")
    if not reason.strip():
        raise ValidationFailed("a reversal needs a reason", field="reason")
    async with ctx.db.read() as session:
        original = await session.scalar(
            select(LedgerEntry)
            .where(LedgerEntry.id == entry_id)
            .where(LedgerEntry.contract_id.in_(policy.visible_contract_ids(actor)))
        )
    if original is None:
        raise NotFound("ledger entry", entry_id, field="entryId")
    request_hash = hash_request("reverse", entry=entry_id, reason=reason)

    async def work(session: AsyncSession, view: ContractView) -> LedgerOutcome:
        if original.kind == LedgerKind.REVERSE:
            raise Conflict(
                "a reversal cannot itself be reversed; record a new entry instead",
                code=ErrorCode.NOT_REVERSIBLE,
                field="entryId",
            )
        if original.booking_id is not None:
            # The booking and its units move together: giving them back is cancelling the booking.
            raise Conflict(
                f"ledger entry {original.id} is what booking {original.booking_id} consumed: cancel the booking "
                "instead",
                code=ErrorCode.NOT_REVERSIBLE,
                field="entryId",
            )
        await _refuse_if_reversed(session, original)
        outcome = await post(
            session,
            ctx,
            actor,
            view,
            Period(0, original.period_start, original.period_end),
            bucket_code=original.bucket_code,
            units=-original.quantity,
            kind=LedgerKind.REVERSE,
            reason=reason,
            request_hash=request_hash,
            idempotency_key=idempotency_key,
            on_behalf_of_customer_id=original.on_behalf_of_customer_id,
            reverses=original,
            ticket_id=original.ticket_id,
            time_entry_id=original.time_entry_id,
        )
        if outcome is None:
            # On PostgreSQL a racing reversal of the same entry may have committed while this
            # transaction waited on the balance row lock: say so rather than NOT_REVERSIBLE.
            await _refuse_if_reversed(session, original)
            column = balance_column(LedgerKind.REVERSE, original.kind)
            raise Conflict(
                f"reversing entry {original.id} would take the period's {column} "
                + ("below 0" if column == "overage" else "outside [0, its allowance]"),
                code=ErrorCode.NOT_REVERSIBLE,
                field="entryId",
            )
        return outcome

    try:
        return await run_idempotent(ctx, actor, original.contract_id, idempotency_key, request_hash, work)
    except IntegrityError:
        # Two reversals of one entry raced: the unique reverses_entry_id let exactly one through.
        raise Conflict(
            f"ledger entry {original.id} was already reversed", code=ErrorCode.ALREADY_REVERSED, field="entryId"
        ) from None


async def adjust_entitlement(ctx: AppContext, actor: Actor, request: Adjustment) -> LedgerOutcome:
    """A staff correction of a period's consumption, either way, within [0, allowance]."""
    policy.require(actor, "ledger.adjust")
    quantity = inputs.decimal(request.quantity, "quantity")
    inputs.text(ctx, request.bucket, "bucket")
    inputs.day(ctx, request.on, "on")
    inputs.text(ctx, request.reason, "reason")
    if not request.reason.strip():
        raise ValidationFailed("an adjustment needs a reason", field="reason")
    request_hash = hash_request(
        "adjust", bucket=request.bucket, quantity=str(request.quantity), on=request.on, reason=request.reason
    )

    async def work(session: AsyncSession, view: ContractView) -> LedgerOutcome:
        bucket = _bucket(view, request.bucket)
        units = _whole_units(quantity, bucket, allow_negative=True)
        period = _period_on(view, bucket, request.on)
        outcome = await post(
            session,
            ctx,
            actor,
            view,
            period,
            bucket_code=request.bucket,
            units=units,
            kind=LedgerKind.ADJUST,
            reason=request.reason,
            request_hash=request_hash,
            idempotency_key=request.idempotency_key,
        )
        if outcome is None:
            current = await _current_consumed(session, view, request.bucket, period)
            raise InsufficientBalance(
                f"adjusting by {units} would leave {current + units} consumed of an allowance of "
                f"{view.allowance(request.bucket)} {bucket.ledger_unit}",
                requested=units,
                remaining=view.allowance(request.bucket) - current,
            )
        return outcome

    return await run_idempotent(ctx, actor, request.contract_id, request.idempotency_key, request_hash, work)


def entry_cursor(entry: LedgerEntry) -> str:
    return encode_cursor(entry.created_at, entry.id)


async def ledger_page(
    ctx: AppContext, actor: Actor, contract_id: uuid.UUID, *, first: int = 50, after: str | None = None
) -> LedgerPage:
    """A contract's ledger, newest first, paged by keyset on (created_at, id)."""
    policy.require(actor, "contract.read")
    query = newest_first(
        select(LedgerEntry).where(LedgerEntry.contract_id == contract_id), LedgerEntry.created_at, LedgerEntry.id,
        first=first, after=after,
    )
    async with ctx.db.read() as session:
        await load_contract_view(session, actor, contract_id)
        entries = list(await session.scalars(query))
    return LedgerPage(*cut_page(entries, first, entry_cursor))
