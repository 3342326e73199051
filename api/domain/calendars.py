"""Support calendars and business-time arithmetic: when the clock runs, and how far open time reaches.

A calendar is compiled, one local year at a time, into its sorted open intervals in UTC epoch seconds
with running totals of open time. `add` and `between` then cost two binary searches, whatever the
duration: closed nights, weekends and holidays are never stepped through.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays as holiday_library
from dateutil.easter import easter

from api.programs.schema import Calendar

__all__ = ["BusinessCalendar", "Span", "compile_calendar", "local_open_spans"]

Span = tuple[int, int]  # minutes from local midnight, end exclusive, 0 <= start < end <= 1440
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ALL_DAY: tuple[Span, ...] = ((0, 1440),)


def _parse_span(text: str) -> Span:
    start, end = text.split("-")
    return int(start[:2]) * 60 + int(start[3:]), int(end[:2]) * 60 + int(end[3:])


def _union(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _weekly(spec: Calendar) -> tuple[tuple[Span, ...], ...]:
    if spec.schedule == "24/7":
        return (_ALL_DAY,) * 7
    if spec.schedule == "24/5":
        return (_ALL_DAY,) * 5 + ((), ())
    return tuple(tuple(_union([_parse_span(s) for s in spec.hours.get(day, ())])) for day in _WEEKDAYS)


def _holidays(spec: Calendar, year: int) -> set[date]:
    if spec.holidays is None:
        return set()
    source = spec.holidays
    return set(
        holiday_library.country_holidays(
            source.country, subdiv=source.subdivision, years=year, categories=source.categories
        )
    )


def _window_days(rule: str, year: int, *, month: int | None, count: int | None, public: set[date]) -> set[date]:
    """The local dates of `year` an open-window rule covers."""
    first, last = date(year, 1, 1), date(year, 12, 31)
    days = (first + timedelta(n) for n in range((last - first).days + 1))
    if rule == "weekends":
        return {d for d in days if d.weekday() >= 5}
    if rule == "public_holidays":
        return set(public)
    if rule == "summer_weeks":
        wanted = month or 7
        return {d for d in days if d.month == wanted and d.weekday() < 5}
    if rule == "christmas_to_new_year":
        # The weekdays strictly between Boxing Day and New Year's Day.
        return {date(year, 12, n) for n in range(27, 32) if date(year, 12, n).weekday() < 5}
    sunday = easter(year)
    if rule == "day_after_ascension":
        return {sunday + timedelta(days=40)}
    if rule == "weekdays_before_easter":
        # The last `count` working weekdays before Easter Sunday: in Denmark, where Maundy Thursday and
        # Good Friday are public holidays, Monday to Wednesday of Holy Week.
        found: list[date] = []
        day = sunday - timedelta(days=1)
        while len(found) < (count or 3):
            if day.weekday() < 5 and day not in public:
                found.append(day)
            day -= timedelta(days=1)
        return set(found)
    raise ValueError(f"unknown open-window rule {rule!r}")


def local_open_spans(spec: Calendar, day: date, rules: _YearRules | None = None) -> list[Span]:
    """Open spans of one local day: the weekly schedule unless a public holiday or a closed window's
    day, plus the open windows covering the day (emergency cover); an explicit closed date closes all."""
    rules = rules or _year_rules(spec, day.year)
    if day in rules.closed:
        return []
    spans = [] if day in rules.public or day in rules.closed_by_rule else list(rules.weekly[day.weekday()])
    for days, window_spans in rules.windows:
        if day in days:
            spans.extend(window_spans)
    return _union(spans)


@dataclass(frozen=True)
class _YearRules:
    weekly: tuple[tuple[Span, ...], ...]
    public: set[date]
    closed: set[date]
    closed_by_rule: set[date]
    windows: tuple[tuple[set[date], tuple[Span, ...]], ...]


def _year_rules(spec: Calendar, year: int) -> _YearRules:
    public = _holidays(spec, year)
    windows = tuple(
        (
            _window_days(w.rule, year, month=w.month, count=w.count, public=public),
            tuple(_parse_span(s) for s in w.hours),
        )
        for w in spec.open_windows
    )
    closed_by_rule: set[date] = set()
    for window in spec.closed_windows:
        closed_by_rule |= _window_days(window.rule, year, month=window.month, count=window.count, public=public)
    return _YearRules(
        _weekly(spec), public, {d for d in spec.closed_dates if d.year == year}, closed_by_rule, windows
    )


@dataclass
class _Year:
    """One local year: open intervals in epoch seconds and open time before each."""

    starts: list[int]
    ends: list[int]
    before: list[int]  # open seconds in the year before interval i
    total: int
    first_instant: int  # local 1 January 00:00
    end_instant: int  # local 1 January 00:00 of the next year


def _epoch(day: date, minute: int, zone: ZoneInfo) -> int:
    local = datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(minutes=minute)
    # Wall-clock arithmetic, then the zone's offset at that wall time (fold=0 for ambiguous times).
    wall = datetime(local.year, local.month, local.day, local.hour, local.minute, tzinfo=zone)
    instant = int(wall.timestamp())
    if datetime.fromtimestamp(instant, zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return instant
    # A wall time skipped by a DST gap does not exist; fold=0 would put it an hour late (02:30 -> 03:30).
    # It stands for the end of the gap: the transition instant, found between the two readings.
    after = datetime.fromtimestamp(instant, zone).utcoffset()
    before, found = int(wall.replace(fold=1).timestamp()), instant
    while found - before > 1:
        middle = (before + found) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == after:
            found = middle
        else:
            before = middle
    return found


@dataclass
class BusinessCalendar:
    """A compiled calendar. Instants in and out are time-zone aware datetimes; durations are seconds."""

    spec: Calendar
    zone: ZoneInfo = field(init=False)
    _years: dict[int, _Year] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.zone = ZoneInfo(self.spec.timezone)

    # ---- compilation ----

    def _year(self, year: int) -> _Year:
        table = self._years.get(year)
        if table is None:
            table = self._years[year] = self._compile(year)
        return table

    def _compile(self, year: int) -> _Year:
        starts: list[int] = []
        ends: list[int] = []
        rules = _year_rules(self.spec, year)
        day = date(year, 1, 1)
        while day.year == year:
            for start, end in local_open_spans(self.spec, day, rules):
                s, e = _epoch(day, start, self.zone), _epoch(day, end, self.zone)
                if e <= s:
                    continue  # a span wholly inside a skipped DST hour
                if starts and s <= ends[-1]:
                    ends[-1] = max(ends[-1], e)
                else:
                    starts.append(s)
                    ends.append(e)
            day += timedelta(days=1)
        before, total = [], 0
        for s, e in zip(starts, ends, strict=True):
            before.append(total)
            total += e - s
        first = _epoch(date(year, 1, 1), 0, self.zone)
        following = _epoch(date(year + 1, 1, 1), 0, self.zone)
        return _Year(starts, ends, before, total, first, following)

    def _year_of(self, instant: int) -> int:
        """The local year holding `instant`: the UTC year, or its neighbour within a day of New Year."""
        year = time.gmtime(instant).tm_year
        table = self._year(year)
        if instant < table.first_instant:
            return year - 1
        if instant >= table.end_instant:
            return year + 1
        return year

    @staticmethod
    def _open_before(table: _Year, instant: int) -> int:
        """Open seconds of the year before `instant`."""
        i = bisect.bisect_right(table.starts, instant) - 1
        if i < 0:
            return 0
        return table.before[i] + min(instant, table.ends[i]) - table.starts[i]

    # ---- arithmetic ----

    def between_seconds(self, start: int, end: int) -> int:
        if end <= start:
            return 0
        year_a, year_b = self._year_of(start), self._year_of(end)
        if year_a == year_b:
            table = self._year(year_a)
            return self._open_before(table, end) - self._open_before(table, start)
        first = self._year(year_a)
        total = first.total - self._open_before(first, start)
        for year in range(year_a + 1, year_b):
            total += self._year(year).total
        return total + self._open_before(self._year(year_b), end)

    def add_seconds(self, start: int, duration: int) -> int:
        if duration < 0:
            raise ValueError("a duration of open time cannot be negative")
        if duration == 0:
            return start
        year = self._year_of(start)
        table = self._year(year)
        target = self._open_before(table, start) + duration
        for _ in range(200):
            if target <= table.total:
                # The interval in which the running total reaches the target; ending exactly at an
                # interval's end is right: the open time ran out there.
                i = bisect.bisect_left(table.before, target) - 1
                return table.starts[i] + target - table.before[i]
            target -= table.total
            year += 1
            table = self._year(year)
        raise ValueError(f"calendar {self.spec.name or self.spec.timezone} has no open time in 200 years")

    def add(self, start: datetime, duration: timedelta | int) -> datetime:
        """The instant at which `duration` (seconds) of open time has elapsed from `start`, to the second."""
        seconds = int(duration.total_seconds()) if isinstance(duration, timedelta) else int(duration)
        return datetime.fromtimestamp(self.add_seconds(_seconds(start), seconds), UTC)

    def between(self, start: datetime, end: datetime) -> int:
        """Open seconds between two instants (0 when end is not after start)."""
        return self.between_seconds(_seconds(start), _seconds(end))

    def is_open(self, instant: datetime) -> bool:
        t = _seconds(instant)
        table = self._year(self._year_of(t))
        i = bisect.bisect_right(table.starts, t) - 1
        return i >= 0 and t < table.ends[i]

    def open_windows(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The open intervals overlapping [start, end), clipped to it, in the calendar's time zone."""
        a, b = _seconds(start), _seconds(end)
        found: list[tuple[datetime, datetime]] = []
        for year in range(self._year_of(a), self._year_of(max(a, b - 1)) + 1):
            table = self._year(year)
            i = max(bisect.bisect_right(table.starts, a) - 1, 0)
            while i < len(table.starts) and table.starts[i] < b:
                s, e = max(table.starts[i], a), min(table.ends[i], b)
                if s < e:
                    if found and int(found[-1][1].timestamp()) == s:
                        found[-1] = (found[-1][0], datetime.fromtimestamp(e, self.zone))
                    else:
                        found.append((datetime.fromtimestamp(s, self.zone), datetime.fromtimestamp(e, self.zone)))
                i += 1
        return found


def _seconds(instant: datetime) -> int:
    """Whole epoch seconds: business time is exact to the second; fractions are dropped."""
    if instant.tzinfo is None:
        raise ValueError("instants must be time-zone aware")
    return int(instant.timestamp() // 1)


@lru_cache(maxsize=128)
def _compiled(spec_json: str) -> BusinessCalendar:
    return BusinessCalendar(Calendar.model_validate_json(spec_json))


def compile_calendar(spec: Calendar) -> BusinessCalendar:
    """One compiled calendar per distinct definition, shared by every caller in the process."""
    return _compiled(spec.model_dump_json())
