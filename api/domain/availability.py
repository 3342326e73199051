"""Monthly availability and the service credit it earns (seed 001), computed on the UTC minutes of a
calendar month; pure, no I/O.

Decisions, each in the customer's favour where the seed leaves room:
- A minute is down when any outage covers any part of it: an outage from 10:00:30 to 10:01:10 makes
  minutes 10:00 and 10:01 down. Overlapping outages count each minute once; an outage crossing a month
  boundary counts in each month for its own minutes.
- A contract in force on part of the month (its first or last month; contract dates are taken as UTC
  days) is measured over the minutes it is in force, and credited on the fee pro rata to those days: the
  minutes before it started are not its service, and counting them as up would dilute its downtime.
- Availability is compared with the tiers exactly (integer minutes against the tier's Decimal bound,
  never a rounded percentage); a tier covers availability below `below` and at or above `down_to`, as
  the program file states it, so exactly 99.99 % earns nothing and exactly 99.0 % earns 10 %.
- The seed credits "the impacted portion of the Service" once per month. Where several outages of a month
  impacted different portions, the credit uses the largest of them: every down minute already counts
  whole in the availability figure, the seed gives no rule for weighting, and the largest portion is the
  customer's reading.
- The month's fee (pro rata where the contract is in force part of the month) is a money amount, rounded
  half-up to the currency's minor unit first; the credit is that fee × portion × credit percent, rounded
  half-up again, so the figures shown multiply out by hand.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import format_currency, format_decimal, get_currency_precision

from api.programs.schema import Availability, CreditTier

__all__ = [
    "OutageSpan",
    "ServiceCredit",
    "compute_credit",
    "credit_tier",
    "downtime_minutes",
    "format_money",
    "format_money_range",
    "minor_unit",
    "month_bounds",
    "month_start",
    "round_money",
]

_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class OutageSpan:
    """What the computation needs of one outage: when it started and ended (aware) and the share of the
    service it impacted (0 < portion ≤ 1)."""

    started_at: datetime
    ended_at: datetime
    impacted_portion: Decimal


@dataclass(frozen=True)
class ServiceCredit:
    """One contract's availability over one calendar month and the credit it earns."""

    month: date  # the 1st of the month
    minutes: int  # the UTC minutes measured: the month's, or those the contract is in force
    downtime_minutes: int
    availability_percent: Decimal  # (minutes − downtime) / minutes × 100, unrounded
    target_percent: Decimal
    credit_percent: Decimal  # 0 when the target was met
    tier_below: Decimal | None  # the tier reached: availability below this ...
    tier_down_to: Decimal | None  # ... and at or above this; None when none was
    impacted_portion: Decimal  # the largest portion impacted by the month's outages; 0 without any
    fee: Decimal  # the month's fee, pro rata to the days in force, in minor units
    amount: Decimal  # the credit, rounded half-up to the currency's minor unit
    currency: str

    @property
    def earned(self) -> bool:
        return self.amount > 0


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The first instant of the month and of the next one, UTC."""
    first = month_start(month)
    days = calendar.monthrange(first.year, first.month)[1]
    start = datetime.combine(first, time(), UTC)
    return start, start + timedelta(days=days)


def _floor_minute(instant: datetime) -> datetime:
    instant = instant.astimezone(UTC)
    return instant.replace(second=0, microsecond=0)


def _ceil_minute(instant: datetime) -> datetime:
    floored = _floor_minute(instant)
    return floored if floored == instant.astimezone(UTC) else floored + _MINUTE


def downtime_minutes(window_start: datetime, window_end: datetime, outages: Iterable[OutageSpan]) -> int:
    """The whole UTC minutes of [window_start, window_end) that any outage touches, each counted once.
    The window's ends are on minute boundaries."""
    spans = sorted(
        (max(_floor_minute(o.started_at), window_start), min(_ceil_minute(o.ended_at), window_end))
        for o in outages
    )
    down = timedelta()
    current_start: datetime | None = None
    current_end: datetime | None = None
    for start, end in spans:
        if end <= start:
            continue
        if current_end is None or start > current_end:
            if current_end is not None and current_start is not None:
                down += current_end - current_start
            current_start, current_end = start, end
        elif end > current_end:
            current_end = end
    if current_start is not None and current_end is not None:
        down += current_end - current_start
    return int(down // _MINUTE)


def credit_tier(terms: Availability, minutes: int, downtime: int) -> CreditTier | None:
    """The tier an availability of (minutes − downtime)/minutes falls in, compared exactly: below
    `below` and at or above `down_to`. None when the target is met (or nothing was measured)."""
    if minutes <= 0:
        return None
    up = Decimal(minutes - downtime) * 100  # availability × minutes, exact
    for tier in terms.credits:
        if up < tier.below * minutes and up >= tier.down_to * minutes:
            return tier
    return None


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of the currency: 0.01 for EUR, 1 for JPY."""
    return Decimal(1).scaleb(-get_currency_precision(currency))


def round_money(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def _in_force(month: date, effective_date: date, end_date: date) -> tuple[date, date] | None:
    """The first and last day of the month the contract is in force, or None."""
    first = month_start(month)
    last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
    start, end = max(first, effective_date), min(last, end_date)
    return (start, end) if start <= end else None


def compute_credit(
    month: date,
    terms: Availability,
    *,
    monthly_fee: Decimal,
    currency: str,
    effective_date: date,
    end_date: date,
    outages: Sequence[OutageSpan],
) -> ServiceCredit | None:
    """The month's availability and credit for a contract on these terms; None when the contract is not
    in force on any day of the month. `outages` may include ones outside the month: only the minutes
    inside the measured window count."""
    first = month_start(month)
    days = _in_force(first, effective_date, end_date)
    if days is None:
        return None
    month_days = calendar.monthrange(first.year, first.month)[1]
    window_start = datetime.combine(days[0], time(), UTC)
    window_end = datetime.combine(days[1] + timedelta(days=1), time(), UTC)
    minutes = int((window_end - window_start) // _MINUTE)
    counted = [o for o in outages if o.started_at < window_end and o.ended_at > window_start]
    downtime = downtime_minutes(window_start, window_end, counted)
    availability = Decimal(minutes - downtime) * 100 / Decimal(minutes)
    tier = credit_tier(terms, minutes, downtime)
    in_force_days = (days[1] - days[0]).days + 1
    fee = round_money(monthly_fee * in_force_days / month_days, currency)
    portion = max((o.impacted_portion for o in counted), default=Decimal(0)) if downtime else Decimal(0)
    percent = tier.credit_percent if tier is not None else Decimal(0)
    amount = round_money(fee * portion * percent / 100, currency)
    return ServiceCredit(
        month=first,
        minutes=minutes,
        downtime_minutes=downtime,
        availability_percent=availability,
        target_percent=terms.target_percent,
        credit_percent=percent,
        tier_below=tier.below if tier is not None else None,
        tier_down_to=tier.down_to if tier is not None else None,
        impacted_portion=portion,
        fee=fee,
        amount=amount,
        currency=currency,
    )


def format_money(amount: Decimal, currency: str, locale: str = "en") -> str:
    """An amount for people, in the locale's way: `€125.00`, `DKK 3,500.00` … (babel)."""
    return format_currency(amount, currency, locale=locale)


def format_money_range(low: Decimal, high: Decimal, currency: str, locale: str = "en") -> str:
    """A price range for people: `DKK 3,500.00–5,000.00`."""
    digits = get_currency_precision(currency)
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return (
        f"{currency} {format_decimal(low, format=pattern, locale=locale)}"
        f"–{format_decimal(high, format=pattern, locale=locale)}"
    )
