"""The activity catalog a plan offers (plan_catalog, charged_bucket) and what a contract may book
(contract_catalog), on small in-memory programs; and the loader naming the key and the reason when a
plan's catalog cannot be charged."""

from __future__ import annotations

from typing import Any

import pytest

from api.domain.catalog import CatalogError, charged_bucket, contract_catalog, plan_catalog
from api.programs.loader import ProgramFileError, parse_program
from api.programs.schema import Program

ACTIVITIES = {"name": "Small activities", "unit": "activities", "allowance": 5, "period": "quarter", "anchor": "contract"}
HOURS = {"name": "Expert hours", "unit": "hours", "allowance": 10, "period": "quarter", "anchor": "calendar", "increment": 15}
ENABLEMENT = {"name": "Enablement", "unit": "hours", "allowance": 8, "period": "year", "anchor": "contract", "increment": 30}

# Two activities counted in small activities, two in hours, in this (catalog) order.
CATALOG = {
    "review": {"name": "Review", "size": 3},
    "session": {"name": "Working session", "unit": "hours", "size": "1.5"},
    "call": {"name": "Call", "size": 1},
    "workshop": {"name": "Workshop", "unit": "hours", "size": 2},
}


def program(buckets: dict[str, Any], catalog: dict[str, Any] | None = None, **plan: Any) -> Program:
    return Program.model_validate(
        {
            "code": "catalog-test",
            "name": "Catalog Test",
            "provider": "Tests",
            "catalog": CATALOG if catalog is None else catalog,
            "plans": {"p": {"name": "P", "buckets": buckets, **plan}},
        }
    )


def offers(prog: Program) -> list[tuple[str, str, int]]:
    """(code, bucket, cost in ledger units) of each activity the plan offers, in order."""
    return [(code, o.bucket_code, o.units) for code, o in plan_catalog(prog, prog.plans["p"]).items()]


def refusal(prog: Program) -> str:
    with pytest.raises(CatalogError) as caught:
        plan_catalog(prog, prog.plans["p"])
    return str(caught.value)


# ---- which activities, charged to which bucket ----------------------------------------------------


def test_an_implied_catalog_skips_activities_in_a_unit_the_plan_has_no_bucket_for():
    assert offers(program({"acts": ACTIVITIES})) == [("review", "acts", 3), ("call", "acts", 1)]
    # Hours are counted in minutes: 1.5 h costs 90, 2 h costs 120.
    assert offers(program({"expert": HOURS})) == [("session", "expert", 90), ("workshop", "expert", 120)]
    both = program({"expert": HOURS, "acts": ACTIVITIES})
    assert offers(both) == [("review", "acts", 3), ("session", "expert", 90), ("call", "acts", 1), ("workshop", "expert", 120)]
    offer = plan_catalog(both, both.plans["p"])["session"]
    assert (offer.activity.name, offer.bucket.name, offer.bucket.ledger_unit) == ("Working session", "Expert hours", "minutes")


def test_a_plan_without_buckets_offers_nothing():
    assert offers(program({})) == []


def plan_listing(buckets: dict[str, Any], listed: list[str], **plan: Any) -> Program:
    return Program.model_validate(
        {
            "code": "catalog-test", "name": "Catalog Test", "provider": "Tests", "catalog": CATALOG,
            "plans": {"p": {"name": "P", "buckets": buckets, "catalog": listed, **plan}},
        }
    )


def test_an_explicit_catalog_is_offered_in_the_plans_order():
    assert offers(plan_listing({"acts": ACTIVITIES, "expert": HOURS}, ["workshop", "call"])) == [
        ("workshop", "expert", 120), ("call", "acts", 1)
    ]


def test_an_explicit_catalog_refuses_an_activity_it_cannot_charge():
    assert refusal(plan_listing({"acts": ACTIVITIES}, ["call", "session"])) == (
        "activity 'session': the plan has no bucket counted in hours"
    )
    assert refusal(plan_listing({"expert": HOURS}, ["workshop", "review"])) == (
        "activity 'review': the plan has no bucket counted in activities"
    )
    assert refusal(plan_listing({"acts": ACTIVITIES}, ["call", "nope"])) == "no activity 'nope' in the program catalog"
    # An empty list offers nothing (the plan chose to offer no activity).
    assert offers(plan_listing({"acts": ACTIVITIES}, [])) == []


def test_two_buckets_of_one_unit_are_ambiguous_without_catalog_bucket():
    prog = program({"acts": ACTIVITIES, "expert": HOURS, "enablement": ENABLEMENT})
    plan = prog.plans["p"]
    assert refusal(prog) == (
        "activity 'session': several buckets count hours (expert, enablement): name the one activities are "
        "charged to with catalog_bucket"
    )
    with pytest.raises(CatalogError, match=r"^several buckets count hours \(expert, enablement\)"):
        charged_bucket(plan, prog.catalog["workshop"])
    # Activities counted in the unit only one bucket counts are not ambiguous.
    assert charged_bucket(plan, prog.catalog["call"]) == "acts"
    # Two activity buckets: the small activities are the ambiguous ones.
    twice = program({"acts": ACTIVITIES, "more": ACTIVITIES}, catalog={"call": CATALOG["call"]})
    assert refusal(twice) == (
        "activity 'call': several buckets count activities (acts, more): name the one activities are charged to "
        "with catalog_bucket"
    )


def test_catalog_bucket_picks_one_of_two_buckets_of_a_unit():
    hours_only = {k: v for k, v in CATALOG.items() if v.get("unit") == "hours"}
    prog = program({"expert": HOURS, "enablement": ENABLEMENT}, catalog=hours_only, catalog_bucket="enablement")
    assert offers(prog) == [("session", "enablement", 90), ("workshop", "enablement", 120)]
    assert charged_bucket(prog.plans["p"], prog.catalog["session"]) == "enablement"
    other = program({"expert": HOURS, "enablement": ENABLEMENT}, catalog=hours_only, catalog_bucket="expert")
    assert offers(other) == [("session", "expert", 90), ("workshop", "expert", 120)]


def test_catalog_bucket_breaks_ties_in_its_own_unit_only():
    # It names the hours bucket: activities counted in small activities still go to the one bucket counting them.
    prog = program({"acts": ACTIVITIES, "expert": HOURS, "enablement": ENABLEMENT}, catalog_bucket="enablement")
    plan = prog.plans["p"]
    assert charged_bucket(plan, prog.catalog["call"]) == "acts"
    assert charged_bucket(plan, prog.catalog["session"]) == "enablement"
    assert offers(prog) == [
        ("review", "acts", 3), ("session", "enablement", 90), ("call", "acts", 1), ("workshop", "enablement", 120)
    ]
    # A unit with one bucket needs no catalog_bucket, whatever it names.
    only_hours = program({"enablement": ENABLEMENT}, catalog_bucket="enablement")
    assert offers(only_hours) == [("session", "enablement", 90), ("workshop", "enablement", 120)]


def test_a_catalog_bucket_that_is_not_among_two_of_a_unit_leaves_them_ambiguous():
    prog = program({"acts": ACTIVITIES, "expert": HOURS, "enablement": ENABLEMENT}, catalog_bucket="acts")
    with pytest.raises(CatalogError, match=r"^several buckets count hours \(expert, enablement\)"):
        charged_bucket(prog.plans["p"], prog.catalog["session"])


# ---- what one booking costs -------------------------------------------------------------------------


def test_a_size_that_is_not_a_whole_number_of_ledger_units_is_refused():
    half = program({"acts": ACTIVITIES}, catalog={"call": CATALOG["call"], "half": {"name": "Half", "size": "1.5"}})
    assert refusal(half) == "activity 'half': its size 1.5 activities is not a whole number of activities"
    # 0.01 h is 0.6 minutes; an implied catalog refuses it as well, it does not skip it.
    seconds = program({"expert": {**HOURS, "increment": 1}}, catalog={"tiny": {"name": "Tiny", "unit": "hours", "size": "0.01"}})
    assert refusal(seconds) == "activity 'tiny': its size 0.01 hours is not a whole number of minutes"


def test_a_size_that_is_not_a_multiple_of_the_increment_is_refused():
    # 0.1 h is 6 minutes: whole, but not a multiple of 15.
    six = program({"expert": HOURS}, catalog={"quick": {"name": "Quick", "unit": "hours", "size": "0.1"}})
    assert refusal(six) == (
        "activity 'quick': its size 0.1 hours is not a multiple of the bucket's increment (15 minutes)"
    )
    # 1.5 h is 90 minutes: a multiple of 15 and of 30 alike, but 1.25 h (75 minutes) only of 15.
    assert offers(program({"expert": HOURS}, catalog={"s": {"name": "S", "unit": "hours", "size": "1.25"}})) == [("s", "expert", 75)]
    assert refusal(program({"enablement": ENABLEMENT}, catalog={"s": {"name": "S", "unit": "hours", "size": "1.25"}})) == (
        "activity 's': its size 1.25 hours is not a multiple of the bucket's increment (30 minutes)"
    )
    # Increments count for activity buckets too.
    pairs = {**ACTIVITIES, "allowance": 6, "increment": 2}
    assert refusal(program({"acts": pairs}, catalog={"review": CATALOG["review"]})) == (
        "activity 'review': its size 3 activities is not a multiple of the bucket's increment (2 activities)"
    )


# ---- what a contract may book ------------------------------------------------------------------------


def test_contract_catalog_narrows_to_the_order_in_the_orders_order():
    prog = program({"acts": ACTIVITIES, "expert": HOURS})
    plan = prog.plans["p"]
    assert list(contract_catalog(prog, plan, None)) == ["review", "session", "call", "workshop"]
    narrowed = contract_catalog(prog, plan, ["call", "workshop", "review"])
    assert list(narrowed) == ["call", "workshop", "review"]
    assert [(o.bucket_code, o.units) for o in narrowed.values()] == [("acts", 1), ("expert", 120), ("acts", 3)]


def test_contract_catalog_silently_drops_withdrawn_activities():
    prog = program({"acts": ACTIVITIES})
    plan = prog.plans["p"]
    # "retired" left the program, "session" is no longer offered by the plan (no hours bucket now).
    assert list(contract_catalog(prog, plan, ["retired", "call", "session", "review"])) == ["call", "review"]
    assert contract_catalog(prog, plan, ["retired"]) == {}


# ---- the loader names the key and the reason -----------------------------------------------------------


PROGRAM = """
code = "loader-catalog"
name = "Loader Catalog"
provider = "Tests"

[catalog.call]
name = "Call"
size = 1

[catalog.session]
name = "Working session"
unit = "hours"
size = 1.5

[plans.basic]
name = "Basic"
{plan}

[plans.basic.buckets.acts]
name = "Small activities"
unit = "activities"
allowance = 5
period = "quarter"
anchor = "contract"
{buckets}
"""

EXPERT = """
[plans.basic.buckets.expert]
name = "Expert hours"
unit = "hours"
allowance = 10
period = "quarter"
anchor = "calendar"
increment = 15
"""


def issues(plan: str = "", buckets: str = "") -> list[tuple[str, str, str]]:
    with pytest.raises(ProgramFileError) as caught:
        parse_program(PROGRAM.format(plan=plan, buckets=buckets), file="catalog.toml")
    return [(i.file, i.key, i.reason) for i in caught.value.issues]


def test_the_loader_accepts_a_catalog_it_can_charge():
    parsed = parse_program(PROGRAM.format(plan='catalog = ["session", "call"]', buckets=EXPERT))
    plan = parsed.program.plans["basic"]
    assert [(c, o.bucket_code, o.units) for c, o in plan_catalog(parsed.program, plan).items()] == [
        ("session", "expert", 90), ("call", "acts", 1)
    ]
    implied = parse_program(PROGRAM.format(plan="", buckets=""))  # the hours activity is simply not offered
    assert list(plan_catalog(implied.program, implied.program.plans["basic"])) == ["call"]


def test_the_loader_names_plans_catalog_when_an_activity_cannot_be_charged():
    assert issues(plan='catalog = ["call", "session"]') == [
        ("catalog.toml", "plans.basic.catalog", "activity 'session': the plan has no bucket counted in hours")
    ]
    assert issues(plan='catalog = ["call", "missing"]') == [
        ("catalog.toml", "plans.basic.catalog", "no activity 'missing' in the program catalog")
    ]


def test_the_loader_names_plans_catalog_when_two_buckets_are_ambiguous():
    second = EXPERT.replace("buckets.expert", "buckets.enablement").replace("Expert hours", "Enablement")
    assert issues(buckets=EXPERT + second) == [
        (
            "catalog.toml", "plans.basic.catalog",
            "activity 'session': several buckets count hours (expert, enablement): name the one activities are "
            "charged to with catalog_bucket",
        )
    ]
    fixed = parse_program(PROGRAM.format(plan='catalog_bucket = "enablement"', buckets=EXPERT + second))
    assert fixed.program.plans["basic"].catalog_bucket == "enablement"


def test_the_loader_names_plans_catalog_bucket_when_it_names_no_bucket():
    assert issues(plan='catalog_bucket = "nope"') == [
        ("catalog.toml", "plans.basic.catalog_bucket", "no bucket 'nope' in this plan")
    ]


def test_the_loader_names_plans_catalog_when_a_size_does_not_fit_the_increment():
    coarse = EXPERT.replace("increment = 15", "increment = 60")
    assert issues(buckets=coarse) == [
        (
            "catalog.toml", "plans.basic.catalog",
            "activity 'session': its size 1.5 hours is not a multiple of the bucket's increment (60 minutes)",
        )
    ]


def test_the_loader_checks_expiry_warning_days():
    assert issues(plan="expiry_warning_days = 367") == [
        ("catalog.toml", "plans.basic.expiry_warning_days", "Input should be less than or equal to 366")
    ]
    parsed = parse_program(PROGRAM.format(plan="expiry_warning_days = 0", buckets=""))
    assert parsed.program.plans["basic"].expiry_warning_days == 0
