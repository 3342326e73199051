"""read_program_file: good files parse, bad files are refused naming the file, the key and the reason."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from api.programs.loader import ProgramFileError, ProgramIssue, parse_program, read_program_file

MINIMAL = """
code = "mini"
name = "Mini Support"
provider = "Mini Support Services"
timezone = "Europe/Berlin"

[calendars.office]
name = "Office hours"
timezone = "Europe/Berlin"
schedule = "hours"
holidays = { country = "DE" }
hours = { mon = ["09:00-17:00"], tue = ["09:00-17:00"] }

[plans.basic]
name = "Basic"
channels = ["email"]

[plans.basic.buckets.support]
name = "Support hours"
unit = "hours"
allowance = 10
allowance_per_year = 40
period = "quarter"
anchor = "contract"

[plans.basic.severities.high]
name = "High"
rank = 1
first_response = { hours = 4, calendar = "office" }
"""


def write(tmp_path: Path, text: str, name: str = "program.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def edit(old: str, new: str) -> str:
    assert old in MINIMAL, old
    return MINIMAL.replace(old, new, 1)


def refused(path: Path) -> list[ProgramIssue]:
    with pytest.raises(ProgramFileError) as caught:
        read_program_file(path)
    issues = caught.value.issues
    assert issues
    assert all(issue.file == str(path) for issue in issues)
    return issues


def issue_at(issues: list[ProgramIssue], key: str) -> ProgramIssue:
    matching = [issue for issue in issues if issue.key == key]
    assert matching, f"no issue at {key!r}; got {[str(i) for i in issues]}"
    return matching[0]


# --- good files --------------------------------------------------------------------------------


def test_minimal_program_parses(tmp_path: Path):
    path = write(tmp_path, MINIMAL)
    parsed = read_program_file(path)
    program = parsed.program
    assert parsed.file == str(path)
    assert parsed.source == MINIMAL
    assert program.code == "mini"
    bucket = program.plans["basic"].buckets["support"]
    assert bucket.allowance == Decimal(10) and bucket.allowance_per_year == Decimal(40)
    assert program.plans["basic"].severities["high"].first_response.duration_minutes == 240
    assert program.calendars["office"].hours["mon"] == ("09:00-17:00",)


def test_floats_are_decimals(tmp_path: Path):
    text = edit("allowance = 10\nallowance_per_year = 40", "allowance = 2.5\nallowance_per_year = 10.0")
    bucket = read_program_file(write(tmp_path, text)).program.plans["basic"].buckets["support"]
    assert bucket.allowance == Decimal("2.5")
    assert isinstance(bucket.allowance, Decimal)


def test_extends_deep_merges(tmp_path: Path):
    text = MINIMAL + """
[plans.bigger]
extends = "basic"
name = "Bigger"

[plans.bigger.buckets.support]
allowance = 20
allowance_per_year = 80

[plans.bigger.severities.high]
first_response = { hours = 2, calendar = "office" }
"""
    plans = read_program_file(write(tmp_path, text)).program.plans
    child, parent = plans["bigger"], plans["basic"]
    assert child.extends == "basic"
    assert child.name == "Bigger"
    # overridden by the child
    assert child.buckets["support"].allowance == 20
    assert child.buckets["support"].allowance_per_year == 80
    assert child.severities["high"].first_response.duration_minutes == 120
    # inherited from the parent, key by key inside the same tables
    assert child.buckets["support"].name == "Support hours"
    assert child.buckets["support"].unit == "hours"
    assert child.buckets["support"].period == "quarter"
    assert child.severities["high"].name == "High"
    assert child.channels == ("email",)
    # the parent is untouched
    assert parent.buckets["support"].allowance == 10
    assert parent.severities["high"].first_response.duration_minutes == 240


def test_extends_chain(tmp_path: Path):
    text = MINIMAL + """
[plans.middle]
extends = "basic"
name = "Middle"
channels = ["email", "phone"]

[plans.top]
extends = "middle"
name = "Top"
buckets.support = { allowance = 30, allowance_per_year = 120 }
"""
    top = read_program_file(write(tmp_path, text)).program.plans["top"]
    assert top.channels == ("email", "phone")
    assert top.buckets["support"].allowance == 30
    assert top.severities["high"].rank == 1


# --- refusals ----------------------------------------------------------------------------------


def test_invalid_toml(tmp_path: Path):
    path = write(tmp_path, MINIMAL + "\n[plans.broken\nname = 1\n")
    (issue,) = refused(path)
    assert issue.key == ""
    assert issue.reason.startswith("is not valid TOML")


def test_unreadable_file(tmp_path: Path):
    path = tmp_path / "missing.toml"
    (issue,) = refused(path)
    assert issue.key == ""
    assert issue.reason.startswith("cannot be read")


def test_unknown_key(tmp_path: Path):
    path = write(tmp_path, edit('anchor = "contract"', 'anchor = "contract"\nfair_usee = true'))
    (issue,) = refused(path)
    assert issue.key == "plans.basic.buckets.support.fair_usee"
    assert issue.reason == "is not a known key here"


def test_missing_required_key(tmp_path: Path):
    path = write(tmp_path, edit('provider = "Mini Support Services"\n', ""))
    (issue,) = refused(path)
    assert issue.key == "provider"
    assert issue.reason == "is required"


def test_missing_required_nested_key(tmp_path: Path):
    path = write(tmp_path, edit('unit = "hours"\n', ""))
    issue = issue_at(refused(path), "plans.basic.buckets.support.unit")
    assert issue.reason == "is required"


def test_bad_time_zone(tmp_path: Path):
    path = write(tmp_path, edit('timezone = "Europe/Berlin"\nschedule', 'timezone = "Europe/Atlantis"\nschedule'))
    (issue,) = refused(path)
    assert issue.key == "calendars.office.timezone"
    assert issue.reason == "'Europe/Atlantis' is not an IANA time zone"


def test_bad_program_time_zone(tmp_path: Path):
    path = write(tmp_path, edit('timezone = "Europe/Berlin"\n\n', 'timezone = "Mars/Olympus"\n\n'))
    (issue,) = refused(path)
    assert issue.key == "timezone"
    assert "is not an IANA time zone" in issue.reason


def test_time_span_ending_before_it_starts(tmp_path: Path):
    path = write(tmp_path, edit('mon = ["09:00-17:00"]', 'mon = ["17:00-09:00"]'))
    (issue,) = refused(path)
    assert issue.key == "calendars.office.hours"
    assert issue.reason == "'17:00-09:00' must end after it starts"


def test_time_span_malformed(tmp_path: Path):
    path = write(tmp_path, edit('mon = ["09:00-17:00"]', 'mon = ["9-17"]'))
    (issue,) = refused(path)
    assert issue.key == "calendars.office.hours"
    assert issue.reason == "'9-17' is not a time span like '08:00-18:00'"


def test_time_span_in_open_window(tmp_path: Path):
    text = MINIMAL + """
[[calendars.office.open_windows]]
rule = "weekends"
hours = ["08:00-25:00"]
"""
    (issue,) = refused(write(tmp_path, text))
    assert issue.key == "calendars.office.open_windows.0.hours"
    assert "is not a time span" in issue.reason


def test_unknown_calendar_in_severity_target(tmp_path: Path):
    path = write(tmp_path, edit('calendar = "office"', 'calendar = "nowhere"'))
    (issue,) = refused(path)
    assert issue.key == "plans.basic.severities.high.first_response.calendar"
    assert issue.reason == "no calendar 'nowhere' in this program"


def test_deduction_bucket_not_in_hours(tmp_path: Path):
    text = MINIMAL + """
[plans.basic.buckets.sessions]
name = "Sessions"
unit = "activities"
allowance = 2
period = "quarter"
anchor = "contract"

[plans.basic.deductions]
bucket = "sessions"
minimum_minutes_per_conversation = 15
"""
    (issue,) = refused(write(tmp_path, text))
    assert issue.key == "plans.basic.deductions.bucket"
    assert issue.reason == "bucket 'sessions' is not counted in hours"


def test_deduction_bucket_missing(tmp_path: Path):
    text = MINIMAL + '\n[plans.basic.deductions]\nbucket = "ghost"\n'
    (issue,) = refused(write(tmp_path, text))
    assert issue.key == "plans.basic.deductions.bucket"
    assert issue.reason == "no bucket 'ghost' in this plan"


def test_credit_tiers_with_a_gap(tmp_path: Path):
    text = MINIMAL + """
[plans.basic.availability]
target_percent = 99.9
credits = [
    { below = 99.9, down_to = 99.0, credit_percent = 10 },
    { below = 98.0, down_to = 0, credit_percent = 25 },
]
"""
    (issue,) = refused(write(tmp_path, text))
    assert issue.key == "plans.basic.availability"
    assert issue.reason == "credits[1] starts below 98.0, expected 99.0: tiers must be contiguous"


def test_credit_tiers_not_reaching_zero(tmp_path: Path):
    text = MINIMAL + """
[plans.basic.availability]
target_percent = 99.9
credits = [{ below = 99.9, down_to = 99.0, credit_percent = 10 }]
"""
    (issue,) = refused(write(tmp_path, text))
    assert issue.key == "plans.basic.availability"
    assert issue.reason == "the last credit tier must go down to 0, not 99.0"


def test_extends_unknown_plan(tmp_path: Path):
    text = MINIMAL + '\n[plans.child]\nextends = "ghost"\nname = "Child"\n'
    (issue,) = refused(write(tmp_path, text))
    assert issue.key == "plans.child.extends"
    assert issue.reason == "no plan 'ghost' in this program"


def test_extends_cycle(tmp_path: Path):
    text = MINIMAL + """
[plans.a]
extends = "b"
name = "A"

[plans.b]
extends = "a"
name = "B"
"""
    issues = refused(write(tmp_path, text))
    assert {issue.key for issue in issues} == {"plans.a.extends", "plans.b.extends"}
    assert issue_at(issues, "plans.b.extends").reason == "plans extend each other in a cycle: a -> b -> a"
    assert issue_at(issues, "plans.a.extends").reason == "plans extend each other in a cycle: b -> a -> b"


def test_extends_itself(tmp_path: Path):
    text = MINIMAL + '\n[plans.loop]\nextends = "loop"\nname = "Loop"\n'
    (issue,) = refused(write(tmp_path, text))
    assert issue.key == "plans.loop.extends"
    assert issue.reason == "plans extend each other in a cycle: loop -> loop"


def test_allowance_not_whole_minutes(tmp_path: Path):
    path = write(tmp_path, edit("allowance = 10\nallowance_per_year = 40", "allowance = 0.01"))
    (issue,) = refused(path)
    assert issue.key == "plans.basic.buckets.support"
    assert issue.reason == "allowance 0.01 hours is not a whole number of minutes"


def test_allowance_per_year_inconsistent(tmp_path: Path):
    path = write(tmp_path, edit("allowance_per_year = 40", "allowance_per_year = 30"))
    (issue,) = refused(path)
    assert issue.key == "plans.basic.buckets.support"
    assert issue.reason == "allowance_per_year 30 is not 4 x 10"


def test_allowance_per_year_with_contract_allowance(tmp_path: Path):
    path = write(tmp_path, edit("allowance = 10", 'allowance = "contract"'))
    (issue,) = refused(path)
    assert issue.key == "plans.basic.buckets.support"
    assert issue.reason == "allowance_per_year cannot be fixed when the allowance is set per contract"


def test_unknown_holiday_country(tmp_path: Path):
    path = write(tmp_path, edit('holidays = { country = "DE" }', 'holidays = { country = "XX" }'))
    (issue,) = refused(path)
    assert issue.key == "calendars.office.holidays"
    assert issue.reason == "country 'XX' is not supported by the holidays library"


def test_every_problem_is_reported(tmp_path: Path):
    text = edit('provider = "Mini Support Services"\n', "").replace('mon = ["09:00-17:00"]', 'mon = ["17:00-09:00"]')
    keys = {issue.key for issue in refused(write(tmp_path, text))}
    assert keys == {"provider", "calendars.office.hours"}


def test_parse_program_names_the_given_file():
    with pytest.raises(ProgramFileError) as caught:
        parse_program("code = ", file="inline.toml")
    assert caught.value.issues[0].file == "inline.toml"
    assert "inline.toml" in str(caught.value)


def test_a_calendar_that_never_opens_is_refused():
    text = """
code = "never"
name = "Never"
provider = "Tests"
[calendars.sundays]
timezone = "Europe/Copenhagen"
schedule = "hours"
hours = { sun = ["00:00-00:15"] }
closed_windows = [{ rule = "weekends" }]
[plans.basic]
name = "Basic"
"""
    with pytest.raises(ProgramFileError) as refused:
        parse_program(text, file="never.toml")
    assert [(i.file, i.key, i.reason) for i in refused.value.issues] == [
        ("never.toml", "calendars.sundays", "the calendar is never open: its closures cover all of its hours")
    ]
