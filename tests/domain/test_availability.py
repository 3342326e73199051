"""Availability and service credits on the shipped premium-availability terms (seed 001): every tier
boundary and the minute on each side of it in 30-day, 31-day and February months, the boundary's inclusion
exactly as the program file states it, partly covered and overlapping minutes, outages across month ends,
pro-rata months, half-up rounding in EUR and JPY, and formatting."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from api.config import PROJECT_ROOT
from api.domain.availability import (
    OutageSpan,
    compute_credit,
    credit_tier,
    downtime_minutes,
    format_money,
    format_money_range,
    month_bounds,
)
from api.programs.loader import read_program_file
from api.programs.schema import Availability

TERMS = read_program_file(PROJECT_ROOT / "programs" / "premium-availability.toml").program.plans["premium-16"].availability
assert isinstance(TERMS, Availability)

APRIL = date(2026, 4, 1)  # 30 days: 43,200 minutes
JANUARY = date(2026, 1, 1)  # 31 days: 44,640 minutes
FEBRUARY = date(2026, 2, 1)  # 28 days: 40,320 minutes


def at(day: date, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def down(start: datetime, minutes: float, portion: str = "1") -> OutageSpan:
    return OutageSpan(start, start + timedelta(minutes=minutes), Decimal(portion))


def credit(month: date, outages: list[OutageSpan], *, fee: str = "2500.00", currency: str = "EUR",
           effective: date = date(2025, 1, 1), end: date = date(2027, 12, 31)):  # type: ignore[no-untyped-def]
    found = compute_credit(
        month, TERMS, monthly_fee=Decimal(fee), currency=currency, effective_date=effective, end_date=end,
        outages=outages,
    )
    assert found is not None
    return found


def test_the_program_file_states_the_seed_tiers():
    assert TERMS.target_percent == Decimal("99.99")
    assert [(t.below, t.down_to, t.credit_percent) for t in TERMS.credits] == [
        (Decimal("99.99"), Decimal("99.0"), Decimal(10)),
        (Decimal("99.0"), Decimal("95.0"), Decimal(25)),
        (Decimal("95.0"), Decimal(0), Decimal(50)),
    ]


@pytest.mark.parametrize(
    ("month", "minutes", "downtime", "percent"),
    [
        # 30 days = 43,200 minutes: 99.99 % allows 4.32 minutes, 99.0 % is 432, 95.0 % is 2,160.
        (APRIL, 43_200, 0, 0),
        (APRIL, 43_200, 4, 0),  # 99.99074… %: the target is met
        (APRIL, 43_200, 5, 10),  # 99.98842… %
        (APRIL, 43_200, 431, 10),
        (APRIL, 43_200, 432, 10),  # exactly 99.0 %: at or above the tier's floor, so still 10 %
        (APRIL, 43_200, 433, 25),
        (APRIL, 43_200, 2_159, 25),
        (APRIL, 43_200, 2_160, 25),  # exactly 95.0 %
        (APRIL, 43_200, 2_161, 50),
        (APRIL, 43_200, 43_200, 50),  # down the whole month: 0 %
        # 31 days = 44,640 minutes: 4.464, 446.4 and exactly 2,232 minutes.
        (JANUARY, 44_640, 4, 0),
        (JANUARY, 44_640, 5, 10),
        (JANUARY, 44_640, 446, 10),
        (JANUARY, 44_640, 447, 25),
        (JANUARY, 44_640, 2_232, 25),  # exactly 95.0 %
        (JANUARY, 44_640, 2_233, 50),
        # February 2026, 28 days = 40,320 minutes: 4.032, 403.2 and exactly 2,016 minutes.
        (FEBRUARY, 40_320, 4, 0),
        (FEBRUARY, 40_320, 5, 10),
        (FEBRUARY, 40_320, 403, 10),
        (FEBRUARY, 40_320, 404, 25),
        (FEBRUARY, 40_320, 2_016, 25),  # exactly 95.0 %
        (FEBRUARY, 40_320, 2_017, 50),
    ],
)
def test_each_tier_boundary_and_the_minute_around_it(month: date, minutes: int, downtime: int, percent: int):
    start = at(month) if downtime > 2_500 else at(month.replace(day=10), 3)
    found = credit(month, [down(start, downtime)] if downtime else [])
    assert (found.minutes, found.downtime_minutes) == (minutes, downtime)
    assert found.availability_percent == Decimal(minutes - downtime) * 100 / minutes
    assert found.credit_percent == percent
    assert found.amount == Decimal("2500.00") * percent / 100  # the whole service impacted
    assert found.target_percent == Decimal("99.99")
    tier = {0: None, 10: ("99.99", "99.0"), 25: ("99.0", "95.0"), 50: ("95.0", "0")}[percent]
    assert (found.tier_below, found.tier_down_to) == (
        (None, None) if tier is None else (Decimal(tier[0]), Decimal(tier[1]))
    )


def test_exactly_at_the_target_earns_nothing_and_a_minute_under_it_earns_the_first_tier():
    # 10,000 measured minutes make 99.99 % a whole number of minutes (one down): the tier is "below 99.99".
    assert credit_tier(TERMS, 10_000, 1) is None
    assert credit_tier(TERMS, 10_000, 2) == TERMS.credits[0]
    assert credit_tier(TERMS, 10_000, 100) == TERMS.credits[0]  # exactly 99.0 %
    assert credit_tier(TERMS, 10_000, 101) == TERMS.credits[1]
    assert credit_tier(TERMS, 10_000, 500) == TERMS.credits[1]  # exactly 95.0 %
    assert credit_tier(TERMS, 10_000, 501) == TERMS.credits[2]
    assert credit_tier(TERMS, 10_000, 0) is None
    assert credit_tier(TERMS, 0, 0) is None


def test_a_started_minute_counts_as_down_and_overlaps_count_once():
    start, end = month_bounds(APRIL)
    ten = at(date(2026, 4, 3), 10)
    assert downtime_minutes(start, end, [OutageSpan(ten + timedelta(seconds=30), ten + timedelta(seconds=70), Decimal(1))]) == 2
    assert downtime_minutes(start, end, [OutageSpan(ten, ten + timedelta(seconds=1), Decimal(1))]) == 1
    assert downtime_minutes(start, end, [OutageSpan(ten, ten + timedelta(minutes=3), Decimal(1))]) == 3
    overlapping = [down(ten, 30, "0.2"), down(ten + timedelta(minutes=20), 40, "0.6"), down(ten + timedelta(minutes=5), 5)]
    assert downtime_minutes(start, end, overlapping) == 60
    # Touching outages join; a gap of a second inside one minute still leaves that minute down once.
    touching = [down(ten, 10), down(ten + timedelta(minutes=10), 10)]
    assert downtime_minutes(start, end, touching) == 20
    gap = [OutageSpan(ten, ten + timedelta(seconds=20), Decimal(1)), OutageSpan(ten + timedelta(seconds=40), ten + timedelta(seconds=50), Decimal(1))]
    assert downtime_minutes(start, end, gap) == 1


def test_overlapping_outages_with_different_portions_credit_the_largest_portion():
    ten = at(date(2026, 4, 3), 10)
    found = credit(APRIL, [down(ten, 30, "0.2"), down(ten + timedelta(minutes=20), 40, "0.6")])
    assert found.downtime_minutes == 60
    assert found.impacted_portion == Decimal("0.6")
    assert found.credit_percent == 10
    assert found.amount == Decimal("150.00")  # 2,500.00 × 0.6 × 10 %


def test_an_outage_across_a_month_end_counts_in_each_month_for_its_own_minutes():
    outage = [OutageSpan(at(date(2026, 1, 31), 23, 50), at(date(2026, 2, 1), 0, 20), Decimal("0.5"))]
    january, february = credit(JANUARY, outage), credit(FEBRUARY, outage)
    assert (january.downtime_minutes, february.downtime_minutes) == (10, 20)
    assert (january.credit_percent, february.credit_percent) == (10, 10)
    assert (january.amount, february.amount) == (Decimal("125.00"), Decimal("125.00"))
    # Outside the month, nothing: March sees none of it.
    assert credit(date(2026, 3, 1), outage).downtime_minutes == 0


def test_minutes_are_utc_minutes_whatever_zone_the_outage_was_given_in():
    berlin = ZoneInfo("Europe/Berlin")
    # 00:00-00:30 on 1 February in Berlin is 23:00-23:30 UTC on 31 January.
    outage = [OutageSpan(datetime(2026, 2, 1, 0, 0, tzinfo=berlin), datetime(2026, 2, 1, 0, 30, tzinfo=berlin), Decimal(1))]
    assert credit(JANUARY, outage).downtime_minutes == 30
    assert credit(FEBRUARY, outage).downtime_minutes == 0


def test_a_month_without_outages_earns_nothing_and_says_so():
    found = credit(APRIL, [])
    assert (found.downtime_minutes, found.availability_percent, found.credit_percent) == (0, Decimal(100), 0)
    assert (found.impacted_portion, found.amount, found.fee, found.earned) == (0, Decimal("0.00"), Decimal("2500.00"), False)
    assert (found.tier_below, found.tier_down_to) == (None, None)


def test_a_partly_covered_month_is_measured_over_its_days_in_force_and_credited_pro_rata():
    # In force from 15 January: 17 days = 24,480 minutes; the fee is 2,500.00 × 17/31 = 1,370.97.
    before = down(at(date(2026, 1, 10)), 600)  # before the term: not the contract's service
    inside = down(at(date(2026, 1, 20), 8), 245, "0.5")  # 1.0008… % of 24,480 minutes: 98.999… %
    found = credit(JANUARY, [before, inside], effective=date(2026, 1, 15))
    assert (found.minutes, found.downtime_minutes) == (24_480, 245)
    assert found.fee == Decimal("1370.97")
    assert found.credit_percent == 25
    assert found.amount == Decimal("171.37")  # 1,370.97 × 0.5 × 25 % = 171.37125
    # The last month of a term: in force 1-10 April (10 days = 14,400 minutes), fee 2,500 × 10/30 = 833.33.
    last = credit(APRIL, [down(at(date(2026, 4, 12)), 60)], end=date(2026, 4, 10))
    assert (last.minutes, last.downtime_minutes, last.fee, last.amount) == (14_400, 0, Decimal("833.33"), Decimal("0.00"))
    assert compute_credit(
        APRIL, TERMS, monthly_fee=Decimal(1), currency="EUR", effective_date=date(2026, 5, 1),
        end_date=date(2027, 4, 30), outages=[],
    ) is None


@pytest.mark.parametrize(
    ("fee", "portion", "minutes_down", "currency", "amount"),
    [
        ("1000.05", "1", 5, "EUR", "100.01"),  # 100.005: half-up, not half-even (100.00)
        ("1234.50", "0.5", 5, "EUR", "61.73"),  # 61.725
        ("2500.00", "0.3333", 433, "EUR", "208.31"),  # 208.3125
        ("100005", "1", 5, "JPY", "10001"),  # 10,000.5 yen: no minor unit
        ("100001", "0.5", 5, "JPY", "5000"),  # 5,000.05
    ],
)
def test_credits_round_half_up_to_the_currency_minor_unit(fee: str, portion: str, minutes_down: int, currency: str, amount: str):
    found = credit(APRIL, [down(at(date(2026, 4, 2)), minutes_down, portion)], fee=fee, currency=currency)
    assert str(found.amount) == amount
    assert found.currency == currency


def test_money_is_formatted_for_people_with_babel():
    assert format_money(Decimal("125.5"), "EUR") == "€125.50"
    assert format_money(Decimal("10001"), "JPY") == "¥10,001"
    assert format_money(Decimal("171.37"), "EUR", locale="de_DE") == "171,37\xa0€"
    assert format_money_range(Decimal(3500), Decimal(5000), "DKK") == "DKK 3,500.00–5,000.00"
