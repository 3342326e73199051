"""GraphQL: the loaded programs, and loading a program file from its TOML text."""

from __future__ import annotations

from tests import factories
from tests.conftest import unique

PROGRAMS = """
{ programs { code name provider version timezone currency plans { code programCode buckets { code allowance unit } } } }
"""

PROGRAM = """
query($code: String!) {
  program(code: $code) {
    code name provider version description timezone currency sourceFile
    plans { code name programCode sla buckets { code name unit ledgerUnit allowance period anchor increment } }
  }
}
"""

LOAD = """
mutation Load($input: LoadProgramInput!) {
  loadProgram(input: $input) {
    __typename
    ... on LoadProgramSuccess { status program { code name version sourceFile plans { code buckets { code allowance } } } }
    ... on ProgramFileInvalid { issues { file key reason } }
    ... on UserError { code message field }
  }
}
"""

SHIPPED_PLANS = {
    "advisory-assure": ["small", "medium", "large", "custom"],
    "partner-support": ["enterprise", "premium"],
    "premium-availability": ["premium-16", "premium-32", "premium-60", "premium-80"],
    "support-by-plan": ["free", "starter", "small", "medium", "platinum", "enterprise-advanced", "enterprise-premium"],
    "tiered-support": ["basic", "essential", "extended", "premium"],
}


def small_program(code: str, *, name: str = "Small Test Program") -> str:
    return factories.small_program(code, name=name, provider="Test Provider", bucket="sessions")


async def test_programs_lists_the_shipped_programs(gql, shipped_programs):
    programs = {p["code"]: p for p in (await gql(PROGRAMS))["programs"]}
    assert set(SHIPPED_PLANS) <= set(programs)
    for code, plans in SHIPPED_PLANS.items():
        assert [plan["code"] for plan in programs[code]["plans"]] == plans
        assert {plan["programCode"] for plan in programs[code]["plans"]} == {code}

    assure = programs["advisory-assure"]
    assert {plan["code"]: plan["buckets"] for plan in assure["plans"]} == {
        "small": [{"code": "activities", "allowance": 5, "unit": "ACTIVITIES"}],
        "medium": [{"code": "activities", "allowance": 10, "unit": "ACTIVITIES"}],
        "large": [{"code": "activities", "allowance": 20, "unit": "ACTIVITIES"}],
        "custom": [{"code": "activities", "allowance": None, "unit": "ACTIVITIES"}],
    }
    premium = {plan["code"]: plan["buckets"] for plan in programs["premium-availability"]["plans"]}
    assert {code: buckets[0]["allowance"] for code, buckets in premium.items()} == {
        "premium-16": 960, "premium-32": 1920, "premium-60": 3600, "premium-80": 4800,
    }
    assert {b["unit"] for buckets in premium.values() for b in buckets} == {"HOURS"}
    partner = {plan["code"]: plan["buckets"] for plan in programs["partner-support"]["plans"]}
    assert partner["enterprise"] == partner["premium"] == [{"code": "support-hours", "allowance": None, "unit": "HOURS"}]


async def test_program_by_code(gql, shipped_programs):
    program = (await gql(PROGRAM, {"code": "advisory-assure"}))["program"]
    assert {k: program[k] for k in ("code", "name", "provider", "version", "timezone", "currency")} == {
        "code": "advisory-assure",
        "name": "Assure Advisory Packages",
        "provider": "Assure Advisory Services",
        "version": "1",
        "timezone": "UTC",
        "currency": "EUR",
    }
    assert program["description"].startswith("Expert oversight")
    assert program["sourceFile"].endswith("advisory-assure.toml")
    small = program["plans"][0]
    assert small == {
        "code": "small",
        "name": "Assure Small",
        "programCode": "advisory-assure",
        "sla": False,
        "buckets": [
            {
                "code": "activities",
                "name": "Small activities",
                "unit": "ACTIVITIES",
                "ledgerUnit": "ACTIVITIES",
                "allowance": 5,
                "period": "QUARTER",
                "anchor": "CONTRACT",
                "increment": 1,
            }
        ],
    }
    assert (await gql(PROGRAM, {"code": "no-such-program"}))["program"] is None


async def test_load_a_bad_program_loads_nothing(gql):
    code = unique("broken")
    source = small_program(code).replace('unit = "activities"', 'unit = "days"').replace(
        'timezone = "UTC"', 'timezone = "UTC"\nmotto = "unknown key"'
    )
    result = (await gql(LOAD, {"input": {"source": source, "fileName": "broken.toml"}}))["loadProgram"]
    assert result["__typename"] == "ProgramFileInvalid"
    assert (result["code"], result["field"]) == ("INVALID", "source")
    issues = {issue["key"]: issue for issue in result["issues"]}
    assert {issue["file"] for issue in result["issues"]} == {"broken.toml"}
    assert issues["motto"]["reason"] == "is not a known key here"
    assert "plans.basic.buckets.sessions.unit" in issues
    assert "'activities' or 'hours'" in issues["plans.basic.buckets.sessions.unit"]["reason"]
    assert "broken.toml: motto: is not a known key here" in result["message"]
    assert (await gql(PROGRAM, {"code": code}))["program"] is None


async def test_load_a_program_with_overlong_names(gql):
    code = unique("long")
    source = small_program(code, name="n" * 201).replace('name = "Basic"', f'name = "{"b" * 201}"')
    result = (await gql(LOAD, {"input": {"source": source, "fileName": "long.toml"}}))["loadProgram"]
    assert result["__typename"] == "ProgramFileInvalid"
    assert {(i["key"], i["reason"]) for i in result["issues"]} == {
        ("name", "String should have at most 200 characters"),
        ("plans.basic.name", "String should have at most 200 characters"),
    }
    assert (await gql(PROGRAM, {"code": code}))["program"] is None


async def test_load_with_an_overlong_file_name(gql):
    code = unique("longfile")
    result = (await gql(LOAD, {"input": {"source": small_program(code), "fileName": "f" * 501}}))["loadProgram"]
    assert result == {
        "__typename": "ValidationError",
        "code": "INVALID",
        "message": "file name has 501 characters; at most 500",
        "field": "fileName",
    }
    assert (await gql(PROGRAM, {"code": code}))["program"] is None


async def test_load_a_file_that_is_not_toml(gql):
    code = unique("nottoml")
    result = (await gql(LOAD, {"input": {"source": small_program(code) + "\n[plans\n", "fileName": "bad.toml"}}))[
        "loadProgram"
    ]
    assert result["__typename"] == "ProgramFileInvalid"
    [issue] = result["issues"]
    assert (issue["file"], issue["key"]) == ("bad.toml", "")
    assert issue["reason"].startswith("is not valid TOML")
    assert (await gql(PROGRAM, {"code": code}))["program"] is None


async def test_load_a_program_then_load_it_again(gql):
    code = unique("mini")
    source = small_program(code)
    first = (await gql(LOAD, {"input": {"source": source, "fileName": "mini.toml"}}))["loadProgram"]
    assert first == {
        "__typename": "LoadProgramSuccess",
        "status": "created",
        "program": {
            "code": code,
            "name": "Small Test Program",
            "version": "1",
            "sourceFile": "mini.toml",
            "plans": [{"code": "basic", "buckets": [{"code": "sessions", "allowance": 3}]}],
        },
    }
    again = (await gql(LOAD, {"input": {"source": source, "fileName": "mini.toml"}}))["loadProgram"]
    assert again == {**first, "status": "unchanged"}

    renamed = (await gql(LOAD, {"input": {"source": small_program(code, name="Renamed"), "fileName": "mini.toml"}}))[
        "loadProgram"
    ]
    assert (renamed["status"], renamed["program"]["name"]) == ("updated", "Renamed")

    listed = [p["code"] for p in (await gql(PROGRAMS))["programs"]]
    assert listed.count(code) == 1
    assert (await gql(PROGRAM, {"code": code}))["program"]["name"] == "Renamed"
