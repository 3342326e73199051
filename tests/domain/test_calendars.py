"""Support calendars and business-time arithmetic: properties over random calendars and instants, and
worked examples from the rulebook (DST days, holidays, Easter-dependent windows, year ends)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

import holidays
import pytest
from dateutil.easter import easter
from hypothesis import assume, HealthCheck, given, settings
from hypothesis import strategies as st

from api.config import PROJECT_ROOT
from api.domain.calendars import BusinessCalendar, compile_calendar, local_open_spans
from api.programs.loader import read_program_file
from api.programs.schema import WEEKDAYS, Calendar, ClosedWindow, OpenWindow

HOUR = 3600
DAY = 24 * HOUR
CPH = ZoneInfo("Europe/Copenhagen")
MAD = ZoneInfo("Europe/Madrid")


@cache
def shipped(program: str, calendar: str) -> Calendar:
    return read_program_file(PROJECT_ROOT / "programs" / f"{program}.toml").program.calendars[calendar]


def madrid() -> BusinessCalendar:
    return compile_calendar(shipped("partner-support", "business-hours-es"))


def with_windows(spec: Calendar, hours: tuple[str, ...], rules: tuple[str, ...] | None = None) -> Calendar:
    """`spec` with its open windows (those of `rules`, or all) moved to `hours`, so they show up on days
    that the weekly schedule already opens."""
    data = spec.model_dump()
    data["open_windows"] = [
        {**w, "hours": hours} for w in data["open_windows"] if rules is None or w["rule"] in rules
    ]
    return Calendar.model_validate(data)


def hm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# --- random calendars and instants ------------------------------------------------------------------

ZONES = ("Europe/Copenhagen", "Europe/Madrid", "America/New_York", "Australia/Sydney", "UTC")
# Boundaries that hit the DST changes (02:00-03:00) and the usual office hours, plus any minute.
_MINUTE = st.one_of(
    st.sampled_from((0, 60, 120, 130, 150, 180, 200, 480, 960, 1080, 1380, 1440)),
    st.integers(0, 1440),
)


@st.composite
def span_texts(draw: st.DrawFn) -> str:
    start, end = sorted((draw(_MINUTE), draw(_MINUTE)))
    if end - start < 15:  # at least a quarter of an hour, so that sparse calendars stay cheap
        start, end = (start, start + 15) if start <= 1425 else (1425, 1440)
    return f"{hm(start)}-{hm(end)}"


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    zone = draw(st.sampled_from(ZONES))
    schedule = draw(st.sampled_from(("24/7", "24/5", "hours", "hours")))
    hours: dict[str, list[str]] = {}
    if schedule == "hours":
        for day in WEEKDAYS:
            spans = draw(st.lists(span_texts(), max_size=3))
            if spans:
                hours[day] = spans
        if not hours:
            hours["mon"] = [draw(span_texts())]
    country = draw(st.sampled_from((None, "DK", "ES", "DE")))
    closed = draw(st.lists(st.dates(date(2025, 1, 1), date(2028, 12, 31)), max_size=4))
    rules = st.sampled_from(
        ("summer_weeks", "christmas_to_new_year", "day_after_ascension", "weekdays_before_easter", "weekends", "public_holidays")
    )
    months, counts = st.one_of(st.none(), st.integers(1, 12)), st.one_of(st.none(), st.integers(1, 10))
    closed_windows = draw(st.lists(st.builds(ClosedWindow, rule=rules, month=months, count=counts), max_size=2))
    windows = draw(
        st.lists(
            st.builds(
                OpenWindow,
                rule=rules,
                hours=st.lists(span_texts(), min_size=1, max_size=2).map(tuple),
                month=months,
                count=counts,
            ),
            max_size=3,
        )
    )
    spec = Calendar(
        timezone=zone,
        schedule=schedule,
        hours=hours,
        holidays=None if country is None else {"country": country},
        closed_dates=tuple(closed),
        closed_windows=tuple(closed_windows),
        open_windows=tuple(windows),
    )
    # A calendar its closures leave with no open time at all (only Sundays open, weekends closed) can
    # never meet a deadline; the engine refuses it, so the properties are about calendars that open.
    cal = compile_calendar(spec)
    assume(cal.between(datetime(2024, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)) > 0)
    return spec


_FIRST = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
_LAST = int(datetime(2028, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())


@cache
def dst_changes(zone: str) -> tuple[int, ...]:
    """The instants (epoch seconds) at which `zone` changes its UTC offset in 2025-2028."""
    tz = ZoneInfo(zone)

    def offset(t: int) -> timedelta | None:
        return datetime.fromtimestamp(t, tz).utcoffset()

    found = []
    for t in range(_FIRST, _LAST, DAY):
        if offset(t) != offset(t + DAY):
            low, high = t, t + DAY
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if offset(middle) == offset(t) else (low, middle)
            found.append(high)
    return tuple(found)


@st.composite
def instants(draw: st.DrawFn, zone: str = "UTC") -> datetime:
    """An aware instant in 2025-2028, with seconds (and sometimes a fraction), in UTC or `zone`; often
    within a few hours of one of the zone's DST changes."""
    changes = dst_changes(zone)
    if changes and draw(st.booleans()):
        seconds = draw(st.sampled_from(changes)) + draw(st.integers(-6 * HOUR, 6 * HOUR))
    else:
        seconds = draw(st.integers(_FIRST, _LAST))
    micro = draw(st.sampled_from((0, 0, 999_999)) | st.integers(0, 999_999))
    shown = ZoneInfo(draw(st.sampled_from(("UTC", zone))))
    return datetime.fromtimestamp(seconds, shown).replace(microsecond=micro)


durations = st.one_of(st.integers(0, 10 * DAY), st.integers(0, 2 * HOUR), st.just(0))
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def floor_second(instant: datetime) -> datetime:
    # In UTC: Python never calls a wall time of a repeated (fall-back) hour equal to an instant of
    # another zone, so results (UTC) are compared with UTC.
    return instant.replace(microsecond=0).astimezone(UTC)


def seconds(window: tuple[datetime, datetime]) -> int:
    # By timestamps: subtracting two datetimes of the same zone counts wall time, not elapsed time.
    return int(window[1].timestamp() - window[0].timestamp())


@PROPERTY
@given(spec=calendars(), data=st.data(), duration=durations)
def test_between_undoes_add(spec: Calendar, data: st.DataObject, duration: int) -> None:
    cal = compile_calendar(spec)
    start = data.draw(instants(spec.timezone))
    due = cal.add(start, duration)
    assert due.tzinfo is not None
    assert cal.between(start, due) == duration
    if duration == 0:
        assert due == floor_second(start)
    else:
        # The deadline never lands inside closed time: the second before it was open, and it is the
        # first instant with that much open time behind it.
        assert cal.is_open(due - timedelta(seconds=1))
        assert cal.between(start, due - timedelta(seconds=1)) == duration - 1
    assert cal.add(start, timedelta(seconds=duration)) == due


@PROPERTY
@given(spec=calendars(), data=st.data(), first=durations, second=durations)
def test_add_is_monotonic_in_the_duration(spec: Calendar, data: st.DataObject, first: int, second: int) -> None:
    cal = compile_calendar(spec)
    start = data.draw(instants(spec.timezone))
    short, long = sorted((first, second))
    assert floor_second(start) <= cal.add(start, short) <= cal.add(start, long)
    if short < long:
        assert cal.add(start, short) < cal.add(start, long)
        # Adding in two steps reaches the same instant.
        assert cal.add(cal.add(start, short), long - short) == cal.add(start, long)


@PROPERTY
@given(spec=calendars(), data=st.data())
def test_add_zero_is_the_start_to_the_second(spec: Calendar, data: st.DataObject) -> None:
    cal = compile_calendar(spec)
    start = data.draw(instants(spec.timezone))
    assert cal.add(start, 0) == floor_second(start)
    assert cal.between(start, start) == 0


@PROPERTY
@given(spec=calendars(), data=st.data())
def test_between_is_additive(spec: Calendar, data: st.DataObject) -> None:
    cal = compile_calendar(spec)
    a, b, c = sorted(data.draw(instants(spec.timezone)) for _ in range(3))
    assert cal.between(a, b) + cal.between(b, c) == cal.between(a, c)
    assert cal.between(c, a) == 0
    assert cal.between(a, c) <= int(c.timestamp() // 1) - int(a.timestamp() // 1)


@PROPERTY
@given(spec=calendars(), data=st.data())
def test_open_windows_add_up_to_between(spec: Calendar, data: st.DataObject) -> None:
    cal = compile_calendar(spec)
    a = floor_second(data.draw(instants(spec.timezone)))
    b = a + timedelta(seconds=data.draw(st.integers(0, 20 * DAY)))
    windows = cal.open_windows(a, b)
    assert sum(seconds(w) for w in windows) == cal.between(a, b)
    for (_, end), (start, _) in pairwise(windows):
        assert end < start  # merged: no two windows touch


@PROPERTY
@given(spec=calendars(), data=st.data())
def test_is_open_follows_the_local_wall_clock(spec: Calendar, data: st.DataObject) -> None:
    """An instant is open when its local time of day lies in an open span of its local date (checked away
    from the repeated hour of a fall-back, where a wall time names two instants)."""
    cal = compile_calendar(spec)
    zone = ZoneInfo(spec.timezone)
    local = floor_second(data.draw(instants(spec.timezone))).astimezone(zone)
    if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():
        return
    second_of_day = local.hour * HOUR + local.minute * 60 + local.second
    expected = any(s * 60 <= second_of_day < e * 60 for s, e in local_open_spans(spec, local.date()))
    assert cal.is_open(local) is expected


@PROPERTY
@given(
    zone=st.sampled_from([z for z in ZONES if z != "UTC"]),
    spans=st.lists(span_texts(), min_size=1, max_size=3),
    data=st.data(),
)
def test_is_open_follows_the_local_wall_clock_on_dst_days(zone: str, spans: list[str], data: st.DataObject) -> None:
    """The same, with the same spans every day and instants around the DST changes, so that span ends
    fall into the skipped hour: they open or close when it ends."""
    spec = Calendar(timezone=zone, schedule="hours", hours={day: spans for day in WEEKDAYS})
    cal = compile_calendar(spec)
    tz = ZoneInfo(zone)
    t = data.draw(st.sampled_from(dst_changes(zone))) + data.draw(st.integers(-4 * HOUR, 4 * HOUR))
    local = datetime.fromtimestamp(t, tz)
    if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():
        return
    second_of_day = local.hour * HOUR + local.minute * 60 + local.second
    expected = any(s * 60 <= second_of_day < e * 60 for s, e in local_open_spans(spec, local.date()))
    assert cal.is_open(local) is expected


# --- the rulebook's examples: Madrid office hours ---------------------------------------------------

ES = {year: holidays.country_holidays("ES", years=year) for year in (2026, 2027)}


def next_working_day(day: date) -> date:
    day += timedelta(days=1)
    while day.weekday() >= 5 or day in ES[day.year]:
        day += timedelta(days=1)
    return day


def test_madrid_friday_evening_ticket_is_answered_monday_morning() -> None:
    friday = date(2026, 3, 6)
    assert friday.weekday() == 4 and date(2026, 3, 9) not in ES[2026]
    filed = datetime(2026, 3, 6, 17, 30, tzinfo=MAD)
    due = madrid().add(filed, 2 * HOUR)
    assert due == datetime(2026, 3, 9, 9, 30, tzinfo=MAD)
    assert due.utcoffset() == timedelta(0)  # returned in UTC
    assert madrid().between(filed, due) == 2 * HOUR


MONDAY_HOLIDAYS = sorted(d for year in (2026, 2027) for d in ES[year] if d.weekday() == 0)


def test_there_are_spanish_national_holidays_on_mondays() -> None:
    assert date(2026, 10, 12) in MONDAY_HOLIDAYS  # Fiesta Nacional de España
    assert len(MONDAY_HOLIDAYS) >= 2


@pytest.mark.parametrize("monday", MONDAY_HOLIDAYS, ids=str)
def test_madrid_friday_before_a_holiday_monday(monday: date) -> None:
    friday = monday - timedelta(days=3)
    assert friday not in ES[friday.year]
    filed = datetime.combine(friday, datetime.min.time(), MAD).replace(hour=17, minute=30)
    answer = next_working_day(monday)
    assert answer.weekday() == 1  # the Tuesday
    due = madrid().add(filed, 2 * HOUR)
    assert due == datetime(answer.year, answer.month, answer.day, 9, 30, tzinfo=MAD)
    assert not madrid().is_open(datetime(monday.year, monday.month, monday.day, 12, tzinfo=MAD))


def test_madrid_ticket_in_closed_time_starts_at_the_next_opening() -> None:
    cal = madrid()
    saturday = datetime(2026, 3, 7, 10, 0, tzinfo=MAD)
    assert not cal.is_open(saturday)
    assert cal.add(saturday, HOUR) == datetime(2026, 3, 9, 9, 0, tzinfo=MAD)
    assert cal.add(datetime(2026, 3, 6, 20, 0, tzinfo=MAD), 30 * 60) == datetime(2026, 3, 9, 8, 30, tzinfo=MAD)
    before_opening = datetime(2026, 3, 9, 6, 0, tzinfo=MAD)
    assert cal.add(before_opening, 1) == datetime(2026, 3, 9, 8, 0, 1, tzinfo=MAD)
    assert cal.between(saturday, datetime(2026, 3, 9, 8, 0, tzinfo=MAD)) == 0


def test_madrid_add_ends_at_closing_not_at_the_next_opening() -> None:
    cal = madrid()
    due = cal.add(datetime(2026, 3, 6, 16, 0, tzinfo=MAD), 2 * HOUR)
    assert due == datetime(2026, 3, 6, 18, 0, tzinfo=MAD)  # the open time ran out at closing
    assert not cal.is_open(due) and cal.is_open(due - timedelta(seconds=1))


def test_year_end_on_a_business_calendar() -> None:
    cal = madrid()
    assert date(2027, 1, 1) in ES[2027]  # a Friday
    new_years_eve = datetime(2026, 12, 31, 17, 0, tzinfo=MAD)  # Thursday
    due = cal.add(new_years_eve, 2 * HOUR)
    assert due == datetime(2027, 1, 4, 9, 0, tzinfo=MAD)
    assert cal.between(new_years_eve, due) == 2 * HOUR
    # A whole working year: 2026 has 261 weekdays, 7 of Spain's national holidays fall on one.
    weekday_holidays = sum(1 for d in ES[2026] if d.weekday() < 5)
    assert weekday_holidays == 7
    start, end = datetime(2026, 1, 1, tzinfo=MAD), datetime(2027, 1, 1, tzinfo=MAD)
    assert cal.between(start, end) == (261 - weekday_holidays) * 10 * HOUR
    assert cal.add(start, cal.between(start, end)) == datetime(2026, 12, 31, 18, 0, tzinfo=MAD)


# --- DST in Europe/Copenhagen -----------------------------------------------------------------------

SPRING, FALL = date(2026, 3, 29), date(2026, 10, 25)


def local(day: date, hour: int, minute: int = 0, fold: int = 0, zone: ZoneInfo = CPH) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone, fold=fold)


def test_copenhagen_24_7_spring_forward_and_fall_back() -> None:
    cal = compile_calendar(Calendar(timezone="Europe/Copenhagen", schedule="24/7"))
    assert cal.between(local(SPRING, 0), local(SPRING + timedelta(days=1), 0)) == 23 * HOUR
    assert cal.between(local(FALL, 0), local(FALL + timedelta(days=1), 0)) == 25 * HOUR
    # 01:30 + 1 h: across the skipped hour, 03:30 summer time.
    assert cal.add(local(SPRING, 1, 30), HOUR) == local(SPRING, 3, 30)
    assert cal.add(local(SPRING, 1, 30), HOUR).utcoffset() == timedelta(0)
    assert local(SPRING, 3, 30).utcoffset() == timedelta(hours=2)
    # 01:30 summer time + 1 h: the first 02:30 (summer time); + 2 h: the second 02:30 (winter time).
    # (Compared in UTC: Python never calls an ambiguous wall time equal to an instant of another zone.)
    assert cal.add(local(FALL, 1, 30), HOUR) == local(FALL, 2, 30, fold=0).astimezone(UTC)
    assert cal.add(local(FALL, 1, 30), 2 * HOUR) == local(FALL, 2, 30, fold=1).astimezone(UTC)
    assert cal.add(local(FALL, 1, 30), 2 * HOUR).astimezone(CPH).strftime("%H:%M%z") == "02:30+0100"
    assert cal.between(local(FALL, 2, 30, fold=0), local(FALL, 2, 30, fold=1)) == HOUR
    assert cal.open_windows(local(SPRING, 0), local(SPRING, 12)) == [(local(SPRING, 0), local(SPRING, 12))]


def test_copenhagen_office_hours_across_dst_weekends() -> None:
    # Plain office hours with Danish holidays (the shipped office calendar also closes Holy Week, which
    # follows the spring change in 2026: see the Easter test).
    cal = compile_calendar(
        Calendar(
            timezone="Europe/Copenhagen",
            schedule="hours",
            holidays={"country": "DK"},
            hours={day: ["08:00-16:00"] for day in WEEKDAYS[:5]},
        )
    )
    # Friday 15:00 winter time + 2 h: 1 h on Friday, then Monday 08:00-09:00 summer time.
    friday = local(SPRING - timedelta(days=2), 15)
    due = cal.add(friday, 2 * HOUR)
    assert due == local(SPRING + timedelta(days=1), 9)
    assert due.astimezone(CPH).utcoffset() == timedelta(hours=2)
    assert cal.between(friday, due) == 2 * HOUR
    # And back: Friday 15:00 summer time + 2 h -> Monday 09:00 winter time.
    friday = local(FALL - timedelta(days=2), 15)
    assert cal.add(friday, 2 * HOUR) == local(FALL + timedelta(days=1), 9)
    # The weeks around each change still hold 8 hours a working day (Easter 2026 follows the spring change).
    for sunday in (SPRING, FALL):
        days = [sunday + timedelta(days=n) for n in range(-6, 7)]  # Monday to Saturday
        working = [d for d in days if d.weekday() < 5 and d not in holidays.country_holidays("DK", years=2026)]
        assert len(working) == (8 if sunday == SPRING else 10)
        assert cal.between(local(days[0], 0), local(days[-1], 0)) == len(working) * 8 * HOUR


def test_copenhagen_weekend_cover_on_dst_sundays_is_eight_hours() -> None:
    cal = compile_calendar(shipped("tiered-support", "dk-full-emergency"))
    for sunday in (SPRING, FALL):
        assert local_open_spans(cal.spec, sunday) == [(480, 960)]
        assert cal.between(local(sunday, 0), local(sunday + timedelta(days=1), 0)) == 8 * HOUR
        assert cal.add(local(sunday, 1), 4 * HOUR) == local(sunday, 12)


def test_spans_touching_the_skipped_and_repeated_hours() -> None:
    spec = Calendar(
        timezone="Europe/Copenhagen",
        schedule="hours",
        hours={"sun": ["00:00-06:00"], "mon": ["08:00-16:00"]},
    )
    cal = compile_calendar(spec)
    assert cal.between(local(SPRING, 0), local(SPRING, 12)) == 5 * HOUR
    assert cal.between(local(FALL, 0), local(FALL, 12)) == 7 * HOUR
    # Spans that begin inside the skipped hour open when it ends (03:00 summer time), not an hour late;
    # a span wholly inside it has no open time.
    gap = compile_calendar(
        Calendar(timezone="Europe/Copenhagen", schedule="hours", hours={"sun": ["02:10-02:40", "02:30-04:00"]})
    )
    assert gap.open_windows(local(SPRING, 0), local(SPRING, 12)) == [(local(SPRING, 3), local(SPRING, 4))]
    assert gap.is_open(local(SPRING, 3, 10))
    inside = compile_calendar(
        Calendar(timezone="Europe/Copenhagen", schedule="hours", hours={"sun": ["02:10-02:40"], "mon": ["09:00-10:00"]})
    )
    assert inside.between(local(SPRING, 0), local(SPRING, 12)) == 0
    assert inside.between(local(FALL, 0), local(FALL, 12)) == 30 * 60
    ny = ZoneInfo("America/New_York")
    us = compile_calendar(Calendar(timezone="America/New_York", schedule="hours", hours={"sun": ["02:30-09:00"]}))
    us_spring = date(2026, 3, 8)
    assert us.open_windows(local(us_spring, 0, zone=ny), local(us_spring, 12, zone=ny)) == [
        (local(us_spring, 3, zone=ny), local(us_spring, 9, zone=ny))
    ]


# --- holidays on weekends, Easter and holiday-period windows (Denmark) ------------------------------

DK = {year: holidays.country_holidays("DK", years=year) for year in (2026, 2027)}


def saturday_holiday(table: holidays.HolidayBase) -> date:
    return min(d for d in table if d.weekday() == 5)


@pytest.mark.parametrize(
    ("country", "zone", "table"),
    [("ES", "Europe/Madrid", ES[2026]), ("DK", "Europe/Copenhagen", DK[2026])],
    ids=["ES", "DK"],
)
def test_a_public_holiday_on_a_saturday(country: str, zone: str, table: holidays.HolidayBase) -> None:
    saturday = saturday_holiday(table)
    tz = ZoneInfo(zone)
    office = {day: ["08:00-18:00"] for day in WEEKDAYS[:5]}
    plain = compile_calendar(Calendar(timezone=zone, schedule="hours", hours=office))
    with_holidays = compile_calendar(
        Calendar(timezone=zone, schedule="hours", hours=office, holidays={"country": country})
    )
    monday = saturday - timedelta(days=5)
    week = (local(monday, 0, zone=tz), local(monday + timedelta(days=7), 0, zone=tz))
    weekday_holidays = sum(1 for n in range(5) if monday + timedelta(days=n) in table)
    # Nothing changes for a Monday-Friday calendar, except for holidays on the weekdays of that week.
    assert local_open_spans(with_holidays.spec, saturday) == [] == local_open_spans(plain.spec, saturday)
    assert with_holidays.between(*week) == plain.between(*week) - weekday_holidays * 10 * HOUR
    # An emergency window on public holidays opens the Saturday (and only the holiday of the weekend).
    covered = compile_calendar(
        Calendar(
            timezone=zone,
            schedule="hours",
            hours=office,
            holidays={"country": country},
            open_windows=[{"rule": "public_holidays", "hours": ["10:00-14:00"]}],
        )
    )
    assert covered.open_windows(local(saturday, 0, zone=tz), local(saturday, 23, zone=tz)) == [
        (local(saturday, 10, zone=tz), local(saturday, 14, zone=tz))
    ]
    friday_close = local(saturday - timedelta(days=1), 18, zone=tz)
    assert covered.add(friday_close, HOUR) == local(saturday, 11, zone=tz)
    weekend_holidays = sum(1 for d in (saturday, saturday + timedelta(days=1)) if d in table)
    assert covered.between(friday_close, local(saturday + timedelta(days=2), 0, zone=tz)) == weekend_holidays * 4 * HOUR


@pytest.mark.parametrize(
    ("year", "holy_monday", "day_after_ascension"),
    [(2026, date(2026, 3, 30), date(2026, 5, 15)), (2027, date(2027, 3, 22), date(2027, 5, 7))],
)
def test_easter_dependent_windows(year: int, holy_monday: date, day_after_ascension: date) -> None:
    table = DK[year]
    (easter_sunday,) = table.get_named("Easter Sunday", lookup="exact")
    (ascension,) = table.get_named("Ascension Day", lookup="exact")
    (maundy_thursday,) = table.get_named("Maundy Thursday", lookup="exact")
    (good_friday,) = table.get_named("Good Friday", lookup="exact")
    (easter_monday,) = table.get_named("Easter Monday", lookup="exact")
    assert easter_sunday == easter(year)
    assert holy_monday == easter_sunday - timedelta(days=6)
    assert day_after_ascension == ascension + timedelta(days=1) == easter_sunday + timedelta(days=40)
    assert day_after_ascension not in table and day_after_ascension.weekday() == 4
    # The three working weekdays before Easter: Monday to Wednesday of Holy Week, since Maundy Thursday
    # and Good Friday are Danish holidays.
    holy_week = [holy_monday + timedelta(days=n) for n in range(3)]
    assert all(d not in table for d in holy_week)
    periods = [*holy_week, day_after_ascension]
    holidays_ = [maundy_thursday, good_friday, easter_sunday, easter_monday, ascension]
    ordinary = [holy_monday - timedelta(days=3), holy_monday - timedelta(days=4), day_after_ascension - timedelta(days=2)]
    office_spans = [(480, 960)]

    office = shipped("tiered-support", "dk-office-hours")  # closes the holiday periods
    extended = shipped("tiered-support", "dk-holiday-emergency")  # reopens them 08:00-16:00
    premium = shipped("tiered-support", "dk-full-emergency")  # and public holidays and weekends
    for day in periods:
        assert local_open_spans(office, day) == []
        assert local_open_spans(extended, day) == office_spans
        assert local_open_spans(premium, day) == office_spans
    for day in holidays_:
        assert local_open_spans(office, day) == []
        assert local_open_spans(extended, day) == []
        assert local_open_spans(premium, day) == office_spans
    for day in ordinary:
        assert local_open_spans(office, day) == local_open_spans(extended, day) == office_spans

    # A ticket on the Friday before Palm Sunday at 15:00 with 2 hours to run.
    filed = local(holy_monday - timedelta(days=3), 15)
    tuesday_after_easter = easter_sunday + timedelta(days=2)
    assert compile_calendar(office).add(filed, 2 * HOUR) == local(tuesday_after_easter, 9)
    assert compile_calendar(extended).add(filed, 2 * HOUR) == local(holy_monday, 9)
    assert compile_calendar(premium).add(filed, 2 * HOUR) == local(holy_monday - timedelta(days=2), 9)  # Saturday
    # Extended from Wednesday 15:00 of Holy Week: 1 h, then nothing until the Tuesday after Easter.
    assert compile_calendar(extended).add(local(holy_week[2], 15), 2 * HOUR) == local(tuesday_after_easter, 9)
    assert compile_calendar(premium).add(local(holy_week[2], 15), 2 * HOUR) == local(maundy_thursday, 9)
    week = (local(holy_monday, 0), local(tuesday_after_easter, 0))
    assert compile_calendar(office).between(*week) == 0
    assert compile_calendar(extended).between(*week) == 3 * 8 * HOUR
    assert compile_calendar(premium).between(*week) == 8 * 8 * HOUR
    # The Friday after Ascension: closed in office hours, covered from Extended up.
    thursday_evening = local(ascension - timedelta(days=1), 15)
    assert compile_calendar(office).add(thursday_evening, 2 * HOUR) == local(day_after_ascension + timedelta(days=3), 9)
    assert compile_calendar(extended).add(thursday_evening, 2 * HOUR) == local(day_after_ascension, 9)

    # A longer run-up: count = 5 reaches back over the weekend to the Thursday and Friday before.
    five = Calendar(
        timezone="Europe/Copenhagen",
        schedule="hours",
        holidays={"country": "DK"},
        hours={"sun": ["08:00-09:00"]},
        open_windows=[{"rule": "weekdays_before_easter", "count": 5, "hours": ["20:00-22:00"]}],
    )
    opened = [d for d in (holy_monday + timedelta(days=n) for n in range(-7, 7)) if (1200, 1320) in local_open_spans(five, d)]
    assert opened == [holy_monday - timedelta(days=4), holy_monday - timedelta(days=3), *holy_week]


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        (2026, [date(2026, 12, 28), date(2026, 12, 29), date(2026, 12, 30), date(2026, 12, 31)]),
        (2027, [date(2027, 12, n) for n in range(27, 32)]),
    ],
)
def test_christmas_to_new_year(year: int, expected: list[date]) -> None:
    spec = with_windows(shipped("tiered-support", "dk-holiday-emergency"), ("18:00-20:00",), ("christmas_to_new_year",))
    cal = compile_calendar(spec)
    days = [date(year, 12, 20) + timedelta(days=n) for n in range(15)]
    assert [d for d in days if (1080, 1200) in local_open_spans(spec, d)] == expected
    # Across the year end: Thursday 31 December 2026 19:00 + 2 h -> Monday 4 January 10:00 (1 January is a holiday).
    if year == 2026:
        assert cal.add(local(date(2026, 12, 31), 19), 2 * HOUR) == local(date(2027, 1, 4), 9)
        assert cal.between(local(date(2026, 12, 31), 19), local(date(2027, 1, 4), 9)) == 2 * HOUR


@pytest.mark.parametrize("month", [None, 7, 8])
def test_summer_weeks(month: int | None) -> None:
    spec = Calendar(
        timezone="Europe/Copenhagen",
        schedule="hours",
        hours={"mon": ["08:00-16:00"]},
        open_windows=[{"rule": "summer_weeks", "month": month, "hours": ["07:00-09:00"]}],
    )
    wanted = month or 7
    cal = compile_calendar(spec)
    for year in (2026, 2027):
        first, last = date(year, wanted, 1), date(year, wanted + 1, 1)
        weekdays = sum(1 for n in range((last - first).days) if (first + timedelta(days=n)).weekday() < 5)
        mondays = sum(1 for n in range((last - first).days) if (first + timedelta(days=n)).weekday() == 0)
        # Two hours each weekday, Mondays 07:00-16:00.
        assert cal.between(local(first, 0), local(last, 0)) == (weekdays - mondays) * 2 * HOUR + mondays * 9 * HOUR
        assert local_open_spans(spec, first - timedelta(days=1)) in ([], [(480, 960)])
        saturday = next(first + timedelta(days=n) for n in range(7) if (first + timedelta(days=n)).weekday() == 5)
        assert local_open_spans(spec, saturday) == []


def test_closed_date_closes_even_the_windows() -> None:
    spec = Calendar(
        timezone="Europe/Copenhagen",
        schedule="24/7",
        holidays={"country": "DK"},
        closed_dates=(date(2026, 12, 26),),
        open_windows=[{"rule": "public_holidays"}],
    )
    assert local_open_spans(spec, date(2026, 12, 25)) == [(0, 1440)]
    assert local_open_spans(spec, date(2026, 12, 26)) == []
    cal = compile_calendar(spec)
    assert cal.add(local(date(2026, 12, 25), 23), 2 * HOUR) == local(date(2026, 12, 27), 1)


# --- 24/7 across midnight and New Year; zero lengths; input checks ----------------------------------


@pytest.mark.parametrize("calendar", ["support-by-plan/always", "premium-availability/always", "UTC"])
def test_24_7_across_midnight_and_new_year(calendar: str) -> None:
    if calendar == "UTC":
        spec = Calendar(timezone="UTC", schedule="24/7")
    else:
        program, name = calendar.split("/")
        spec = shipped(program, name)
    cal = compile_calendar(spec)
    tz = ZoneInfo(spec.timezone)
    for before, after in ((date(2026, 6, 9), date(2026, 6, 10)), (date(2026, 12, 31), date(2027, 1, 1))):
        a = datetime(before.year, before.month, before.day, 23, 59, 30, tzinfo=tz)
        b = datetime(after.year, after.month, after.day, 0, 0, 30, tzinfo=tz)
        assert cal.between(a, b) == 60
        assert cal.add(a, 60) == b
        assert cal.is_open(b - timedelta(seconds=30))  # no gap at 00:00
        assert cal.open_windows(a, b) == [(a, b)]
    start = datetime(2026, 12, 28, 10, tzinfo=tz)
    end = datetime(2027, 1, 4, 10, tzinfo=tz)
    assert cal.open_windows(start, end) == [(start, end)]
    assert cal.between(start, end) == 7 * DAY
    assert cal.add(start, 7 * DAY) == end


def test_24_5_across_a_weekend() -> None:
    cal = compile_calendar(shipped("premium-availability", "weekdays-de"))
    berlin = ZoneInfo("Europe/Berlin")
    friday = datetime(2026, 3, 6, 22, tzinfo=berlin)
    assert cal.add(friday, 4 * HOUR) == datetime(2026, 3, 9, 2, tzinfo=berlin)
    windows = cal.open_windows(datetime(2026, 3, 2, tzinfo=berlin), datetime(2026, 3, 16, tzinfo=berlin))
    assert windows == [
        (datetime(2026, 3, 2, tzinfo=berlin), datetime(2026, 3, 7, tzinfo=berlin)),
        (datetime(2026, 3, 9, tzinfo=berlin), datetime(2026, 3, 14, tzinfo=berlin)),
    ]


def test_zero_length_results() -> None:
    cal = madrid()
    saturday = datetime(2026, 3, 7, 10, 0, 5, 250_000, tzinfo=MAD)
    assert cal.add(saturday, 0) == saturday.replace(microsecond=0)  # not moved to the next opening
    assert cal.add(saturday, timedelta(0)) == saturday.replace(microsecond=0)
    assert cal.between(saturday, saturday) == 0
    assert cal.between(saturday, saturday - timedelta(hours=5)) == 0  # end before start
    assert cal.between(saturday, datetime(2026, 3, 9, 8, tzinfo=MAD)) == 0  # closed all the way
    assert cal.open_windows(saturday, datetime(2026, 3, 9, 8, tzinfo=MAD)) == []
    assert cal.between(datetime(2026, 3, 9, 8, 0, 0, 900_000, tzinfo=MAD), datetime(2026, 3, 9, 8, 0, 1, tzinfo=MAD)) == 1


def test_instants_must_be_aware_and_durations_not_negative() -> None:
    cal = madrid()
    naive = datetime(2026, 3, 6, 17, 30)
    aware = naive.replace(tzinfo=MAD)
    with pytest.raises(ValueError, match="aware"):
        cal.add(naive, HOUR)
    with pytest.raises(ValueError, match="aware"):
        cal.between(naive, aware)
    with pytest.raises(ValueError, match="aware"):
        cal.between(aware, naive)
    with pytest.raises(ValueError, match="aware"):
        cal.is_open(naive)
    with pytest.raises(ValueError, match="aware"):
        cal.open_windows(aware, naive)
    with pytest.raises(ValueError, match="negative"):
        cal.add(aware, -1)


def test_compiled_calendars_are_shared() -> None:
    spec = shipped("partner-support", "business-hours-es")
    assert compile_calendar(spec) is compile_calendar(Calendar.model_validate(spec.model_dump()))
