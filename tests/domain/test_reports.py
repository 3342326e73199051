"""The pure parts of the monthly report: the month, percentiles, weeks, a period's line, formatting."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from api.domain.reports import (
    ReportFormatter,
    history_months,
    month_last_day,
    parse_month,
    percentile,
    period_line,
    report_weeks,
)


def test_parse_month():
    assert parse_month("2026-03") == date(2026, 3, 1)
    assert parse_month(" 2026-12 ") == date(2026, 12, 1)
    for bad in ("2026-13", "2026-3", "26-03", "2026-03-01", "march", ""):
        with pytest.raises(ValueError, match="YYYY-MM"):
            parse_month(bad)


def test_month_last_day_and_history():
    assert month_last_day(date(2026, 2, 1)) == date(2026, 2, 28)
    assert month_last_day(date(2028, 2, 1)) == date(2028, 2, 29)
    months = history_months(date(2026, 3, 1))
    assert len(months) == 12
    assert months[0] == date(2025, 4, 1) and months[-1] == date(2026, 3, 1)


def test_percentile_interpolates_between_ranks():
    assert percentile([], "0.5") is None
    assert percentile([7], "0.9") == 7
    assert percentile([1200, 2400, 3600, 7200], "0.5") == 3000
    # position 3 x 0.9 = 2.7: 3600 + 0.7 x (7200 - 3600)
    assert percentile([7200, 1200, 3600, 2400], "0.9") == 6120
    assert percentile([1, 2], "0.5") == 2  # 1.5 rounds half up


def test_weeks_are_iso_weeks_clipped_to_the_month():
    weeks = report_weeks(date(2026, 3, 1))  # 1 March 2026 is a Sunday
    assert weeks[0] == (date(2026, 3, 1), date(2026, 3, 1))
    assert weeks[1] == (date(2026, 3, 2), date(2026, 3, 8))
    assert weeks[-1] == (date(2026, 3, 30), date(2026, 3, 31))
    assert len(weeks) == 6
    assert sum((end - start).days + 1 for start, end in weeks) == 31


def test_period_line_expired_only_when_it_ended_in_the_month():
    common = dict(allowance=5, consumed_in_month=0, consumed_to_date=3, overage_in_month=0, overage_to_date=0)
    ended = period_line(period_start=date(2026, 1, 15), period_end=date(2026, 4, 14), month=date(2026, 4, 1),
                        as_of_day=date(2026, 5, 1), **common)
    assert (ended.remaining, ended.ended, ended.expired, ended.expiring) == (2, True, 2, 0)
    running = period_line(period_start=date(2026, 1, 15), period_end=date(2026, 4, 14), month=date(2026, 3, 1),
                          as_of_day=date(2026, 4, 1), **common)
    assert (running.remaining, running.ended, running.expired, running.expiring) == (2, False, 0, 2)
    # The month under way: the period ends today, so it has not ended yet.
    today = period_line(period_start=date(2026, 1, 15), period_end=date(2026, 4, 14), month=date(2026, 4, 1),
                        as_of_day=date(2026, 4, 14), **common)
    assert (today.ended, today.expired, today.expiring) == (False, 0, 2)


def test_formatter():
    f = ReportFormatter("en")
    assert f.quantity(90, "minutes") == "1 h 30 min"
    assert f.quantity(120, "minutes") == "2 h"
    assert f.quantity(75_000, "minutes") == "1,250 h"
    assert f.quantity(1, "activities") == "1 activity"
    assert f.quantity(0, "activities") == "0 activities"
    assert f.duration(None) == "—"
    assert f.duration(45) == "45 s"
    assert f.duration(3000) == "50 min"
    assert f.duration(6120) == "1 h 42 min"
    assert f.money(Decimal("2500"), "EUR") == "€2,500.00"
    assert f.day(date(2026, 5, 14)) == "May 14, 2026"
    assert f.month(date(2026, 3, 1)) == "March 2026"
    assert f.percent(Decimal("99.95")) == "99.95 %"
    assert ReportFormatter("de").quantity(75_000, "minutes") == "1.250 h"
