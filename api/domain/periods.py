"""Entitlement periods: quarters or years, anchored to the contract or the calendar, clipped to the term."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = ["Period", "add_months", "expires_in_days", "period_containing", "periods_of_term"]

_MONTHS = {"quarter": 3, "year": 12}
_ANCHORS = ("contract", "calendar")
_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, order=True)
class Period:
    index: int  # 0-based position within the contract term
    start: date  # inclusive
    end: date  # inclusive

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def add_months(day: date, months: int) -> date:
    """Shift by whole months, clamping the day to the target month's end (Jan 31 + 1 month = Feb 28/29)."""
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last))


def _validate(effective_date: date, end_date: date, length: str, anchor: str) -> tuple[int, date]:
    """Return (months per period, origin): the unclipped start of period 0."""
    if end_date < effective_date:
        raise ValueError(f"end_date {end_date} is before effective_date {effective_date}")
    if length not in _MONTHS:
        raise ValueError(f"unknown period length {length!r}; expected one of {sorted(_MONTHS)}")
    if anchor not in _ANCHORS:
        raise ValueError(f"unknown period anchor {anchor!r}; expected one of {list(_ANCHORS)}")
    step = _MONTHS[length]
    if anchor == "contract":
        return step, effective_date
    return step, date(effective_date.year, (effective_date.month - 1) // step * step + 1, 1)


def _period(n: int, origin: date, step: int, effective_date: date, end_date: date) -> Period:
    # Every boundary is computed from the origin, never chained, so a clamped day (Apr 30) never drifts later ones.
    start = add_months(origin, n * step)
    end = add_months(origin, (n + 1) * step) - _ONE_DAY
    return Period(n, max(start, effective_date), min(end, end_date))


def period_containing(
    day: date, *, effective_date: date, end_date: date, length: str, anchor: str
) -> Period | None:
    """The period holding `day`, or None when `day` is outside the term."""
    step, origin = _validate(effective_date, end_date, length, anchor)
    if not effective_date <= day <= end_date:
        return None
    n = ((day.year - origin.year) * 12 + day.month - origin.month) // step
    # The month count lands on the right period unless `day` precedes that period's start within the same month.
    if add_months(origin, n * step) > day:
        n -= 1
    return _period(n, origin, step, effective_date, end_date)


def periods_of_term(*, effective_date: date, end_date: date, length: str, anchor: str) -> list[Period]:
    """All periods of the term in order; together they cover it exactly."""
    step, origin = _validate(effective_date, end_date, length, anchor)
    periods = [_period(0, origin, step, effective_date, end_date)]
    while periods[-1].end < end_date:
        periods.append(_period(len(periods), origin, step, effective_date, end_date))
    return periods


def expires_in_days(period: Period, today: date) -> int:
    """Days from `today` to the period's last day: 0 on the last day, negative once it has ended."""
    return (period.end - today).days
