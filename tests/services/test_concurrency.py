"""Racing writers: the ledger never hands out more than the allowance, an idempotency key gives one entry,
and an entry is reversed once, however the calls interleave. Each service call runs its own transaction
on its own connection; on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from api.db import Database
from api.models import Booking, BookingStatus, LedgerEntry
from api.services import bookings, contracts, ledger
from api.services.context import AppContext
from api.services.errors import Conflict, DomainError, ErrorCode, InsufficientBalance
from tests.conftest import ADMIN

Q1 = date(2026, 2, 15)
APRIL_1 = date(2026, 4, 1)


def one_activity(contract_id, **fields) -> ledger.Consumption:  # type: ignore[no-untyped-def]
    return ledger.Consumption(contract_id=contract_id, bucket="activities", quantity=Decimal(1), reason="race", **fields)


async def ledger_total(ctx: AppContext, contract_id) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    page = await ledger.ledger_page(ctx, ADMIN, contract_id, first=200)
    assert not page.has_next_page
    return len(page.entries), sum(e.quantity for e in page.entries)


async def balance(ctx: AppContext, contract_id) -> int:  # type: ignore[no-untyped-def]
    (period,) = await contracts.entitlements(ctx, ADMIN, contract_id, Q1)
    return period.consumed


@pytest.fixture
async def second_ctx(ctx: AppContext, database_url: str) -> AsyncIterator[AppContext]:
    """Another Database on the same URL, with an engine (and connections) of its own."""
    db = Database(database_url)
    try:
        yield AppContext(db=db, settings=ctx.settings, clock=ctx.clock)
    finally:
        await db.dispose()


def split(results: list[object]) -> tuple[list[ledger.LedgerOutcome], list[BaseException]]:
    won = [r for r in results if isinstance(r, ledger.LedgerOutcome)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) + len(lost) == len(results)
    return won, lost


async def assert_exactly_five_won(ctx: AppContext, contract_id, results: list[object]) -> None:  # type: ignore[no-untyped-def]
    won, lost = split(results)
    unexpected = [e for e in lost if not isinstance(e, InsufficientBalance)]
    assert not unexpected, unexpected
    assert (len(won), len(lost)) == (5, 20)
    assert all(e.code == ErrorCode.INSUFFICIENT_BALANCE for e in lost)
    assert len({o.entry.id for o in won}) == 5
    assert sorted(o.period.consumed for o in won) == [1, 2, 3, 4, 5]
    assert await ledger_total(ctx, contract_id) == (5, 5)
    assert await balance(ctx, contract_id) == 5


async def test_racers_for_the_last_units_never_overdraw(ctx, make_contract):
    contract = await make_contract()  # 5 activities a quarter
    results = await asyncio.gather(
        *(ledger.consume_entitlement(ctx, ADMIN, one_activity(contract.id)) for _ in range(25)),
        return_exceptions=True,
    )
    await assert_exactly_five_won(ctx, contract.id, results)


async def test_racers_on_two_engines_never_overdraw(ctx, second_ctx, make_contract):
    contract = await make_contract()
    results = await asyncio.gather(
        *(
            ledger.consume_entitlement(ctx if n % 2 else second_ctx, ADMIN, one_activity(contract.id))
            for n in range(25)
        ),
        return_exceptions=True,
    )
    await assert_exactly_five_won(ctx, contract.id, results)
    await assert_exactly_five_won(second_ctx, contract.id, results)


async def test_racers_after_partial_use_take_only_what_remains(ctx, second_ctx, make_contract):
    contract = await make_contract()
    await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(contract.id, "activities", Decimal(3)))
    results = await asyncio.gather(
        *(ledger.consume_entitlement(ctx if n % 2 else second_ctx, ADMIN, one_activity(contract.id)) for n in range(20)),
        return_exceptions=True,
    )
    won, lost = split(results)
    assert (len(won), len(lost)) == (2, 18)
    assert all(isinstance(e, InsufficientBalance) for e in lost)
    assert await ledger_total(ctx, contract.id) == (3, 5)
    assert await balance(ctx, contract.id) == 5


async def test_racers_with_one_idempotency_key_make_one_entry(ctx, second_ctx, make_contract):
    contract = await make_contract()
    request = ledger.Consumption(contract.id, "activities", Decimal(2), reason="race", idempotency_key="same-key")
    results = await asyncio.gather(
        *(ledger.consume_entitlement(ctx if n % 2 else second_ctx, ADMIN, request) for n in range(20)),
        return_exceptions=True,
    )
    won, lost = split(results)
    assert not lost, lost
    assert len({o.entry.id for o in won}) == 1
    assert [o.replayed for o in won].count(False) == 1
    assert all(o.entry.quantity == 2 for o in won)
    assert await ledger_total(ctx, contract.id) == (1, 2)
    assert await balance(ctx, contract.id) == 2


async def test_racers_with_one_idempotency_key_for_most_of_the_allowance_make_one_entry(ctx, second_ctx, make_contract):
    """A racer that misses the winner's entry when it looks for the key finds the allowance spent by it
    (PostgreSQL): the key's first result is still the answer, not InsufficientBalance."""
    contract = await make_contract()
    request = ledger.Consumption(contract.id, "activities", Decimal(4), reason="race", idempotency_key="most")
    results = await asyncio.gather(
        *(ledger.consume_entitlement(ctx if n % 2 else second_ctx, ADMIN, request) for n in range(10)),
        return_exceptions=True,
    )
    won, lost = split(results)
    assert not lost, lost
    assert len({o.entry.id for o in won}) == 1
    assert [o.replayed for o in won].count(False) == 1
    assert await ledger_total(ctx, contract.id) == (1, 4)
    assert await balance(ctx, contract.id) == 4


async def test_racing_reversals_reverse_once(ctx, second_ctx, make_contract):
    contract = await make_contract()
    taken = await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(contract.id, "activities", Decimal(3)))
    results = await asyncio.gather(
        *(
            ledger.reverse_entry(ctx if n % 2 else second_ctx, ADMIN, taken.entry.id, reason=f"undo {n}")
            for n in range(10)
        ),
        return_exceptions=True,
    )
    won, lost = split(results)
    unexpected = [e for e in lost if not isinstance(e, DomainError)]
    assert not unexpected, unexpected
    assert len(won) == 1
    assert won[0].entry.reverses_entry_id == taken.entry.id
    assert [(type(e), e.code) for e in lost] == [(Conflict, ErrorCode.ALREADY_REVERSED)] * 9  # type: ignore[attr-defined]
    assert await ledger_total(ctx, contract.id) == (2, 0)
    assert await balance(ctx, contract.id) == 0


async def test_racing_reversals_with_other_consumption_in_the_period(ctx, second_ctx, make_contract):
    contract = await make_contract()
    taken = await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(contract.id, "activities", Decimal(1)))
    await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(contract.id, "activities", Decimal(4)))
    results = await asyncio.gather(
        *(
            ledger.reverse_entry(ctx if n % 2 else second_ctx, ADMIN, taken.entry.id, reason="undo")
            for n in range(10)
        ),
        return_exceptions=True,
    )
    won, lost = split(results)
    assert len(won) == 1
    assert [getattr(e, "code", e) for e in lost] == [ErrorCode.ALREADY_REVERSED] * 9
    assert await ledger_total(ctx, contract.id) == (3, 4)
    assert await balance(ctx, contract.id) == 4


# ---- bookings ----------------------------------------------------------------------------------------


async def booking_rows(ctx: AppContext, contract_id) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    async with ctx.db.read() as session:
        rows = await session.execute(
            select(Booking.activity_code, Booking.status).where(Booking.contract_id == contract_id).order_by(Booking.activity_code)
        )
        return [(code, status.value) for code, status in rows]


async def booking_entries(ctx: AppContext, booking_id) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    async with ctx.db.read() as session:
        rows = await session.execute(
            select(LedgerEntry.kind, LedgerEntry.quantity).where(LedgerEntry.booking_id == booking_id).order_by(LedgerEntry.quantity.desc())
        )
        return [(kind.value, quantity) for kind, quantity in rows]


def outcomes(results: list[object]) -> tuple[list[bookings.BookingOutcome], list[BaseException]]:
    won = [r for r in results if isinstance(r, bookings.BookingOutcome)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) + len(lost) == len(results)
    return won, lost


async def test_racers_on_two_engines_for_the_last_unit_make_one_booking(ctx, second_ctx, make_contract):
    contract = await make_contract()  # 5 activities a quarter
    await bookings.book_activity(ctx, ADMIN, bookings.NewBooking(contract.id, "architecture-review", APRIL_1))  # 4
    results = await asyncio.gather(
        *(
            bookings.book_activity(
                ctx if n % 2 else second_ctx, ADMIN, bookings.NewBooking(contract.id, "advisory-call", APRIL_1, note=f"racer {n}")
            )
            for n in range(10)
        ),
        return_exceptions=True,
    )
    won, lost = outcomes(results)
    unexpected = [e for e in lost if not isinstance(e, InsufficientBalance)]
    assert not unexpected, unexpected
    assert (len(won), len(lost)) == (1, 9)
    assert [(e.requested, e.remaining) for e in lost] == [(1, 0)] * 9  # type: ignore[attr-defined]
    assert (won[0].period.consumed, won[0].period.remaining, won[0].replayed) == (5, 0, False)
    assert await booking_rows(ctx, contract.id) == [("advisory-call", "requested"), ("architecture-review", "requested")]
    assert await ledger_total(ctx, contract.id) == (2, 5)
    assert await balance(second_ctx, contract.id) == 5


async def test_racing_cancellations_of_one_booking_give_its_units_back_once(ctx, second_ctx, make_contract):
    contract = await make_contract()
    booked = await bookings.book_activity(ctx, ADMIN, bookings.NewBooking(contract.id, "upgrade-planning", APRIL_1))  # 3
    await bookings.book_activity(ctx, ADMIN, bookings.NewBooking(contract.id, "code-review", APRIL_1))  # 2
    results = await asyncio.gather(
        *(
            bookings.cancel_booking(ctx if n % 2 else second_ctx, ADMIN, booked.booking.id, reason=f"racer {n}")
            for n in range(10)
        ),
        return_exceptions=True,
    )
    won, lost = outcomes(results)
    unexpected = [e for e in lost if not isinstance(e, Conflict)]
    assert not unexpected, unexpected
    assert len(won) == 1
    assert [(e.code, e.details["status"]) for e in lost] == [(ErrorCode.WRONG_STATUS, "cancelled")] * 9  # type: ignore[attr-defined]
    assert (won[0].booking.status, won[0].period.consumed) == (BookingStatus.CANCELLED, 2)
    assert await booking_entries(ctx, booked.booking.id) == [("consume", 3), ("reverse", -3)]
    assert await ledger_total(ctx, contract.id) == (3, 2)
    assert await balance(ctx, contract.id) == 2


async def test_racers_with_one_idempotency_key_make_one_booking(ctx, second_ctx, make_contract):
    contract = await make_contract()
    # Four of five units: a racer that did not see the winner's booking would find too little left.
    request = bookings.NewBooking(contract.id, "architecture-review", APRIL_1, idempotency_key="book-once")
    results = await asyncio.gather(
        *(bookings.book_activity(ctx if n % 2 else second_ctx, ADMIN, request) for n in range(10)),
        return_exceptions=True,
    )
    won, lost = outcomes(results)
    assert not lost, lost
    assert len({o.booking.id for o in won}) == 1
    assert [o.replayed for o in won].count(False) == 1
    assert all(o.period.consumed == 4 for o in won)
    assert await booking_rows(ctx, contract.id) == [("architecture-review", "requested")]
    assert await ledger_total(ctx, contract.id) == (1, 4)
    assert await balance(ctx, contract.id) == 4
