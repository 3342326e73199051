"""SLA clocks: the due instants each shipped program's seed states, and the clock rules (pauses, changes,
automatic messages, met / breached / at risk, reopening, ordering, errors). Pure: no database."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from api.domain.calendars import compile_calendar
from api.domain.sla import EVENT_KINDS, TargetClock, TicketEvent, sla_clocks
from api.programs.loader import parse_program, read_program_file
from api.programs.schema import Program

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # a Tuesday, noon UTC
BERLIN = ZoneInfo("Europe/Berlin")
MADRID = ZoneInfo("Europe/Madrid")
COPENHAGEN = ZoneInfo("Europe/Copenhagen")

# The programs whose severities are checked below, one test section each.
COVERED = {"premium-availability", "support-by-plan", "partner-support", "tiered-support"}


def load(code: str) -> Program:
    return read_program_file(PROGRAMS / f"{code}.toml").program


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)


def ev(kind: str, at: datetime, **kw: object) -> TicketEvent:
    return TicketEvent(at=at, kind=kind, **kw)  # type: ignore[arg-type]


def created(at: datetime, plan: str, severity: str) -> TicketEvent:
    return TicketEvent(at=at, kind="created", plan=plan, severity=severity)


def clocks_of(events: list[TicketEvent], program: Program, now: datetime, **kw: object) -> dict[str, TargetClock]:
    return {c.target: c for c in sla_clocks(events, program, now, **kw)}  # type: ignore[arg-type]


def due(program: Program, plan: str, severity: str, at: datetime, target: str = "first_response") -> datetime | None:
    clock = clocks_of([created(at, plan, severity)], program, at)[target]
    return clock.due_at


# ---- every shipped program with severities is covered ------------------------------------------------------


def test_every_program_with_severities_is_covered() -> None:
    with_severities = set()
    for path in sorted(PROGRAMS.glob("*.toml")):
        program = read_program_file(path).program
        if any(plan.severities for plan in program.plans.values()):
            with_severities.add(program.code)
    assert with_severities == COVERED


# ---- premium-availability (seed 001) -----------------------------------------------------------------------

PREMIUM_PLANS = ("premium-16", "premium-32", "premium-60", "premium-80")


@pytest.mark.parametrize("plan", PREMIUM_PLANS)
def test_premium_s1_20_minutes_and_s2_90_minutes_around_the_clock(plan: str) -> None:
    program = load("premium-availability")
    saturday_night = utc(2026, 3, 7, 23, 50)
    assert due(program, plan, "s1", saturday_night) == utc(2026, 3, 8, 0, 10)
    assert due(program, plan, "s2", saturday_night) == utc(2026, 3, 8, 1, 20)


@pytest.mark.parametrize("plan", PREMIUM_PLANS)
def test_premium_s3_s4_on_24_5_friday_night_to_monday(plan: str) -> None:
    program = load("premium-availability")
    friday_22_utc = utc(2026, 3, 6, 22, 0)  # 23:00 in Berlin: one open hour left on Friday
    # S3 6 h: 1 h Friday, 5 h from Monday 00:00 Berlin (Sunday 23:00 UTC).
    assert due(program, plan, "s3", friday_22_utc) == utc(2026, 3, 9, 4, 0)
    # S4 24 h: 1 h Friday, 23 h on Monday.
    assert due(program, plan, "s4", friday_22_utc) == utc(2026, 3, 9, 22, 0)


def test_premium_s3_s4_skip_the_regional_easter_holidays() -> None:
    program = load("premium-availability")
    thursday = local(BERLIN, 2026, 4, 2, 22, 0)  # 2 h left; Good Friday and Easter Monday are DE holidays
    assert due(program, "premium-16", "s3", thursday) == local(BERLIN, 2026, 4, 7, 4, 0)
    assert due(program, "premium-16", "s4", thursday) == local(BERLIN, 2026, 4, 7, 22, 0)
    clock = clocks_of([created(thursday, "premium-16", "s3")], program, thursday)["first_response"]
    assert clock.calendar == "weekdays-de" and clock.target_seconds == 6 * 3600


def test_premium_s1_updates_every_30_minutes_or_as_stated() -> None:
    program = load("premium-availability")
    t0 = utc(2026, 3, 10, 9, 0)
    events = [created(t0, "premium-16", "s1")]
    before_response = clocks_of(events, program, t0 + timedelta(minutes=10))
    assert "update_interval" not in before_response  # runs only after the first response
    assert before_response["first_response"].due_at == utc(2026, 3, 10, 9, 20)
    assert before_response["first_response"].remaining_seconds == 600

    events.append(ev("responded", utc(2026, 3, 10, 9, 15)))
    c = clocks_of(events, program, utc(2026, 3, 10, 9, 30))
    assert c["first_response"].met_at == utc(2026, 3, 10, 9, 15) and not c["first_response"].breached
    upd = c["update_interval"]
    assert (upd.started_at, upd.due_at, upd.target_seconds, upd.calendar) == (
        utc(2026, 3, 10, 9, 15), utc(2026, 3, 10, 9, 45), 1800, "always")
    assert not upd.breached and upd.missed_updates == 0 and upd.elapsed_seconds == 900

    # An update that names the next one: due then, not 30 minutes later.
    events.append(ev("updated", utc(2026, 3, 10, 9, 40), next_update_at=utc(2026, 3, 10, 11, 0)))
    c = clocks_of(events, program, utc(2026, 3, 10, 10, 30))
    upd = c["update_interval"]
    assert upd.due_at == utc(2026, 3, 10, 11, 0) and upd.target_seconds == 80 * 60
    assert not upd.breached and upd.missed_updates == 0
    late = clocks_of(events, program, utc(2026, 3, 10, 11, 0, 1))["update_interval"]
    assert late.breached and late.remaining_seconds == 0 and late.due_at == utc(2026, 3, 10, 11, 0)

    # The next update came late: that interval is counted as missed, the new one runs.
    events.append(ev("updated", utc(2026, 3, 10, 11, 5)))
    c = clocks_of(events, program, utc(2026, 3, 10, 11, 10))["update_interval"]
    assert c.missed_updates == 1 and not c.breached and c.due_at == utc(2026, 3, 10, 11, 35)


def test_update_interval_ignores_automatic_updates_and_stops_at_resolution() -> None:
    program = load("premium-availability")
    t0 = utc(2026, 3, 10, 9, 0)
    events = [
        created(t0, "premium-16", "s1"),
        ev("responded", utc(2026, 3, 10, 9, 10)),
        ev("updated", utc(2026, 3, 10, 9, 30), automatic=True),
    ]
    upd = clocks_of(events, program, utc(2026, 3, 10, 9, 50))["update_interval"]
    assert upd.started_at == utc(2026, 3, 10, 9, 10) and upd.breached  # due 09:40
    events.append(ev("resolved", utc(2026, 3, 10, 9, 35)))
    upd = clocks_of(events, program, utc(2026, 3, 10, 12, 0))["update_interval"]
    assert upd.met_at == utc(2026, 3, 10, 9, 35) and not upd.breached and upd.remaining_seconds == 0


def test_update_interval_pauses_while_waiting_on_the_customer() -> None:
    program = load("premium-availability")
    events = [
        created(utc(2026, 3, 10, 9, 0), "premium-16", "s1"),
        ev("responded", utc(2026, 3, 10, 9, 10)),
        ev("waiting_on_customer", utc(2026, 3, 10, 9, 20)),
    ]
    upd = clocks_of(events, program, utc(2026, 3, 10, 10, 0))["update_interval"]
    assert upd.paused and upd.due_at is None and upd.remaining_seconds == 1200 and not upd.breached
    events.append(ev("resumed", utc(2026, 3, 10, 10, 0)))
    upd = clocks_of(events, program, utc(2026, 3, 10, 10, 5))["update_interval"]
    assert upd.due_at == utc(2026, 3, 10, 10, 20) and not upd.paused


def test_stated_next_update_must_be_after_the_update() -> None:
    program = load("premium-availability")
    events = [
        created(utc(2026, 3, 10, 9, 0), "premium-16", "s1"),
        ev("responded", utc(2026, 3, 10, 9, 10), next_update_at=utc(2026, 3, 10, 9, 0)),
    ]
    with pytest.raises(ValueError, match="not after it"):
        sla_clocks(events, program, NOW)


# ---- support-by-plan (seed 002) ----------------------------------------------------------------------------


def test_enterprise_premium_categories_acknowledge_and_initial_response() -> None:
    program = load("support-by-plan")
    t0 = utc(2026, 3, 7, 22, 30)  # a Saturday night: the targets run around the clock
    c1 = clocks_of([created(t0, "enterprise-premium", "category-1")], program, t0)
    assert c1["acknowledge"].due_at == t0 + timedelta(hours=1)
    assert c1["first_response"].due_at == t0 + timedelta(hours=4)
    c2 = clocks_of([created(t0, "enterprise-premium", "category-2")], program, t0)
    assert c2["acknowledge"].due_at == t0 + timedelta(hours=4)
    assert c2["first_response"].due_at == t0 + timedelta(hours=8)
    assert list(c1) == ["acknowledge", "first_response"]


def test_category_3_is_resolved_as_time_permits() -> None:
    program = load("support-by-plan")
    t0 = utc(2026, 1, 5, 9, 0)
    events = [created(t0, "enterprise-premium", "category-3")]
    clocks = clocks_of(events, program, NOW)
    assert list(clocks) == ["resolution"]
    res = clocks["resolution"]
    assert res.as_time_permits and res.target_seconds is None and res.due_at is None
    assert not res.breached and not res.at_risk and res.remaining_seconds is None
    assert res.elapsed_seconds == int((NOW - t0).total_seconds())
    events.append(ev("resolved", utc(2026, 2, 1, 9, 0)))
    res = clocks_of(events, program, NOW)["resolution"]
    assert res.met_at == utc(2026, 2, 1, 9, 0) and not res.breached


def test_plans_without_severities_have_no_sla() -> None:
    program = load("support-by-plan")
    with pytest.raises(ValueError, match=r"unknown severity 'category-1' for plan 'free'.*severities: none"):
        sla_clocks([created(NOW, "free", "category-1")], program, NOW)


# ---- partner-support (seed 003) ----------------------------------------------------------------------------


@pytest.mark.parametrize("severity", ["critical", "major", "minor", "standard"])
def test_partner_first_response_in_madrid_business_hours(severity: str) -> None:
    program = load("partner-support")
    friday = local(MADRID, 2026, 3, 6, 17, 30)
    assert due(program, "enterprise", severity, friday) == local(MADRID, 2026, 3, 9, 9, 30)
    # Premium 12 h: 30 min Friday, 10 h Monday, 1 h 30 Tuesday.
    assert due(program, "premium", severity, friday) == local(MADRID, 2026, 3, 10, 9, 30)


def test_partner_business_hours_skip_national_holidays_only() -> None:
    program = load("partner-support")
    # Epiphany (6 January) is a national holiday in Spain.
    assert due(program, "enterprise", "standard", local(MADRID, 2026, 1, 5, 17, 30)) == local(MADRID, 2026, 1, 7, 9, 30)
    # Maundy Thursday and Easter Monday are regional only: open. Good Friday is national: closed.
    assert due(program, "enterprise", "standard", local(MADRID, 2026, 4, 2, 17, 0)) == local(MADRID, 2026, 4, 6, 9, 0)


def test_partner_reply_after_closing_is_late_although_no_open_time_passed() -> None:
    program = load("partner-support")
    friday = local(MADRID, 2026, 3, 6, 16, 0)  # due at 18:00, the close of business
    on_time = clocks_of(
        [created(friday, "enterprise", "standard"), ev("responded", local(MADRID, 2026, 3, 6, 18, 0))], program, NOW
    )["first_response"]
    assert on_time.due_at == local(MADRID, 2026, 3, 6, 18, 0) and not on_time.breached
    saturday = clocks_of(
        [created(friday, "enterprise", "standard"), ev("responded", local(MADRID, 2026, 3, 7, 10, 0))], program, NOW
    )["first_response"]
    assert saturday.breached and saturday.elapsed_seconds == 2 * 3600 and saturday.remaining_seconds == 0


# ---- tiered-support (seed 004) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("critical", local(COPENHAGEN, 2026, 3, 6, 16, 0)),
        ("high", local(COPENHAGEN, 2026, 3, 9, 11, 0)),
        ("normal", local(COPENHAGEN, 2026, 3, 9, 15, 0)),
        ("low", local(COPENHAGEN, 2026, 3, 10, 15, 0)),
    ],
)
def test_tiered_essential_office_hours(severity: str, expected: datetime) -> None:
    program = load("tiered-support")
    friday = local(COPENHAGEN, 2026, 3, 6, 15, 0)
    assert due(program, "essential", severity, friday) == expected
    # Extended and Premium keep office hours for everything but critical.
    if severity != "critical":
        assert due(program, "extended", severity, friday) == expected
        assert due(program, "premium", severity, friday) == expected


def test_tiered_critical_weekend_emergency_cover_for_premium_only() -> None:
    program = load("tiered-support")
    saturday = local(COPENHAGEN, 2026, 3, 7, 10, 0)
    assert due(program, "essential", "critical", saturday) == local(COPENHAGEN, 2026, 3, 9, 9, 0)
    assert due(program, "extended", "critical", saturday) == local(COPENHAGEN, 2026, 3, 9, 9, 0)
    assert due(program, "premium", "critical", saturday) == local(COPENHAGEN, 2026, 3, 7, 11, 0)
    # After 16:00 on a Saturday the emergency window is over: Sunday 08:00 + 1 h.
    assert due(program, "premium", "critical", local(COPENHAGEN, 2026, 3, 7, 16, 30)) == local(
        COPENHAGEN, 2026, 3, 8, 9, 0
    )


def test_tiered_critical_over_easter() -> None:
    program = load("tiered-support")
    # Wednesday of Holy Week (an emergency-window day of Extended) at 15:30; Maundy Thursday, Good Friday
    # and Easter Monday are Danish public holidays.
    wednesday = local(COPENHAGEN, 2026, 4, 1, 15, 30)
    # Essential has no cover in holiday periods: its office is closed Monday to Wednesday of Holy Week,
    # so the hour starts counting when the office reopens after Easter Monday.
    assert due(program, "essential", "critical", wednesday) == local(COPENHAGEN, 2026, 4, 7, 9, 0)
    assert due(program, "extended", "critical", wednesday) == local(COPENHAGEN, 2026, 4, 7, 8, 30)
    # Premium: emergency cover on public holidays: Maundy Thursday 08:00 + 30 min.
    assert due(program, "premium", "critical", wednesday) == local(COPENHAGEN, 2026, 4, 2, 8, 30)
    easter_monday = local(COPENHAGEN, 2026, 4, 6, 9, 0)
    assert due(program, "premium", "critical", easter_monday) == local(COPENHAGEN, 2026, 4, 6, 10, 0)
    assert due(program, "extended", "critical", easter_monday) == local(COPENHAGEN, 2026, 4, 7, 9, 0)


def test_tiered_extended_emergency_window_day() -> None:
    program = load("tiered-support")
    day_after_ascension = local(COPENHAGEN, 2026, 5, 15, 15, 0)
    assert compile_calendar(program.calendars["dk-holiday-emergency"]).is_open(day_after_ascension)
    assert not compile_calendar(program.calendars["dk-office-hours"]).is_open(day_after_ascension)
    assert due(program, "essential", "critical", day_after_ascension) == local(COPENHAGEN, 2026, 5, 18, 9, 0)
    assert due(program, "extended", "critical", day_after_ascension) == local(COPENHAGEN, 2026, 5, 15, 16, 0)
    clock = clocks_of([created(day_after_ascension, "extended", "critical")], program, day_after_ascension)
    assert clock["first_response"].calendar == "dk-holiday-emergency"


# ---- pauses ------------------------------------------------------------------------------------------------


def test_pause_freezes_the_clock_and_moves_the_due_instant() -> None:
    program = load("premium-availability")
    events = [created(utc(2026, 3, 10, 9, 0), "premium-16", "s2"), ev("waiting_on_customer", utc(2026, 3, 10, 9, 30))]
    waiting = clocks_of(events, program, utc(2026, 3, 10, 10, 0))["first_response"]
    assert waiting.paused and waiting.due_at is None
    assert waiting.elapsed_seconds == 1800 and waiting.remaining_seconds == 3600
    assert not waiting.breached and not waiting.at_risk
    # Still paused long after the original due instant: never breached while waiting.
    assert not clocks_of(events, program, utc(2026, 3, 10, 20, 0))["first_response"].breached

    events.append(ev("resumed", utc(2026, 3, 10, 10, 15)))
    running = clocks_of(events, program, utc(2026, 3, 10, 10, 20))["first_response"]
    assert not running.paused and running.due_at == utc(2026, 3, 10, 11, 15)  # 10:30 + 45 min paused
    assert running.elapsed_seconds == 2100 and running.remaining_seconds == 3300


def test_pause_on_a_business_calendar_moves_by_open_time_only() -> None:
    program = load("premium-availability")
    events = [
        created(local(BERLIN, 2026, 3, 6, 21, 0), "premium-16", "s3"),  # Friday 21:00 Berlin
        ev("waiting_on_customer", local(BERLIN, 2026, 3, 6, 22, 0)),
        ev("resumed", local(BERLIN, 2026, 3, 9, 2, 0)),  # Monday 02:00: 4 open hours paused
    ]
    assert due(program, "premium-16", "s3", local(BERLIN, 2026, 3, 6, 21, 0)) == local(BERLIN, 2026, 3, 9, 3, 0)
    clock = clocks_of(events, program, local(BERLIN, 2026, 3, 9, 3, 0))["first_response"]
    assert clock.due_at == local(BERLIN, 2026, 3, 9, 7, 0)
    assert clock.elapsed_seconds == 2 * 3600


# ---- severity and plan changes -----------------------------------------------------------------------------


def test_severity_change_recomputes_from_creation_keeping_pauses() -> None:
    program = load("premium-availability")
    events = [
        created(utc(2026, 3, 9, 8, 0), "premium-16", "s3"),
        ev("waiting_on_customer", utc(2026, 3, 9, 8, 5)),
        ev("resumed", utc(2026, 3, 9, 8, 15)),
    ]
    s3 = clocks_of(events, program, utc(2026, 3, 9, 8, 20))["first_response"]
    assert s3.due_at == utc(2026, 3, 9, 14, 10) and s3.calendar == "weekdays-de"
    events.append(ev("severity_changed", utc(2026, 3, 9, 8, 20), severity="s1"))
    c = clocks_of(events, program, utc(2026, 3, 9, 8, 25))
    fr = c["first_response"]
    assert fr.started_at == utc(2026, 3, 9, 8, 0) and fr.calendar == "always" and fr.target_seconds == 1200
    assert fr.due_at == utc(2026, 3, 9, 8, 30)  # 20 min + 10 min paused
    assert fr.elapsed_seconds == 900 and fr.remaining_seconds == 300
    # Raised to S1 after its 20 minutes had already run: breached at once.
    late = [created(utc(2026, 3, 9, 8, 0), "premium-16", "s3"), ev("severity_changed", utc(2026, 3, 9, 9, 0), severity="s1")]
    fr = clocks_of(late, program, utc(2026, 3, 9, 9, 0))["first_response"]
    assert fr.breached and fr.due_at == utc(2026, 3, 9, 8, 20)


def test_plan_change_changes_targets_and_calendars() -> None:
    partner = load("partner-support")
    friday = local(MADRID, 2026, 3, 6, 17, 30)
    events = [created(friday, "enterprise", "standard"), ev("plan_changed", local(MADRID, 2026, 3, 9, 8, 0), plan="premium")]
    clock = clocks_of(events, partner, local(MADRID, 2026, 3, 9, 9, 0))["first_response"]
    assert clock.due_at == local(MADRID, 2026, 3, 10, 9, 30) and clock.target_seconds == 12 * 3600

    tiered = load("tiered-support")
    saturday = local(COPENHAGEN, 2026, 3, 7, 10, 0)
    events = [created(saturday, "essential", "critical"), ev("plan_changed", local(COPENHAGEN, 2026, 3, 7, 10, 30), plan="premium")]
    clock = clocks_of(events, tiered, local(COPENHAGEN, 2026, 3, 7, 10, 45))["first_response"]
    assert clock.calendar == "dk-full-emergency" and clock.due_at == local(COPENHAGEN, 2026, 3, 7, 11, 0)
    assert clock.elapsed_seconds == 45 * 60

    # A plan change may carry the severity in the new plan's own terms.
    events = [created(saturday, "essential", "high"), ev("plan_changed", saturday, plan="premium", severity="critical")]
    assert clocks_of(events, tiered, saturday)["first_response"].calendar == "dk-full-emergency"
    # A plan without that severity is refused.
    events = [created(saturday, "essential", "high"), ev("plan_changed", saturday, plan="basic")]
    with pytest.raises(ValueError, match="unknown severity 'high' for plan 'basic'"):
        sla_clocks(events, tiered, saturday)


# ---- automatic messages, met / breached, at risk -----------------------------------------------------------


def test_automatic_messages_never_count() -> None:
    program = load("support-by-plan")
    t0 = utc(2026, 3, 10, 9, 0)
    events = [
        created(t0, "enterprise-premium", "category-1"),
        ev("acknowledged", utc(2026, 3, 10, 9, 0, 5), automatic=True),
        ev("responded", utc(2026, 3, 10, 9, 1), automatic=True),
    ]
    c = clocks_of(events, program, utc(2026, 3, 10, 9, 30))
    assert c["acknowledge"].met_at is None and c["first_response"].met_at is None
    events.append(ev("acknowledged", utc(2026, 3, 10, 9, 40)))
    c = clocks_of(events, program, utc(2026, 3, 10, 10, 0))
    assert c["acknowledge"].met_at == utc(2026, 3, 10, 9, 40) and c["first_response"].met_at is None
    # A human response also acknowledges.
    c = clocks_of([created(t0, "enterprise-premium", "category-1"), ev("responded", utc(2026, 3, 10, 9, 20))], program, NOW)
    assert c["acknowledge"].met_at == c["first_response"].met_at == utc(2026, 3, 10, 9, 20)


def test_met_in_time_met_late_and_breached() -> None:
    program = load("premium-availability")
    t0 = utc(2026, 3, 10, 9, 0)
    on_time = clocks_of([created(t0, "premium-16", "s2"), ev("responded", utc(2026, 3, 10, 10, 30))], program, NOW)
    fr = on_time["first_response"]
    assert fr.met_at == utc(2026, 3, 10, 10, 30) and not fr.breached and fr.remaining_seconds == 0
    assert fr.elapsed_seconds == 5400 and fr.due_at == utc(2026, 3, 10, 10, 30) and not fr.at_risk

    late = clocks_of([created(t0, "premium-16", "s2"), ev("responded", utc(2026, 3, 10, 10, 30, 1))], program, NOW)
    assert late["first_response"].breached and late["first_response"].met_at is not None

    early = clocks_of([created(t0, "premium-16", "s2"), ev("responded", utc(2026, 3, 10, 9, 30))], program, NOW)
    assert early["first_response"].due_at == utc(2026, 3, 10, 10, 30) and early["first_response"].elapsed_seconds == 1800

    unmet = clocks_of([created(t0, "premium-16", "s2")], program, utc(2026, 3, 10, 10, 31))["first_response"]
    assert unmet.breached and unmet.met_at is None and unmet.remaining_seconds == 0
    assert unmet.due_at == utc(2026, 3, 10, 10, 30) and not unmet.at_risk and unmet.elapsed_seconds == 5460
    at_due = clocks_of([created(t0, "premium-16", "s2")], program, utc(2026, 3, 10, 10, 30))["first_response"]
    assert not at_due.breached and at_due.remaining_seconds == 0


def test_at_risk_at_80_percent_and_a_custom_share() -> None:
    program = load("premium-availability")
    events = [created(utc(2026, 3, 10, 9, 0), "premium-16", "s2")]
    assert not clocks_of(events, program, utc(2026, 3, 10, 10, 11, 59))["first_response"].at_risk
    assert clocks_of(events, program, utc(2026, 3, 10, 10, 12))["first_response"].at_risk  # 72 of 90 min
    assert not clocks_of(events, program, utc(2026, 3, 10, 9, 45))["first_response"].at_risk
    assert clocks_of(events, program, utc(2026, 3, 10, 9, 45), at_risk_share=Decimal("0.5"))["first_response"].at_risk
    for share in (Decimal(0), Decimal("1.5")):
        with pytest.raises(ValueError, match="at_risk_share"):
            sla_clocks(events, program, NOW, at_risk_share=share)


# ---- reopening (a synthetic program with a timed resolution target) ----------------------------------------

RESOLVING = """
code = "resolving"
name = "Resolving"
provider = "Tests"
[calendars.always]
timezone = "UTC"
schedule = "24/7"
[plans.gold]
name = "Gold"
[plans.gold.severities.high]
name = "High"
rank = 1
acknowledge = { minutes = 15, calendar = "always", best_effort = true }
resolution = { hours = 8, calendar = "always" }
"""


def test_reopen_after_resolve_continues_the_resolution_clock() -> None:
    program = parse_program(RESOLVING).program
    events = [created(utc(2026, 3, 9, 8, 0), "gold", "high"), ev("resolved", utc(2026, 3, 9, 10, 0))]
    c = clocks_of(events, program, utc(2026, 3, 9, 11, 0))
    res = c["resolution"]
    assert res.met_at == utc(2026, 3, 9, 10, 0) and not res.breached and res.elapsed_seconds == 7200
    assert res.due_at == utc(2026, 3, 9, 16, 0)
    ack = c["acknowledge"]  # never acknowledged, breached before the resolution; best effort is passed on
    assert ack.best_effort and ack.breached and ack.paused

    events.append(ev("reopened", utc(2026, 3, 9, 12, 0)))
    res = clocks_of(events, program, utc(2026, 3, 9, 13, 0))["resolution"]
    assert res.met_at is None and res.elapsed_seconds == 3 * 3600
    assert res.due_at == utc(2026, 3, 9, 18, 0)  # 2 h resolved were not counted
    assert res.remaining_seconds == 5 * 3600 and not res.paused

    events.append(ev("resolved", utc(2026, 3, 9, 19, 0)))
    res = clocks_of(events, program, utc(2026, 3, 9, 20, 0))["resolution"]
    assert res.met_at == utc(2026, 3, 9, 19, 0) and res.breached


def test_closed_ticket_stops_unmet_clocks() -> None:
    program = parse_program(RESOLVING).program
    events = [created(utc(2026, 3, 9, 8, 0), "gold", "high"), ev("closed", utc(2026, 3, 9, 8, 10))]
    c = clocks_of(events, program, utc(2026, 3, 9, 12, 0))
    assert c["acknowledge"].paused and not c["acknowledge"].breached and c["acknowledge"].due_at is None
    assert c["acknowledge"].remaining_seconds == 300
    assert c["resolution"].met_at == utc(2026, 3, 9, 8, 10)


# ---- ordering and now ---------------------------------------------------------------------------------------


def test_events_out_of_order_give_the_same_clocks() -> None:
    program = load("premium-availability")
    events = [
        created(utc(2026, 3, 10, 9, 0), "premium-16", "s1"),
        ev("waiting_on_customer", utc(2026, 3, 10, 9, 5)),
        ev("resumed", utc(2026, 3, 10, 9, 10)),
        ev("responded", utc(2026, 3, 10, 9, 20)),
        ev("updated", utc(2026, 3, 10, 9, 40)),
    ]
    expected = sla_clocks(events, program, NOW)
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    assert sla_clocks(list(reversed(events)), program, NOW) == expected
    assert sla_clocks(shuffled, program, NOW) == expected


def test_events_after_now_are_ignored() -> None:
    program = load("premium-availability")
    now = utc(2026, 3, 10, 9, 10)
    events = [
        created(utc(2026, 3, 10, 9, 0), "premium-16", "s3"),
        ev("responded", utc(2026, 3, 10, 9, 15)),
        ev("severity_changed", utc(2026, 3, 10, 9, 12), severity="s1"),
    ]
    c = clocks_of(events, program, now)
    assert c["first_response"].met_at is None and c["first_response"].calendar == "weekdays-de"
    with pytest.raises(ValueError, match="no event at or before now"):
        sla_clocks(events, program, utc(2026, 3, 10, 8, 0))


# ---- errors --------------------------------------------------------------------------------------------------


def test_errors_name_what_is_wrong() -> None:
    program = load("premium-availability")
    t0 = utc(2026, 3, 10, 9, 0)
    with pytest.raises(ValueError, match="no event"):
        sla_clocks([], program, NOW)
    with pytest.raises(ValueError, match="first event must be 'created', not 'responded'"):
        sla_clocks([ev("responded", t0)], program, NOW)
    with pytest.raises(ValueError, match="both the plan and the severity"):
        sla_clocks([ev("created", t0, plan="premium-16")], program, NOW)
    with pytest.raises(ValueError, match="unknown severity 's9' for plan 'premium-16'"):
        sla_clocks([created(t0, "premium-16", "s9")], program, NOW)
    with pytest.raises(ValueError, match="unknown plan 'gold' in program 'premium-availability'"):
        sla_clocks([created(t0, "gold", "s1")], program, NOW)
    with pytest.raises(ValueError, match="unknown plan 'gold'"):
        sla_clocks([created(t0, "premium-16", "s1"), ev("plan_changed", t0, plan="gold")], program, NOW)
    with pytest.raises(ValueError, match="unknown severity 's9'"):
        sla_clocks([created(t0, "premium-16", "s1"), ev("severity_changed", t0, severity="s9")], program, NOW)
    with pytest.raises(ValueError, match="gives no severity"):
        sla_clocks([created(t0, "premium-16", "s1"), ev("severity_changed", t0)], program, NOW)
    with pytest.raises(ValueError, match="unknown ticket event kind 'escalated'"):
        sla_clocks([created(t0, "premium-16", "s1"), ev("escalated", t0)], program, NOW)
    with pytest.raises(ValueError, match="created only once"):
        sla_clocks([created(t0, "premium-16", "s1"), created(t0, "premium-16", "s2")], program, NOW)
    with pytest.raises(ValueError, match="time-zone aware"):
        sla_clocks([created(datetime(2026, 3, 10, 9, 0), "premium-16", "s1")], program, NOW)
    with pytest.raises(ValueError, match="now must be"):
        sla_clocks([created(t0, "premium-16", "s1")], program, datetime(2026, 3, 10, 12, 0))
    assert "created" in EVENT_KINDS
