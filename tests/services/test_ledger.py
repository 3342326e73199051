"""The entitlement ledger at service level: refusals write nothing, idempotency, reversals, adjustments,
and balances that always equal the sum of their ledger entries."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import func, select

from api.config import Settings
from api.db import Database
from api.jobs.reconcile import reconcile_ledger
from api.models import EntitlementBalance, LedgerEntry, LedgerKind
from api.services import contracts, ledger, parties
from api.services.context import Actor, AppContext, FixedClock
from api.services.errors import (
    Conflict,
    ContractInactive,
    DomainError,
    ErrorCode,
    InsufficientBalance,
    NotFound,
    PeriodEnded,
    PermissionDenied,
    ValidationFailed,
)
from tests.conftest import ADMIN, NOW, unique

Q1 = date(2026, 2, 15)  # first contract quarter of the default contract: 2026-02-15 .. 2026-05-14
Q1_END = date(2026, 5, 14)
Q2 = date(2026, 5, 15)
IN_Q2 = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)


def consumption(contract_id: uuid.UUID, quantity: object = 1, **fields: object) -> ledger.Consumption:
    return ledger.Consumption(
        contract_id=contract_id,
        bucket=fields.pop("bucket", "activities"),  # type: ignore[arg-type]
        quantity=Decimal(quantity),  # type: ignore[arg-type]
        reason=fields.pop("reason", "architecture review"),  # type: ignore[arg-type]
        **fields,  # type: ignore[arg-type]
    )


async def snapshot(ctx: AppContext, contract_id: uuid.UUID, bucket: str = "activities"):  # type: ignore[no-untyped-def]
    """Everything a refusal must leave alone: every period's consumption and the whole ledger."""
    periods = await contracts.bucket_periods(ctx, ADMIN, contract_id, bucket)
    page = await ledger.ledger_page(ctx, ADMIN, contract_id, first=200)
    return [(p.period.start, p.consumed) for p in periods], [(e.id, e.quantity) for e in page.entries]


async def consumed_on(ctx: AppContext, contract_id: uuid.UUID, day: date, bucket: str = "activities") -> int:
    found = [p for p in await contracts.entitlements(ctx, ADMIN, contract_id, day) if p.bucket_code == bucket]
    assert len(found) == 1
    return found[0].consumed


async def ledger_sums(ctx: AppContext, contract_id: uuid.UUID) -> dict[tuple[str, date], int]:
    page = await ledger.ledger_page(ctx, ADMIN, contract_id, first=200)
    assert not page.has_next_page
    sums: dict[tuple[str, date], int] = defaultdict(int)
    for entry in page.entries:
        sums[(entry.bucket_code, entry.period_start)] += entry.quantity
    return dict(sums)


# --- refusals of consume_entitlement ----------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "error", "code", "field"),
    [
        (Decimal(0), ValidationFailed, ErrorCode.NON_POSITIVE_QUANTITY, "quantity"),
        (Decimal(-1), ValidationFailed, ErrorCode.NON_POSITIVE_QUANTITY, "quantity"),
        (Decimal("1.5"), ValidationFailed, ErrorCode.NOT_WHOLE_UNIT, "quantity"),
        (Decimal("0.5"), ValidationFailed, ErrorCode.NOT_WHOLE_UNIT, "quantity"),
        (Decimal("NaN"), ValidationFailed, ErrorCode.INVALID, "quantity"),
        (Decimal("Infinity"), ValidationFailed, ErrorCode.INVALID, "quantity"),
        (Decimal(6), InsufficientBalance, ErrorCode.INSUFFICIENT_BALANCE, "quantity"),
    ],
)
async def test_consume_refuses_bad_quantities_and_writes_nothing(ctx, make_contract, quantity, error, code, field):
    contract = await make_contract()
    before = await snapshot(ctx, contract.id)
    with pytest.raises(error) as refused:
        await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, quantity))
    assert type(refused.value) is error
    assert (refused.value.code, refused.value.field) == (code, field)
    assert await snapshot(ctx, contract.id) == before


async def test_consume_refuses_a_quantity_off_the_bucket_increment(ctx, make_contract):
    # Premium Support 16 books expert hours in quarter hours: increment 15 minutes.
    contract = await make_contract(program="premium-availability", plan="premium-16")
    before = await snapshot(ctx, contract.id, "expert-hours")
    for minutes in (10, 20, 1):
        with pytest.raises(ValidationFailed) as refused:
            await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, minutes, bucket="expert-hours"))
        assert (refused.value.code, refused.value.field) == (ErrorCode.NOT_WHOLE_UNIT, "quantity")
        assert "multiple of 15" in refused.value.message
    assert await snapshot(ctx, contract.id, "expert-hours") == before
    # A multiple of the increment goes through.
    outcome = await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 45, bucket="expert-hours"))
    assert outcome.entry.quantity == 45
    assert outcome.period.consumed == 45
    assert outcome.period.allowance == 16 * 60


async def test_consume_refuses_more_than_remains(ctx, make_contract):
    contract = await make_contract()
    await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 3))
    before = await snapshot(ctx, contract.id)
    with pytest.raises(InsufficientBalance) as refused:
        await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 3))
    assert (refused.value.code, refused.value.field) == (ErrorCode.INSUFFICIENT_BALANCE, "quantity")
    assert (refused.value.requested, refused.value.remaining) == (3, 2)
    assert await snapshot(ctx, contract.id) == before
    # Exactly what remains is fine; after that not even one more.
    await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 2))
    with pytest.raises(InsufficientBalance) as refused:
        await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 1))
    assert refused.value.remaining == 0
    assert await consumed_on(ctx, contract.id, Q1) == 5


async def test_consume_refuses_a_period_that_has_ended(ctx, clock, make_contract):
    contract = await make_contract()
    await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 1, on=date(2026, 3, 1)))
    clock.instant = IN_Q2
    before = await snapshot(ctx, contract.id)
    for day in (date(2026, 3, 1), Q1_END):
        with pytest.raises(PeriodEnded) as refused:
            await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 1, on=day))
        assert (refused.value.code, refused.value.field) == (ErrorCode.PERIOD_ENDED, "on")
    assert await snapshot(ctx, contract.id) == before
    # Today's period is open.
    outcome = await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 1))
    assert outcome.entry.period_start == Q2


@pytest.mark.parametrize("day", [date(2026, 2, 14), date(2025, 12, 31), date(2027, 2, 15)])
async def test_consume_refuses_a_day_outside_the_term(ctx, make_contract, day):
    contract = await make_contract()  # term 2026-02-15 .. 2027-02-14
    before = await snapshot(ctx, contract.id)
    with pytest.raises(ContractInactive) as refused:
        await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 1, on=day))
    assert (refused.value.code, refused.value.field) == (ErrorCode.CONTRACT_INACTIVE, "on")
    assert await snapshot(ctx, contract.id) == before


async def test_consume_refuses_when_today_is_outside_the_term(ctx, make_contract):
    contract = await make_contract(effective=date(2026, 4, 1))
    before = await snapshot(ctx, contract.id)
    with pytest.raises(ContractInactive) as refused:
        await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 1))
    assert (refused.value.code, refused.value.field) == (ErrorCode.CONTRACT_INACTIVE, "on")
    assert await snapshot(ctx, contract.id) == before


async def test_consume_refuses_an_unknown_bucket(ctx, make_contract):
    contract = await make_contract()
    before = await snapshot(ctx, contract.id)
    with pytest.raises(ValidationFailed) as refused:
        await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 1, bucket="expert-hours"))
    assert (refused.value.code, refused.value.field) == (ErrorCode.UNKNOWN_BUCKET, "bucket")
    assert await snapshot(ctx, contract.id) == before


async def test_consume_refuses_an_unknown_contract(ctx, database):
    missing = uuid.uuid4()
    with pytest.raises(NotFound) as refused:
        await ledger.consume_entitlement(ctx, ADMIN, consumption(missing, 1))
    assert (refused.value.code, refused.value.field) == (ErrorCode.NOT_FOUND, "contractId")
    async with database.read() as session:
        assert await session.scalar(select(func.count()).where(LedgerEntry.contract_id == missing)) == 0


@pytest.mark.parametrize("key", ["", "k" * 201])
async def test_consume_refuses_a_bad_idempotency_key(ctx, make_contract, key):
    contract = await make_contract()
    before = await snapshot(ctx, contract.id)
    with pytest.raises(ValidationFailed) as refused:
        await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 1, idempotency_key=key))
    assert refused.value.field == "idempotencyKey"
    assert await snapshot(ctx, contract.id) == before


async def test_consume_refuses_actors_without_the_right(ctx, make_contract, make_customer):
    contract = await make_contract()
    customer_actor = Actor(kind="customer", ref="c", name="A customer", customer_id=contract.customer_id)
    before = await snapshot(ctx, contract.id)
    with pytest.raises(PermissionDenied) as refused:
        await ledger.consume_entitlement(ctx, customer_actor, consumption(contract.id, 1))
    assert refused.value.code == ErrorCode.PERMISSION_DENIED
    assert await snapshot(ctx, contract.id) == before


async def test_consume_records_the_entry_and_the_balance(ctx, make_contract):
    contract = await make_contract()
    outcome = await ledger.consume_entitlement(
        ctx, ADMIN, consumption(contract.id, 2, reason="  code review  ", on=date(2026, 3, 1))
    )
    entry = outcome.entry
    assert outcome.replayed is False
    assert (entry.kind, entry.quantity, entry.bucket_code) == (LedgerKind.CONSUME, 2, "activities")
    assert (entry.period_start, entry.period_end) == (Q1, Q1_END)
    assert entry.reason == "code review"
    assert (entry.actor_kind, entry.actor_ref) == (ADMIN.kind, ADMIN.ref)
    assert entry.created_at == NOW
    assert (outcome.period.allowance, outcome.period.consumed, outcome.period.remaining) == (5, 2, 3)
    assert await consumed_on(ctx, contract.id, Q1) == 2


# --- idempotency ------------------------------------------------------------------------------


async def test_replaying_an_idempotency_key_returns_the_first_entry(ctx, make_contract):
    contract = await make_contract()
    request = consumption(contract.id, 2, idempotency_key="ticket-42")
    first = await ledger.consume_entitlement(ctx, ADMIN, request)
    after_first = await snapshot(ctx, contract.id)
    again = await ledger.consume_entitlement(ctx, ADMIN, request)
    assert first.replayed is False and again.replayed is True
    assert again.entry.id == first.entry.id
    assert again.entry.quantity == 2
    assert again.period.consumed == 2
    assert await snapshot(ctx, contract.id) == after_first


async def test_an_idempotency_key_reused_for_another_request_conflicts(ctx, make_contract):
    contract = await make_contract()
    await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 2, idempotency_key="ticket-43"))
    before = await snapshot(ctx, contract.id)
    for other in (
        consumption(contract.id, 3, idempotency_key="ticket-43"),
        consumption(contract.id, 2, idempotency_key="ticket-43", reason="something else"),
        consumption(contract.id, 2, idempotency_key="ticket-43", on=date(2026, 3, 2)),
    ):
        with pytest.raises(Conflict) as refused:
            await ledger.consume_entitlement(ctx, ADMIN, other)
        assert (refused.value.code, refused.value.field) == (ErrorCode.IDEMPOTENCY_CONFLICT, "idempotencyKey")
    assert await snapshot(ctx, contract.id) == before


async def test_idempotency_keys_are_scoped_to_the_contract(ctx, make_contract):
    one, two = await make_contract(), await make_contract()
    a = await ledger.consume_entitlement(ctx, ADMIN, consumption(one.id, 1, idempotency_key="same"))
    b = await ledger.consume_entitlement(ctx, ADMIN, consumption(two.id, 1, idempotency_key="same"))
    assert a.entry.id != b.entry.id and not a.replayed and not b.replayed


# --- reversals --------------------------------------------------------------------------------


async def test_a_reversal_restores_the_original_period(ctx, clock, make_contract):
    contract = await make_contract()
    taken = await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 3))
    assert taken.entry.period_start == Q1
    clock.instant = IN_Q2
    in_q2 = await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 1))
    assert in_q2.entry.period_start == Q2

    reversal = await ledger.reverse_entry(ctx, ADMIN, taken.entry.id, reason="booked twice")
    entry = reversal.entry
    assert (entry.kind, entry.quantity, entry.reverses_entry_id) == (LedgerKind.REVERSE, -3, taken.entry.id)
    assert (entry.period_start, entry.period_end) == (Q1, Q1_END)
    assert reversal.period.consumed == 0
    assert await consumed_on(ctx, contract.id, date(2026, 3, 1)) == 0
    assert await consumed_on(ctx, contract.id, Q2) == 1
    assert await ledger_sums(ctx, contract.id) == {("activities", Q1): 0, ("activities", Q2): 1}


async def test_an_entry_is_reversed_once(ctx, make_contract):
    contract = await make_contract()
    taken = await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 2))
    await ledger.reverse_entry(ctx, ADMIN, taken.entry.id, reason="mistake")
    before = await snapshot(ctx, contract.id)
    with pytest.raises(Conflict) as refused:
        await ledger.reverse_entry(ctx, ADMIN, taken.entry.id, reason="mistake again")
    assert (refused.value.code, refused.value.field) == (ErrorCode.ALREADY_REVERSED, "entryId")
    assert await snapshot(ctx, contract.id) == before


async def test_a_reversal_cannot_be_reversed(ctx, make_contract):
    contract = await make_contract()
    taken = await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 2))
    reversal = await ledger.reverse_entry(ctx, ADMIN, taken.entry.id, reason="mistake")
    before = await snapshot(ctx, contract.id)
    with pytest.raises(Conflict) as refused:
        await ledger.reverse_entry(ctx, ADMIN, reversal.entry.id, reason="undo the undo")
    assert (refused.value.code, refused.value.field) == (ErrorCode.NOT_REVERSIBLE, "entryId")
    assert await snapshot(ctx, contract.id) == before


async def test_reversal_refusals(ctx, make_contract):
    contract = await make_contract()
    taken = await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 2))
    before = await snapshot(ctx, contract.id)
    with pytest.raises(NotFound) as missing:
        await ledger.reverse_entry(ctx, ADMIN, uuid.uuid4(), reason="gone")
    assert (missing.value.code, missing.value.field) == (ErrorCode.NOT_FOUND, "entryId")
    with pytest.raises(ValidationFailed) as no_reason:
        await ledger.reverse_entry(ctx, ADMIN, taken.entry.id, reason="   ")
    assert no_reason.value.field == "reason"
    # Units already given back by an adjustment cannot be given back twice.
    await ledger.adjust_entitlement(
        ctx, ADMIN, ledger.Adjustment(contract.id, "activities", Decimal(-2), Q1, reason="goodwill")
    )
    before = await snapshot(ctx, contract.id)
    with pytest.raises(Conflict) as refused:
        await ledger.reverse_entry(ctx, ADMIN, taken.entry.id, reason="mistake")
    assert (refused.value.code, refused.value.field) == (ErrorCode.NOT_REVERSIBLE, "entryId")
    assert await snapshot(ctx, contract.id) == before


async def test_a_reversal_with_an_idempotency_key_replays(ctx, make_contract):
    contract = await make_contract()
    taken = await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 2))
    first = await ledger.reverse_entry(ctx, ADMIN, taken.entry.id, reason="mistake", idempotency_key="undo-1")
    again = await ledger.reverse_entry(ctx, ADMIN, taken.entry.id, reason="mistake", idempotency_key="undo-1")
    assert (first.replayed, again.replayed) == (False, True)
    assert again.entry.id == first.entry.id
    assert await consumed_on(ctx, contract.id, Q1) == 0


# --- adjustments ------------------------------------------------------------------------------


async def test_adjustments_move_the_balance_both_ways_within_the_allowance(ctx, clock, make_contract):
    contract = await make_contract()
    up = await ledger.adjust_entitlement(
        ctx, ADMIN, ledger.Adjustment(contract.id, "activities", Decimal(4), date(2026, 3, 1), reason="offline work")
    )
    assert (up.entry.kind, up.entry.quantity, up.period.consumed) == (LedgerKind.ADJUST, 4, 4)
    down = await ledger.adjust_entitlement(
        ctx, ADMIN, ledger.Adjustment(contract.id, "activities", Decimal(-3), date(2026, 3, 1), reason="goodwill")
    )
    assert (down.entry.quantity, down.period.consumed) == (-3, 1)
    before = await snapshot(ctx, contract.id)
    for quantity, error, code in (
        (Decimal(-2), InsufficientBalance, ErrorCode.INSUFFICIENT_BALANCE),
        (Decimal(5), InsufficientBalance, ErrorCode.INSUFFICIENT_BALANCE),
        (Decimal(0), ValidationFailed, ErrorCode.NON_POSITIVE_QUANTITY),
        (Decimal("0.5"), ValidationFailed, ErrorCode.NOT_WHOLE_UNIT),
    ):
        with pytest.raises(error) as refused:
            await ledger.adjust_entitlement(
                ctx, ADMIN, ledger.Adjustment(contract.id, "activities", quantity, Q1, reason="fix")
            )
        assert refused.value.code == code
    with pytest.raises(ValidationFailed) as no_reason:
        await ledger.adjust_entitlement(ctx, ADMIN, ledger.Adjustment(contract.id, "activities", Decimal(1), Q1, reason=""))
    assert no_reason.value.field == "reason"
    with pytest.raises(ContractInactive):
        await ledger.adjust_entitlement(
            ctx, ADMIN, ledger.Adjustment(contract.id, "activities", Decimal(1), date(2030, 1, 1), reason="fix")
        )
    staff = Actor(kind="staff", ref="user:s", name="Support staff", roles=frozenset({"support_engineer"}))
    with pytest.raises(PermissionDenied):
        await ledger.adjust_entitlement(ctx, staff, ledger.Adjustment(contract.id, "activities", Decimal(1), Q1, reason="x"))
    assert await snapshot(ctx, contract.id) == before
    # Staff may correct a period that has already ended.
    clock.instant = IN_Q2
    late = await ledger.adjust_entitlement(
        ctx, ADMIN, ledger.Adjustment(contract.id, "activities", Decimal(-1), date(2026, 3, 1), reason="late fix")
    )
    assert (late.entry.period_start, late.period.consumed) == (Q1, 0)


async def test_balances_equal_ledger_sums_after_a_mixed_sequence(ctx, clock, make_contract):
    contract = await make_contract(plan="medium")  # 10 a quarter
    a = await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 3))
    b = await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 4, idempotency_key="b"))
    await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 4, idempotency_key="b"))  # replay
    await ledger.reverse_entry(ctx, ADMIN, a.entry.id, reason="wrong contract")
    await ledger.adjust_entitlement(ctx, ADMIN, ledger.Adjustment(contract.id, "activities", Decimal(2), Q1, reason="x"))
    with pytest.raises(InsufficientBalance):
        await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 5))
    clock.instant = IN_Q2
    c = await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 7))
    await ledger.reverse_entry(ctx, ADMIN, b.entry.id, reason="cancelled")
    await ledger.adjust_entitlement(ctx, ADMIN, ledger.Adjustment(contract.id, "activities", Decimal(1), Q2, reason="y"))
    await ledger.reverse_entry(ctx, ADMIN, c.entry.id, reason="cancelled")
    await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 9))

    sums = await ledger_sums(ctx, contract.id)
    assert sums == {("activities", Q1): 2, ("activities", Q2): 10}
    periods = await contracts.bucket_periods(ctx, ADMIN, contract.id, "activities")
    for period in periods:
        assert period.consumed == sums.get(("activities", period.period.start), 0)
        assert 0 <= period.consumed <= period.allowance
    assert [m for m in await reconcile_ledger(ctx) if m.contract_id == contract.id] == []


async def test_ledger_page_is_newest_first_and_pages_without_gaps(ctx, clock, make_contract):
    contract = await make_contract(plan="large")
    ids = []
    for minute in range(7):
        clock.instant = NOW.replace(minute=minute)
        ids.append((await ledger.consume_entitlement(ctx, ADMIN, consumption(contract.id, 1))).entry.id)
    seen, after = [], None
    while True:
        page = await ledger.ledger_page(ctx, ADMIN, contract.id, first=3, after=after)
        seen.extend(e.id for e in page.entries)
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert seen == ids[::-1]
    with pytest.raises(ValidationFailed):
        await ledger.ledger_page(ctx, ADMIN, contract.id, after="not-a-cursor")


# --- a random walk over one contract -----------------------------------------------------------


ALLOWANCE = 5


class LedgerMachine(RuleBasedStateMachine):
    """Random consumptions, reversals, adjustments and replays against one Assure Small contract,
    all in its first quarter; after every step the balance equals the ledger and stays in range."""

    database_url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.db = Database(self.database_url)
        self.ctx = AppContext(db=self.db, settings=Settings(database_url=self.database_url), clock=FixedClock(NOW))
        self.entries: list[tuple[uuid.UUID, int, LedgerKind]] = []
        self.reversed: set[uuid.UUID] = set()
        self.keyed: list[tuple[str, int, uuid.UUID]] = []
        self.consumed = 0
        self.contract_id = self.run(self._create_contract())
        self.last_state = self._state()

    def run(self, coroutine):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coroutine)

    async def _create_contract(self) -> uuid.UUID:
        code = unique("machine")
        customer = await parties.create_customer(self.ctx, ADMIN, parties.NewCustomer(code=code, name=code))
        contract = await contracts.create_contract(
            self.ctx,
            ADMIN,
            contracts.NewContract(
                reference=unique("SM"),
                customer_id=customer.id,
                program_code="advisory-assure",
                plan_code="small",
                effective_date=Q1,
                end_date=date(2027, 2, 14),
                monthly_fee=Decimal("100.00"),
                currency="EUR",
            ),
        )
        return contract.id

    def teardown(self) -> None:
        try:
            self.run(self.db.dispose())
        finally:
            self.loop.close()

    async def _read_state(self):  # type: ignore[no-untyped-def]
        """Every balance row and ledger entry of the contract, in one read transaction."""
        async with self.db.read() as session:
            balances = (
                await session.execute(
                    select(EntitlementBalance.period_start, EntitlementBalance.consumed, EntitlementBalance.allowance)
                    .where(EntitlementBalance.contract_id == self.contract_id)
                    .order_by(EntitlementBalance.period_start)
                )
            ).all()
            entries = (
                await session.execute(
                    select(LedgerEntry.id, LedgerEntry.period_start, LedgerEntry.quantity)
                    .where(LedgerEntry.contract_id == self.contract_id)
                    .order_by(LedgerEntry.id)
                )
            ).all()
        return [tuple(b) for b in balances], [tuple(e) for e in entries]

    def _state(self):  # type: ignore[no-untyped-def]
        return self.run(self._read_state())

    def _attempt(self, call, expected_error: ErrorCode | None):  # type: ignore[no-untyped-def]
        """Run one service call; a refusal must be the expected one and change nothing."""
        try:
            outcome = self.run(call)
        except DomainError as exc:
            assert expected_error is not None, f"unexpected refusal {exc.code}: {exc.message}"
            assert exc.code == expected_error, (exc.code, exc.message)
            # The state seen by the last invariant check, i.e. before this call.
            assert self._state() == self.last_state
            return None
        assert expected_error is None, f"expected {expected_error}, but it went through"
        return outcome

    @rule(quantity=st.integers(min_value=-1, max_value=ALLOWANCE + 1), keyed=st.booleans())
    def consume(self, quantity: int, keyed: bool) -> None:
        key = unique("key") if keyed else None
        expected = None
        if quantity <= 0:
            expected = ErrorCode.NON_POSITIVE_QUANTITY
        elif self.consumed + quantity > ALLOWANCE:
            expected = ErrorCode.INSUFFICIENT_BALANCE
        outcome = self._attempt(
            ledger.consume_entitlement(
                self.ctx, ADMIN, consumption(self.contract_id, quantity, idempotency_key=key)
            ),
            expected,
        )
        if outcome is not None:
            assert not outcome.replayed
            self.consumed += quantity
            self.entries.append((outcome.entry.id, quantity, LedgerKind.CONSUME))
            if key is not None:
                self.keyed.append((key, quantity, outcome.entry.id))

    @precondition(lambda self: self.keyed)
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        key, quantity, entry_id = data.draw(st.sampled_from(self.keyed))
        outcome = self._attempt(
            ledger.consume_entitlement(self.ctx, ADMIN, consumption(self.contract_id, quantity, idempotency_key=key)),
            None,
        )
        assert outcome.replayed and outcome.entry.id == entry_id
        conflicting = consumption(self.contract_id, quantity + 1, idempotency_key=key)
        self._attempt(ledger.consume_entitlement(self.ctx, ADMIN, conflicting), ErrorCode.IDEMPOTENCY_CONFLICT)

    @precondition(lambda self: self.entries)
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        entry_id, quantity, kind = data.draw(st.sampled_from(self.entries))
        if kind == LedgerKind.REVERSE:
            expected = ErrorCode.NOT_REVERSIBLE
        elif entry_id in self.reversed:
            expected = ErrorCode.ALREADY_REVERSED
        elif not 0 <= self.consumed - quantity <= ALLOWANCE:
            expected = ErrorCode.NOT_REVERSIBLE
        else:
            expected = None
        outcome = self._attempt(ledger.reverse_entry(self.ctx, ADMIN, entry_id, reason="random reversal"), expected)
        if outcome is not None:
            self.consumed -= quantity
            self.reversed.add(entry_id)
            self.entries.append((outcome.entry.id, -quantity, LedgerKind.REVERSE))

    @rule(quantity=st.integers(min_value=-ALLOWANCE - 1, max_value=ALLOWANCE + 1))
    def adjust(self, quantity: int) -> None:
        if quantity == 0:
            expected = ErrorCode.NON_POSITIVE_QUANTITY
        elif not 0 <= self.consumed + quantity <= ALLOWANCE:
            expected = ErrorCode.INSUFFICIENT_BALANCE
        else:
            expected = None
        adjustment = ledger.Adjustment(self.contract_id, "activities", Decimal(quantity), date(2026, 3, 1), reason="random")
        outcome = self._attempt(ledger.adjust_entitlement(self.ctx, ADMIN, adjustment), expected)
        if outcome is not None:
            self.consumed += quantity
            self.entries.append((outcome.entry.id, quantity, LedgerKind.ADJUST))

    @invariant()
    def balance_equals_ledger(self) -> None:
        self.last_state = balances, entries = self._state()
        assert all(start == Q1 for _, start, _ in entries)
        ledger_total = sum(quantity for _, _, quantity in entries)
        consumed = {start: (used, allowance) for start, used, allowance in balances}.get(Q1, (0, ALLOWANCE))
        assert ledger_total == consumed[0] == self.consumed
        assert 0 <= consumed[0] <= consumed[1] == ALLOWANCE
        assert len(entries) == len(self.entries)
        assert all(start == Q1 for start, _, _ in balances)


def test_random_ledger_walks_keep_balances_equal_to_the_ledger(database_url, shipped_programs):
    LedgerMachine.database_url = database_url
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=15,
            stateful_step_count=15,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
