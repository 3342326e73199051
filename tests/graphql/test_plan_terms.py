"""GraphQL: every term of a plan through Contract.plan, compared with the program file read here with tomllib."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from api.config import PROJECT_ROOT
from api.models import TokenAccess, TokenScope

PROGRAM_FILES = sorted((PROJECT_ROOT / "programs").glob("*.toml"))
DIAGNOSIS_FIELDS = ["affectedAccount", "stepsFollowed", "expectedResult"]  # fileTicket's input names
SCHEDULES = {"24/7": "TWENTY_FOUR_SEVEN", "24/5": "TWENTY_FOUR_FIVE", "hours": "HOURS"}
WEEKDAYS = {"mon": "MONDAY", "tue": "TUESDAY", "wed": "WEDNESDAY", "thu": "THURSDAY", "fri": "FRIDAY",
            "sat": "SATURDAY", "sun": "SUNDAY"}
TARGETS = {"acknowledge": "acknowledge", "first_response": "firstResponse", "update_interval": "updateInterval",
           "resolution": "resolution"}

TARGET = "minutes calendar asTimePermits bestEffort description"
WINDOW = "rule month count hours description"
PLAN_TERMS = f"""
  code name
  severities {{
    code name description rank
    acknowledge {{ {TARGET} }} firstResponse {{ {TARGET} }} updateInterval {{ {TARGET} }} resolution {{ {TARGET} }}
    updateMayBeRescheduled onCall examples
  }}
  ticketTypes {{
    code name description category allowed channels guarantee responseGuarantee priorityFlag needsDiagnosis
    diagnosisFields incident deducted severities requiresCertifiedPartner requiresProductionAccess
  }}
  calendars {{
    code name timezone schedule weeklyHours {{ weekday spans }} holidays {{ country subdivision categories }}
    closedDates closedWindows {{ {WINDOW} }} openWindows {{ {WINDOW} }}
  }}
  calendar
  deductions {{ bucket minimumMinutesPerConversation exemptCategories whenExhausted description }}
  availability {{ targetPercent measuredOver creditBasis credits {{ below downTo creditPercent }} }}
  outOfScope {{ code text source }}
  outOfSupport {{ code text source }}
  addOns {{ code name description unit priceMin priceMax currency responseMinutes windows }}
  meetings {{ code name description per min max }}
  reporting {{ consumptionReport operationalReport contents }}
  channels responseGuarantee features excluded catalogBucket expiryWarningDays
"""
CONTRACT_PLAN = f"query($id: ID!) {{ contract(id: $id) {{ id plan {{ {PLAN_TERMS} }} }} }}"
CHECK_FILING = """
query($customerId: ID!, $ticketType: String!) {
  checkFiling(customerId: $customerId, ticketType: $ticketType) { allowed code reason }
}
"""
FILE_TICKET = """
mutation($input: FileTicketInput!) {
  fileTicket(input: $input) { __typename ... on UserError { code message field } }
}
"""


# ---- the program file, read independently of api.programs -------------------------------------


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        both_tables = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if both_tables else value
    return merged


def read_program(path: Path) -> dict[str, Any]:
    """The TOML with every plan's `extends` resolved: a plan starts from its parent and overrides what it sets."""
    raw = tomllib.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    plans = raw["plans"]

    def resolve(code: str) -> dict[str, Any]:
        parent = plans[code].get("extends")
        return plans[code] if parent is None else _merge(resolve(parent), plans[code])

    return {**raw, "plans": {code: resolve(code) for code in plans}}


def _target(target: dict[str, Any] | None) -> dict[str, Any] | None:
    if target is None:
        return None
    minutes = target.get("minutes")
    if "hours" in target:
        minutes = int(Decimal(target["hours"]) * 60)
    return {
        "minutes": minutes, "calendar": target.get("calendar"), "asTimePermits": target.get("as_time_permits", False),
        "bestEffort": target.get("best_effort", False), "description": target.get("description", ""),
    }


def _window(window: dict[str, Any], is_open: bool) -> dict[str, Any]:
    rule = window["rule"]
    month, count = window.get("month"), window.get("count")
    return {
        "rule": rule.upper(),
        "month": month or 7 if rule == "summer_weeks" else month,
        "count": count or 3 if rule == "weekdays_before_easter" else count,
        "hours": window.get("hours", ["00:00-24:00"]) if is_open else [],
        "description": window.get("description", ""),
    }


def _calendar(code: str, calendar: dict[str, Any]) -> dict[str, Any]:
    schedule, hours, source = calendar["schedule"], calendar.get("hours", {}), calendar.get("holidays")
    all_day = {"24/7": list(WEEKDAYS), "24/5": list(WEEKDAYS)[:5]}.get(schedule, [])
    return {
        "code": code,
        "name": calendar.get("name", ""),
        "timezone": calendar["timezone"],
        "schedule": SCHEDULES[schedule],
        "weeklyHours": [
            {"weekday": name, "spans": ["00:00-24:00"] if day in all_day else hours.get(day, [])}
            for day, name in WEEKDAYS.items()
        ],
        "holidays": None if source is None else {
            "country": source["country"], "subdivision": source.get("subdivision"),
            "categories": source.get("categories", ["public"]),
        },
        "closedDates": [day.isoformat() for day in calendar.get("closed_dates", [])],
        "closedWindows": [_window(w, False) for w in calendar.get("closed_windows", [])],
        "openWindows": [_window(w, True) for w in calendar.get("open_windows", [])],
    }


def _ticket_type(code: str, spec: dict[str, Any], plan: dict[str, Any], allowed: bool) -> dict[str, Any]:
    severities, rules = plan.get("severities", {}), plan.get("deductions")
    allows = spec.get("severities", list(severities)) if allowed else []
    diagnosis = spec.get("needs_diagnosis", False)
    return {
        "code": code,
        "name": spec["name"],
        "description": spec.get("description", ""),
        "category": spec["category"].upper(),
        "allowed": allowed,
        "channels": spec.get("channels", []),
        "guarantee": spec.get("guarantee", ""),
        "responseGuarantee": spec.get("response_guarantee", False),
        "priorityFlag": spec.get("priority_flag", False),
        "needsDiagnosis": diagnosis,
        "diagnosisFields": DIAGNOSIS_FIELDS if diagnosis else [],
        "incident": spec["category"] == "incident",
        "deducted": allowed and rules is not None and spec["category"] not in rules.get("exempt_categories", []),
        "severities": sorted(allows, key=lambda s: severities[s]["rank"]),
        "requiresCertifiedPartner": spec.get("requires_certified_partner", False),
        "requiresProductionAccess": spec.get("requires_production_access", False),
    }


def expected_terms(program: dict[str, Any], plan_code: str) -> dict[str, Any]:
    plan = program["plans"][plan_code]
    severities = plan.get("severities", {})
    ticket_types = [_ticket_type(code, spec, plan, True) for code, spec in plan.get("ticket_types", {}).items()]
    for other in program["plans"].values():  # then the program's types this plan does not offer
        for code, spec in other.get("ticket_types", {}).items():
            if code not in {t["code"] for t in ticket_types}:
                ticket_types.append(_ticket_type(code, spec, plan, False))
    targets = [s.get(name) for s in severities.values() for name in TARGETS]
    used = {plan.get("calendar")} | {target.get("calendar") for target in targets if target}
    rules, availability, reporting = plan.get("deductions"), plan.get("availability"), plan.get("reporting", {})
    partner_scope = program.get("partners", {}).get("out_of_scope", [])
    scope = {
        name: [{**item, "source": "PLAN"} for item in plan.get(name, [])]
        + [{**item, "source": "PROGRAM"} for item in program.get(name, [])]
        for name in ("out_of_scope", "out_of_support")
    }
    return {
        "code": plan_code,
        "name": plan["name"],
        "severities": [
            {
                "code": code, "name": s["name"], "description": s.get("description", ""), "rank": s["rank"],
                **{field: _target(s.get(name)) for name, field in TARGETS.items()},
                "updateMayBeRescheduled": s.get("update_may_be_rescheduled", False), "onCall": s.get("on_call", False),
                "examples": s.get("examples", []),
            }
            for code, s in sorted(severities.items(), key=lambda item: item[1]["rank"])
        ],
        "ticketTypes": ticket_types,
        "calendars": [_calendar(code, c) for code, c in program.get("calendars", {}).items() if code in used],
        "calendar": plan.get("calendar"),
        "deductions": None if rules is None else {
            "bucket": rules["bucket"],
            "minimumMinutesPerConversation": rules.get("minimum_minutes_per_conversation", 0),
            "exemptCategories": [c.upper() for c in rules.get("exempt_categories", [])],
            "whenExhausted": rules.get("when_exhausted", "refuse").upper(),
            "description": rules.get("description", ""),
        },
        "availability": None if availability is None else {
            "targetPercent": Decimal(availability["target_percent"]),
            "measuredOver": availability.get("measured_over", "calendar_month").upper(),
            "creditBasis": availability.get("credit_basis", "pro_rata_monthly_fee").upper(),
            "credits": [
                {"below": Decimal(t["below"]), "downTo": Decimal(t.get("down_to", 0)),
                 "creditPercent": Decimal(t["credit_percent"])}
                for t in availability.get("credits", [])
            ],
        },
        "outOfScope": scope["out_of_scope"] + [{**item, "source": "PARTNER_PROGRAM"} for item in partner_scope],
        "outOfSupport": scope["out_of_support"],
        "addOns": [
            {
                "code": code, "name": a["name"], "description": a.get("description", ""), "unit": a["unit"],
                "priceMin": Decimal(a["price_min"]), "priceMax": Decimal(a["price_max"]), "currency": a["currency"],
                "responseMinutes": a.get("response_minutes"), "windows": a.get("windows", []),
            }
            for code, a in plan.get("add_ons", {}).items()
        ],
        "meetings": [
            {"code": code, "name": m["name"], "description": m.get("description", ""), "per": m["per"].upper(),
             "min": m["min"], "max": m["max"]}
            for code, m in plan.get("meetings", {}).items()
        ],
        "reporting": {
            "consumptionReport": reporting.get("consumption_report", "monthly").upper(),
            "operationalReport": [r.upper() for r in reporting.get("operational_report", [])],
            "contents": reporting.get("contents", []),
        },
        "channels": plan.get("channels", []),
        "responseGuarantee": plan.get("response_guarantee", False),
        "features": plan.get("features", []),
        "excluded": plan.get("excluded", []),
        "catalogBucket": plan.get("catalog_bucket"),
        "expiryWarningDays": plan.get("expiry_warning_days"),
    }


def with_decimals(plan: dict[str, Any]) -> dict[str, Any]:
    """The API's Decimal strings as numbers, so 99.0 and "99.0" compare by value."""
    if plan["availability"] is not None:
        availability = plan["availability"]
        availability["targetPercent"] = Decimal(availability["targetPercent"])
        availability["credits"] = [{k: Decimal(v) for k, v in tier.items()} for tier in availability["credits"]]
    for add_on in plan["addOns"]:
        add_on["priceMin"], add_on["priceMax"] = Decimal(add_on["priceMin"]), Decimal(add_on["priceMax"])
    return plan


# ---- one customer per plan, each with its own customer token ------------------------------------


async def customers_on_every_plan(program, make_contract, connect) -> dict[str, tuple[Any, Any]]:  # type: ignore[no-untyped-def]
    """plan code -> (contract, a read-write customer caller) for a new customer on each plan of the program."""
    found = {}
    for code, plan in program["plans"].items():
        buckets = plan.get("buckets", {}).items()
        custom = {b: 60 * spec.get("increment", 1) for b, spec in buckets if spec["allowance"] == "contract"}
        contract = await make_contract(program=program["code"], plan=code, custom_allowances=custom)
        caller, _, _ = await connect.token(
            TokenScope.CUSTOMER, TokenAccess.READ_WRITE, customer_id=contract.customer_id
        )
        found[code] = (contract, caller)
    return found


@pytest.mark.parametrize("path", PROGRAM_FILES, ids=lambda p: p.stem)
async def test_contract_plan_shows_every_term_of_the_program_file(path, make_contract, connect):
    program = read_program(path)
    for code, (contract, caller) in (await customers_on_every_plan(program, make_contract, connect)).items():
        found = (await caller.data(CONTRACT_PLAN, {"id": str(contract.id)}))["contract"]
        assert found is not None and found["id"] == str(contract.id)
        assert with_decimals(found["plan"]) == expected_terms(program, code), f"{program['code']}/{code}"


@pytest.mark.parametrize("path", PROGRAM_FILES, ids=lambda p: p.stem)
async def test_ticket_type_terms_agree_with_filing(path, make_contract, connect):
    """`allowed`, `diagnosisFields` and the scope lists say what filing as the customer actually does."""
    program = read_program(path)
    for code, (contract, caller) in (await customers_on_every_plan(program, make_contract, connect)).items():
        plan = (await caller.data(CONTRACT_PLAN, {"id": str(contract.id)}))["contract"]["plan"]
        customer = str(contract.customer_id)
        fileable = []
        for kind in plan["ticketTypes"]:
            variables = {"customerId": customer, "ticketType": kind["code"]}
            check = (await caller.data(CHECK_FILING, variables))["checkFiling"]
            by_partner_only = kind["requiresCertifiedPartner"] or kind["requiresProductionAccess"]
            assert check["allowed"] == (kind["allowed"] and not by_partner_only), (code, kind["code"], check)
            if check["allowed"]:
                fileable.append(kind)
        for kind in fileable:
            if not kind["needsDiagnosis"]:
                continue
            ticket = {
                "customerId": customer, "ticketType": kind["code"], "severity": (kind["severities"] or [""])[0],
                "subject": "Diagnosis left out",
            }
            refused = (await caller.data(FILE_TICKET, {"input": ticket}))["fileTicket"]
            assert refused["__typename"] == "ValidationError", (code, kind["code"], refused)
            assert refused["field"] == kind["diagnosisFields"][0]
            assert refused["message"].endswith(f"(missing: {', '.join(kind['diagnosisFields'])})")
        for item in plan["outOfScope"] + plan["outOfSupport"] if fileable else []:
            kind = fileable[0]
            ticket = {
                "customerId": customer, "ticketType": kind["code"], "severity": (kind["severities"] or [""])[0],
                "subject": "About something excluded", "scopeItem": item["code"], "affectedAccount": "acct",
                "stepsFollowed": "steps", "expectedResult": "result",
            }
            refused = (await caller.data(FILE_TICKET, {"input": ticket}))["fileTicket"]
            assert refused["__typename"] == "OutOfScopeError", (code, item["code"], refused)
            assert item["text"] in refused["message"]


async def test_a_customer_sees_only_its_own_contracts_plan(make_contract, connect):
    mine = await make_contract(program="tiered-support", plan="premium")
    theirs = await make_contract(program="tiered-support", plan="premium")
    caller, _, _ = await connect.token(TokenScope.CUSTOMER, TokenAccess.READ, customer_id=mine.customer_id)

    own = (await caller.data(CONTRACT_PLAN, {"id": str(mine.id)}))["contract"]
    assert own["plan"]["code"] == "premium" and [a["code"] for a in own["plan"]["addOns"]] == ["on-call-readiness"]
    assert (await caller.data(CONTRACT_PLAN, {"id": str(theirs.id)}))["contract"] is None
