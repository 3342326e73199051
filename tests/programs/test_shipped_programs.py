"""The program files shipped in programs/ load, and carry the numbers of the rulebook."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from api.programs.loader import read_program_file
from api.programs.schema import Program

PROGRAMS_DIR = Path(__file__).resolve().parents[2] / "programs"
SHIPPED = {
    "advisory-assure.toml",
    "premium-availability.toml",
    "support-by-plan.toml",
    "partner-support.toml",
    "tiered-support.toml",
}


def load(name: str) -> Program:
    return read_program_file(PROGRAMS_DIR / name).program


def test_every_seed_has_its_program_file():
    present = {path.name for path in PROGRAMS_DIR.glob("*.toml")}
    assert SHIPPED <= present


@pytest.mark.parametrize("path", sorted(PROGRAMS_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_every_program_file_loads(path: Path):
    parsed = read_program_file(path)
    assert parsed.program.plans
    assert parsed.file == str(path)
    assert len(parsed.sha256) == 64


def test_program_codes_are_unique():
    codes = [read_program_file(path).program.code for path in PROGRAMS_DIR.glob("*.toml")]
    assert len(codes) == len(set(codes))


# --- 000: advisory activities ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "per_quarter", "per_year"),
    [("small", 5, 20), ("medium", 10, 40), ("large", 20, 80)],
)
def test_assure_sizes(plan: str, per_quarter: int, per_year: int):
    bucket = load("advisory-assure.toml").plans[plan].buckets["activities"]
    assert bucket.unit == "activities"
    assert bucket.allowance == per_quarter
    assert bucket.allowance_per_year == per_year
    assert bucket.period == "quarter"
    assert bucket.anchor == "contract"
    assert bucket.rollover == "none"


def test_assure_custom_is_set_per_contract():
    bucket = load("advisory-assure.toml").plans["custom"].buckets["activities"]
    assert bucket.allowance == "contract"
    assert bucket.allowance_per_year is None
    assert (bucket.period, bucket.anchor) == ("quarter", "contract")


def test_assure_terms():
    program = load("advisory-assure.toml")
    assert program.language == "en"
    assert program.remote_only is True
    assert {item.code for item in program.out_of_scope} == {
        "product-support",
        "production-support",
        "hands-on-implementation",
        "other-vendors",
    }
    for plan in program.plans.values():
        assert plan.sla is False
        assert plan.severities == {}
        assert plan.reporting.consumption_report == "monthly"
    assert program.partners is not None
    assert program.partners.intermediated is False


def test_assure_catalog_sizes_are_small_units():
    program = load("advisory-assure.toml")
    sizes = {activity.size for activity in program.catalog.values()}
    assert Decimal(1) in sizes and max(sizes) > 1
    assert all(activity.unit == "activities" for activity in program.catalog.values())
    assert {"architecture-review", "code-review", "upgrade-planning"} <= set(program.catalog)


# --- 001: premium support with availability SLA ----------------------------------------------


@pytest.mark.parametrize(
    ("plan", "hours"), [("premium-16", 16), ("premium-32", 32), ("premium-60", 60), ("premium-80", 80)]
)
def test_premium_expert_hours(plan: str, hours: int):
    bucket = load("premium-availability.toml").plans[plan].buckets["expert-hours"]
    assert bucket.unit == "hours"
    assert bucket.allowance == hours
    assert bucket.allowance_per_year == 4 * hours
    assert (bucket.period, bucket.anchor, bucket.rollover) == ("quarter", "calendar", "none")
    assert bucket.fair_use is True


def test_premium_availability_and_credit_tiers():
    program = load("premium-availability.toml")
    for plan in program.plans.values():
        availability = plan.availability
        assert availability is not None
        assert availability.target_percent == Decimal("99.99")
        assert availability.measured_over == "calendar_month"
        assert availability.credit_basis == "pro_rata_monthly_fee"
        tiers = [(t.below, t.down_to, t.credit_percent) for t in availability.credits]
        assert tiers == [
            (Decimal("99.99"), Decimal("99.0"), Decimal(10)),
            (Decimal("99.0"), Decimal("95.0"), Decimal(25)),
            (Decimal("95.0"), Decimal(0), Decimal(50)),
        ]


def test_premium_severities():
    program = load("premium-availability.toml")
    always = program.calendars["always"]
    weekdays = program.calendars["weekdays-de"]
    assert always.schedule == "24/7"
    assert weekdays.schedule == "24/5"
    assert weekdays.holidays is not None and weekdays.holidays.country == "DE"
    for plan in program.plans.values():
        s = plan.severities
        assert s["s1"].first_response.duration_minutes == 20
        assert s["s1"].first_response.calendar == "always"
        assert s["s1"].update_interval.duration_minutes == 30
        assert s["s1"].update_interval.calendar == "always"
        assert s["s1"].update_may_be_rescheduled is True
        assert (s["s2"].first_response.duration_minutes, s["s2"].first_response.calendar) == (90, "always")
        assert (s["s3"].first_response.duration_minutes, s["s3"].first_response.calendar) == (6 * 60, "weekdays-de")
        assert (s["s4"].first_response.duration_minutes, s["s4"].first_response.calendar) == (24 * 60, "weekdays-de")
        assert [sev.rank for sev in s.values()] == [1, 2, 3, 4]


def test_premium_plans_extend_a_base():
    plans = load("premium-availability.toml").plans
    assert plans["premium-16"].extends is None
    assert {plans[c].extends for c in ("premium-32", "premium-60", "premium-80")} == {"premium-16"}


def test_premium_catalog_has_the_twelve_expert_services():
    catalog = load("premium-availability.toml").catalog
    assert len(catalog) == 12
    assert all(activity.unit == "hours" for activity in catalog.values())


# --- 002: support by plan ----------------------------------------------------------------------


def test_basic_plans_have_no_guarantee():
    plans = load("support-by-plan.toml").plans
    for code in ("free", "starter", "small", "medium", "platinum"):
        plan = plans[code]
        assert plan.sla is False and plan.response_guarantee is False
        assert plan.severities == {}
        assert not any(t.response_guarantee for t in plan.ticket_types.values())
        assert set(plan.ticket_types) == {"developer-support", "issue-report", "product-support", "feature-request"}


def test_enterprise_advanced():
    plan = load("support-by-plan.toml").plans["enterprise-advanced"]
    assert plan.ticket_types["issue-report"].priority_flag is True
    assert plan.ticket_types["issue-report"].response_guarantee is False
    assert set(plan.ticket_types["product-support"].channels) == {"csm-email", "support-portal"}
    bucket = plan.buckets["enablement"]
    assert (bucket.unit, bucket.allowance, bucket.period) == ("hours", 8, "year")
    assert bucket.best_effort is True
    assert plan.ticket_types["enablement-session"].category == "enablement"


def test_enterprise_premium_sla_categories():
    program = load("support-by-plan.toml")
    plan = program.plans["enterprise-premium"]
    assert program.calendars["always"].schedule == "24/7"
    c1, c2, c3 = (plan.severities[f"category-{n}"] for n in (1, 2, 3))
    assert c1.acknowledge.duration_minutes == 60
    assert c1.first_response.duration_minutes == 4 * 60
    assert c1.on_call is True and c1.acknowledge.calendar == "always"
    assert c2.acknowledge.duration_minutes == 4 * 60
    assert c2.first_response.duration_minutes == 8 * 60
    assert c3.resolution.as_time_permits is True
    assert plan.ticket_types["api-outage"].severities == ("category-1",)
    assert plan.ticket_types["api-outage"].category == "incident"
    assert "category-2" in plan.ticket_types["issue-report"].severities
    assert plan.buckets["enablement"].allowance == 8


# --- 003: partners and support hours -----------------------------------------------------------


def test_partner_business_hours():
    program = load("partner-support.toml")
    calendar = program.calendars["business-hours-es"]
    assert calendar.timezone == "Europe/Madrid"
    assert calendar.schedule == "hours"
    assert calendar.holidays is not None and calendar.holidays.country == "ES"
    assert {day: spans for day, spans in calendar.hours.items()} == {
        day: ("08:00-18:00",) for day in ("mon", "tue", "wed", "thu", "fri")
    }


@pytest.mark.parametrize(("plan", "hours"), [("enterprise", 2), ("premium", 12)])
def test_partner_first_response(plan: str, hours: int):
    severities = load("partner-support.toml").plans[plan].severities
    assert {"critical", "major", "minor"} <= set(severities)
    for severity in severities.values():
        assert severity.first_response.duration_minutes == hours * 60
        assert severity.first_response.calendar == "business-hours-es"


@pytest.mark.parametrize("plan", ["enterprise", "premium"])
def test_partner_deductions(plan: str):
    program = load("partner-support.toml")
    p = program.plans[plan]
    assert p.deductions is not None
    assert p.deductions.minimum_minutes_per_conversation == 15
    assert p.deductions.exempt_categories == ("incident",)
    bucket = p.buckets[p.deductions.bucket]
    assert (bucket.unit, bucket.period) == ("hours", "year")
    integration = p.ticket_types["integration-support"]
    assert integration.requires_certified_partner and integration.requires_production_access
    assert integration.needs_diagnosis
    assert p.ticket_types["incident"].severities == ("critical", "major", "minor")


def test_partner_scope_and_refusals():
    program = load("partner-support.toml")
    assert {i.code for i in program.out_of_scope} == {
        "managed-services",
        "channel-setup",
        "platform-customisation",
        "third-party-developers",
    }
    assert {i.code for i in program.out_of_support} == {
        "custom-formulas",
        "third-party-integrations",
        "customer-network-performance",
        "custom-modifications",
    }
    partners = program.partners
    assert partners is not None and partners.intermediated
    assert partners.integration_support_refusal and partners.non_partner_refusal


# --- 004: tiered support -----------------------------------------------------------------------


def test_tiered_basic():
    program = load("tiered-support.toml")
    assert (program.timezone, program.currency) == ("Europe/Copenhagen", "DKK")
    basic = program.plans["basic"]
    assert basic.channels == ("email",)
    assert basic.sla is False and basic.response_guarantee is False
    assert basic.excluded


def test_tiered_essential_guarantees_every_inquiry():
    plan = load("tiered-support.toml").plans["essential"]
    assert set(plan.channels) == {"hotline", "service-portal"}
    assert plan.response_guarantee is True
    assert all(t.response_guarantee for t in plan.ticket_types.values())
    assert all(s.first_response is not None for s in plan.severities.values())
    assert min(plan.severities.values(), key=lambda s: s.rank).name == "Critical"


def test_tiered_extended_holiday_windows():
    program = load("tiered-support.toml")
    plan = program.plans["extended"]
    assert plan.extends == "essential"
    assert {t.category for t in plan.ticket_types.values()} >= {"incident", "service_request", "problem", "change"}
    assert {"monitoring", "security-patch-evaluation"} <= set(plan.features)
    calendar = program.calendars[plan.severities["critical"].first_response.calendar]
    assert calendar.holidays is not None and calendar.holidays.country == "DK"
    windows = {w.rule: w for w in calendar.open_windows}
    assert set(windows) == {"summer_weeks", "christmas_to_new_year", "day_after_ascension", "weekdays_before_easter"}
    assert windows["summer_weeks"].month == 7
    assert windows["weekdays_before_easter"].count == 3
    assert all(w.hours == ("08:00-16:00",) for w in windows.values())


def test_tiered_premium():
    program = load("tiered-support.toml")
    plan = program.plans["premium"]
    assert plan.extends == "extended"
    calendar = program.calendars[plan.severities["critical"].first_response.calendar]
    windows = {w.rule: w for w in calendar.open_windows}
    assert {"public_holidays", "weekends"} <= set(windows)
    assert windows["public_holidays"].hours == windows["weekends"].hours == ("08:00-16:00",)
    on_call = plan.add_ons["on-call-readiness"]
    assert (on_call.price_min, on_call.price_max, on_call.currency) == (Decimal(3500), Decimal(5000), "DKK")
    assert on_call.unit == "consultant-day"
    assert on_call.response_minutes == 60
    assert set(on_call.windows) == {"evenings", "weekends"}
    strategic, tactical = plan.meetings["strategic"], plan.meetings["tactical"]
    assert (strategic.per, strategic.min, strategic.max) == ("year", 1, 2)
    assert (tactical.per, tactical.min, tactical.max) == ("quarter", 1, 3)
    assert set(plan.reporting.operational_report) == {"weekly", "monthly"}
    contents = " ".join(plan.reporting.contents)
    for word in ("inquiries", "response times", "incidents", "service requests", "changes"):
        assert word in contents
