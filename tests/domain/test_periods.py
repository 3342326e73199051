"""Entitlement periods: worked examples and properties over random contract terms."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.domain.periods import Period, add_months, expires_in_days, period_containing, periods_of_term

ONE_DAY = timedelta(days=1)
STEP = {"quarter": 3, "year": 12}


def spans(effective: date, end: date, length: str, anchor: str) -> list[tuple[date, date]]:
    return [(p.start, p.end) for p in periods_of_term(effective_date=effective, end_date=end, length=length, anchor=anchor)]


# --- add_months -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2026, 1, 31), 3, date(2026, 4, 30)),
        (date(2026, 3, 31), -1, date(2026, 2, 28)),
        (date(2026, 1, 15), -1, date(2025, 12, 15)),
        (date(2026, 11, 30), 14, date(2028, 1, 30)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 2, 29), 48, date(2028, 2, 29)),
        (date(2026, 5, 5), 0, date(2026, 5, 5)),
    ],
)
def test_add_months_examples(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


# --- contract anchor --------------------------------------------------------------------------


def test_contract_quarters_clamp_from_the_anchor_not_the_previous_period() -> None:
    periods = periods_of_term(effective_date=date(2026, 1, 31), end_date=date(2027, 4, 29), length="quarter", anchor="contract")
    assert [p.start for p in periods] == [
        date(2026, 1, 31),
        date(2026, 4, 30),
        date(2026, 7, 31),
        date(2026, 10, 31),
        date(2027, 1, 31),
    ]
    assert [p.end for p in periods] == [
        date(2026, 4, 29),
        date(2026, 7, 30),
        date(2026, 10, 30),
        date(2027, 1, 30),
        date(2027, 4, 29),
    ]
    assert [p.index for p in periods] == [0, 1, 2, 3, 4]


def test_contract_quarter_mid_month() -> None:
    first = periods_of_term(effective_date=date(2026, 2, 15), end_date=date(2027, 2, 14), length="quarter", anchor="contract")[0]
    assert first == Period(0, date(2026, 2, 15), date(2026, 5, 14))
    assert first.days == 89


def test_leap_day_anchor() -> None:
    quarters = spans(date(2024, 2, 29), date(2024, 11, 28), "quarter", "contract")
    assert quarters == [
        (date(2024, 2, 29), date(2024, 5, 28)),
        (date(2024, 5, 29), date(2024, 8, 28)),
        (date(2024, 8, 29), date(2024, 11, 28)),
    ]
    years = [s for s, _ in spans(date(2024, 2, 29), date(2029, 2, 27), "year", "contract")]
    assert years == [date(2024, 2, 29), date(2025, 2, 28), date(2026, 2, 28), date(2027, 2, 28), date(2028, 2, 29)]


def test_contract_years_last_one_clipped() -> None:
    assert spans(date(2026, 3, 10), date(2028, 1, 5), "year", "contract") == [
        (date(2026, 3, 10), date(2027, 3, 9)),
        (date(2027, 3, 10), date(2028, 1, 5)),
    ]


# --- calendar anchor --------------------------------------------------------------------------


def test_calendar_quarters_clipped_at_both_ends() -> None:
    assert spans(date(2026, 2, 15), date(2026, 11, 10), "quarter", "calendar") == [
        (date(2026, 2, 15), date(2026, 3, 31)),
        (date(2026, 4, 1), date(2026, 6, 30)),
        (date(2026, 7, 1), date(2026, 9, 30)),
        (date(2026, 10, 1), date(2026, 11, 10)),
    ]


def test_calendar_years() -> None:
    assert spans(date(2026, 2, 15), date(2028, 6, 30), "year", "calendar") == [
        (date(2026, 2, 15), date(2026, 12, 31)),
        (date(2027, 1, 1), date(2027, 12, 31)),
        (date(2028, 1, 1), date(2028, 6, 30)),
    ]


def test_calendar_quarter_containing() -> None:
    kwargs = dict(effective_date=date(2026, 2, 15), end_date=date(2026, 11, 10), length="quarter", anchor="calendar")
    assert period_containing(date(2026, 2, 15), **kwargs) == Period(0, date(2026, 2, 15), date(2026, 3, 31))
    assert period_containing(date(2026, 7, 1), **kwargs) == Period(2, date(2026, 7, 1), date(2026, 9, 30))
    assert period_containing(date(2026, 11, 11), **kwargs) is None
    assert period_containing(date(2026, 2, 14), **kwargs) is None


# --- edges and errors -------------------------------------------------------------------------


@pytest.mark.parametrize("length", ["quarter", "year"])
@pytest.mark.parametrize("anchor", ["contract", "calendar"])
def test_one_day_contract(length: str, anchor: str) -> None:
    day = date(2026, 6, 30)
    periods = periods_of_term(effective_date=day, end_date=day, length=length, anchor=anchor)
    assert periods == [Period(0, day, day)]
    assert periods[0].days == 1
    assert period_containing(day, effective_date=day, end_date=day, length=length, anchor=anchor) == periods[0]


def test_contract_period_containing_near_clamped_boundary() -> None:
    kwargs = dict(effective_date=date(2026, 1, 31), end_date=date(2027, 1, 30), length="quarter", anchor="contract")
    assert period_containing(date(2026, 4, 29), **kwargs).index == 0  # type: ignore[union-attr]
    assert period_containing(date(2026, 4, 30), **kwargs).index == 1  # type: ignore[union-attr]
    assert period_containing(date(2026, 7, 30), **kwargs).index == 1  # type: ignore[union-attr]
    assert period_containing(date(2026, 7, 31), **kwargs).index == 2  # type: ignore[union-attr]


def test_expires_in_days() -> None:
    period = Period(0, date(2026, 1, 1), date(2026, 3, 31))
    assert expires_in_days(period, date(2026, 3, 31)) == 0
    assert expires_in_days(period, date(2026, 3, 1)) == 30
    assert expires_in_days(period, date(2026, 4, 2)) == -2
    assert period.contains(date(2026, 1, 1)) and period.contains(date(2026, 3, 31))
    assert not period.contains(date(2025, 12, 31)) and not period.contains(date(2026, 4, 1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(effective_date=date(2026, 2, 1), end_date=date(2026, 1, 31), length="quarter", anchor="contract"), "before"),
        (dict(effective_date=date(2026, 1, 1), end_date=date(2026, 12, 31), length="month", anchor="contract"), "length"),
        (dict(effective_date=date(2026, 1, 1), end_date=date(2026, 12, 31), length="year", anchor="fiscal"), "anchor"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        periods_of_term(**kwargs)
    with pytest.raises(ValueError, match=message):
        period_containing(date(2026, 1, 15), **kwargs)


# --- properties -------------------------------------------------------------------------------

effective_dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
term_days = st.integers(min_value=0, max_value=3652)  # end - effective: 1 day to 10 years inclusive
lengths = st.sampled_from(["quarter", "year"])
anchors = st.sampled_from(["contract", "calendar"])


@given(effective=effective_dates, extra=term_days, length=lengths, anchor=anchors)
def test_periods_tile_the_term(effective: date, extra: int, length: str, anchor: str) -> None:
    end = effective + timedelta(days=extra)
    periods = periods_of_term(effective_date=effective, end_date=end, length=length, anchor=anchor)
    assert periods[0].start == effective
    assert periods[-1].end == end
    assert [p.index for p in periods] == list(range(len(periods)))
    assert all(p.start <= p.end for p in periods)
    assert all(nxt.start == prev.end + ONE_DAY for prev, nxt in zip(periods, periods[1:]))
    assert sum(p.days for p in periods) == extra + 1


@given(effective=effective_dates, extra=term_days, length=lengths, anchor=anchors, data=st.data())
def test_each_day_in_exactly_one_period(effective: date, extra: int, length: str, anchor: str, data: st.DataObject) -> None:
    end = effective + timedelta(days=extra)
    kwargs = dict(effective_date=effective, end_date=end, length=length, anchor=anchor)
    periods = periods_of_term(**kwargs)
    # Term edges and period boundaries are where an off-by-one would hide; add a random day too.
    days = {effective, end, effective + timedelta(days=data.draw(st.integers(0, extra), label="offset"))}
    days |= {d for p in periods for d in (p.start, p.end)}
    for day in days:
        holders = [p for p in periods if p.contains(day)]
        assert len(holders) == 1
        assert period_containing(day, **kwargs) == holders[0]


@given(
    effective=effective_dates,
    extra=term_days,
    length=lengths,
    anchor=anchors,
    before=st.booleans(),
    gap=st.integers(min_value=1, max_value=2000),
)
def test_days_outside_the_term_are_in_no_period(
    effective: date, extra: int, length: str, anchor: str, before: bool, gap: int
) -> None:
    end = effective + timedelta(days=extra)
    day = effective - timedelta(days=gap) if before else end + timedelta(days=gap)
    assert period_containing(day, effective_date=effective, end_date=end, length=length, anchor=anchor) is None


@given(effective=effective_dates, extra=term_days, length=lengths)
def test_contract_starts_are_computed_from_the_anchor(effective: date, extra: int, length: str) -> None:
    end = effective + timedelta(days=extra)
    step = STEP[length]
    periods = periods_of_term(effective_date=effective, end_date=end, length=length, anchor="contract")
    for p in periods:
        assert p.start == add_months(effective, step * p.index)
        if p is not periods[-1]:
            assert p.end == add_months(effective, step * (p.index + 1)) - ONE_DAY
    assert periods[-1].end == end


@given(effective=effective_dates, extra=term_days, length=lengths)
def test_calendar_periods_start_on_calendar_boundaries(effective: date, extra: int, length: str) -> None:
    end = effective + timedelta(days=extra)
    periods = periods_of_term(effective_date=effective, end_date=end, length=length, anchor="calendar")
    for p in periods[1:]:
        assert p.start.day == 1 and (p.start.month - 1) % STEP[length] == 0
    for p in periods[:-1]:
        assert p.end == add_months(p.end.replace(day=1), 1) - ONE_DAY  # ends on a month's last day
        assert p.end.month % STEP[length] == 0


@given(day=effective_dates, months=st.integers(min_value=-1200, max_value=1200))
def test_add_months_shifts_months_exactly_and_clamps(day: date, months: int) -> None:
    moved = add_months(day, months)
    assert (moved.year * 12 + moved.month) - (day.year * 12 + day.month) == months
    assert moved.day == min(day.day, calendar.monthrange(moved.year, moved.month)[1])
