"""The input rules (api/domain/inputs.py): characters, lengths, numbers, dates and program-file nesting."""

from __future__ import annotations

import time
import tomllib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from api.config import PROJECT_ROOT, Settings
from api.domain.inputs import (
    FIELDS,
    InputRefused,
    Limits,
    check_day,
    check_decimal,
    check_document,
    check_instant,
    check_term,
    check_text,
    check_toml_nesting,
    refused_character,
)

LIMITS = Limits()


def refusal(rule, *args, **kwargs) -> InputRefused:  # type: ignore[no-untyped-def]
    with pytest.raises(InputRefused) as refused:
        rule(*args, **kwargs)
    return refused.value


# ---- text -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("name", "Evil\x00Corp", "NUL (U+0000)"),
        ("name", "Evil\u202eproC", "bidirectional formatting character (U+202E)"),
        ("name", "Evil\u2066Corp", "bidirectional formatting character (U+2066)"),
        ("name", "Ev\u200bil", "zero-width space (U+200B)"),
        ("name", "Ev\u200dil", "zero-width joiner (U+200D)"),
        ("name", "Ev\u2060il", "word joiner (U+2060)"),
        ("name", "\ufeffEvil", "zero-width no-break space (U+FEFF)"),
        ("name", "Evil\nCorp", "line break (U+000A)"),
        ("name", "Evil\tCorp", "tab (U+0009)"),
        ("subject", "Help\u2028me", "line separator (U+2028)"),
        ("programCode", "plan\u202a1", "U+202A"),
        ("code", "a\x7f", "control character (U+007F)"),
        ("reason", "work\x00", "NUL"),
        ("reason", "work\x1b[31m", "control character (U+001B)"),
        ("note", "work\x85", "control character (U+0085)"),
        ("description", "text \ud800", "lone surrogate (U+D800)"),
        ("body", "\x0c", "control character (U+000C)"),
    ],
)
def test_refused_characters_are_named_with_their_field(field, value, words):
    refused = refusal(check_text, value, field, LIMITS)
    assert refused.field == field
    assert words in refused.message
    assert refused.message.startswith(f"{field} may not contain")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("description", "line one\nline two\r\n\ttabbed"),  # multi-line text keeps line breaks and tabs
        ("note", "done\n"),
        ("body", "مرحبا\u200c بالعالم"),  # a zero-width non-joiner belongs in Persian and Arabic text
        ("reason", "\u2067שלום\u2069 says hi"),  # bidi isolates are allowed in free text
        ("name", "Ørsted A/S — Åbenrå"),
        ("name", "株式会社テスト"),
        ("subject", "Emoji ok 👍🏽"),
    ],
)
def test_ordinary_text_of_every_script_is_accepted(field, value):
    assert check_text(value, field, LIMITS) == value


def test_every_field_has_a_length_and_the_configured_ones_follow_the_limits():
    limits = replace(LIMITS, note=10, text=20)
    assert FIELDS["reason"].maximum(limits) == FIELDS["note"].maximum(limits) == 10
    assert FIELDS["description"].maximum(limits) == FIELDS["body"].maximum(limits) == 20
    assert (FIELDS["name"].maximum(limits), FIELDS["subject"].maximum(limits)) == (200, 300)
    assert check_text("x" * 10, "reason", limits) == "x" * 10
    assert refusal(check_text, "x" * 11, "reason", limits).message == "reason must be at most 10 characters"


def test_an_overlong_text_is_refused_without_being_read():
    text = "x" * 10_000_000 + "\x00"
    started = time.perf_counter()
    refused = refusal(check_text, text, "note", LIMITS)
    assert time.perf_counter() - started < 0.05
    assert refused.message == "note must be at most 2000 characters"


def test_only_text_is_text():
    assert refusal(check_text, 5, "name", LIMITS).message == "name must be text"


def test_strictness_is_per_field():
    assert refused_character("a\u200bb") is None
    assert refused_character("a\u200bb", strict=True) == (1, "\u200b")
    assert refused_character("a\nb", multiline=True) is None
    assert refused_character("a\nb") == (1, "\n")


# ---- numbers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1e1000000", "quantity 1E+1000000 is too large"),
        ("1e999999999999", "quantity 1E+999999999999 is too large"),
        ("-1e999999999999", "quantity -1E+999999999999 is too large"),
        ("1e40", "quantity 1E+40 is too large"),
        ("NaN", "quantity NaN is not a number"),
        ("sNaN", "quantity sNaN is not a number"),
        ("-Infinity", "quantity -Infinity is not a number"),
        ("1e-999999999999", "quantity 1E-999999999999 has too many digits"),
        ("0." + "0" * 40 + "1", "has too many digits"),
        ("1" * 65, "quantity must be a number of at most 64 characters"),
        ("twelve", "quantity 'twelve' is not a number"),
        (True, "quantity must be a number"),
        (10**200, "quantity is too large"),
    ],
)
def test_numbers_are_bounded_before_any_arithmetic(value, message):
    started = time.perf_counter()
    refused = refusal(check_decimal, value, "quantity")
    assert time.perf_counter() - started < 0.05
    assert refused.field == "quantity"
    assert message in refused.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", Decimal(1)),
        (" 2.5 ", Decimal("2.5")),
        ("1e3", Decimal(1000)),
        ("-39.99", Decimal("-39.99")),
        ("0.0001", Decimal("0.0001")),
        ("9" * 39, Decimal("9" * 39)),
        ("0E+1000000", Decimal(0)),
        (7, Decimal(7)),
        (Decimal("1E+30"), Decimal("1E+30")),  # large, but arithmetic on it is cheap: the service says what it may be
    ],
)
def test_ordinary_numbers_pass(value, expected):
    assert check_decimal(value, "quantity") == expected


def test_a_label_names_the_number_for_people():
    assert refusal(check_decimal, "NaN", "dayRate", label="the day rate").message == "the day rate NaN is not a number"


# ---- dates -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("day", [date(1, 1, 1), date(1999, 12, 31), date(2101, 1, 1), date(9999, 12, 31)])
def test_days_outside_the_sane_range_are_refused(day):
    refused = refusal(check_day, day, "on", LIMITS)
    assert refused.field == "on"
    assert refused.message == f"on must be a date from 2000-01-01 to 2100-12-31, not {day.isoformat()}"


@pytest.mark.parametrize("day", [date(2000, 1, 1), date(2026, 3, 10), date(2100, 12, 31)])
def test_days_inside_it_pass(day):
    assert check_day(day, "on", LIMITS) == day


@pytest.mark.parametrize(
    "instant",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),  # converting it to UTC would fall before year 1
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-12))),  # ... or after year 9999
        datetime(1999, 12, 31, 23, 59, tzinfo=UTC),
        datetime(2101, 1, 1, tzinfo=UTC),
    ],
)
def test_instants_are_checked_before_any_conversion(instant):
    refused = refusal(check_instant, instant, "startsAt", LIMITS)
    assert refused.field == "startsAt"


def test_a_datetime_is_no_day_and_a_day_no_instant():
    assert refusal(check_day, datetime(2026, 1, 1, tzinfo=UTC), "on", LIMITS).message == "on must be a date"
    assert refusal(check_instant, date(2026, 1, 1), "at", LIMITS).message == "at must be a date and time"


@pytest.mark.parametrize(
    ("start", "end", "field", "words"),
    [
        (date(1, 1, 1), date(2026, 1, 1), "effectiveDate", "from 2000-01-01 to 2100-12-31"),
        (date(2026, 1, 1), date(9999, 12, 31), "endDate", "from 2000-01-01 to 2100-12-31"),
        (date(2026, 2, 1), date(2026, 1, 31), "endDate", "is before the effective date"),
        (date(2026, 1, 1), date(2036, 1, 1), "endDate", "at most 10 years: from 2026-01-01 it ends by 2035-12-31"),
        (date(2028, 2, 29), date(2038, 3, 1), "endDate", "ends by 2038-02-28"),
    ],
)
def test_a_term_is_sane_and_at_most_ten_years(start, end, field, words):
    refused = refusal(check_term, start, end, LIMITS)
    assert refused.field == field
    assert words in refused.message


@pytest.mark.parametrize(
    ("start", "end"),
    [(date(2026, 1, 1), date(2035, 12, 31)), (date(2028, 2, 29), date(2038, 2, 28)), (date(2026, 5, 1), date(2026, 5, 1))],
)
def test_terms_up_to_ten_years_pass(start, end):
    assert check_term(start, end, LIMITS) == (start, end)


def test_the_longest_term_is_configured():
    assert refusal(check_term, date(2026, 1, 1), date(2028, 1, 1), replace(LIMITS, term_years=2)).field == "endDate"
    assert check_term(date(2026, 1, 1), date(2027, 12, 31), replace(LIMITS, term_years=2))


# ---- program files -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((PROJECT_ROOT / "programs").glob("*.toml")), ids=lambda p: p.name)
def test_the_shipped_programs_pass_with_room_to_spare(path):
    text = path.read_text(encoding="utf-8")
    check_toml_nesting(text, LIMITS.program_depth // 2)
    assert list(check_document(tomllib.loads(text, parse_float=Decimal), LIMITS)) == []


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("x = " + "[" * 100_000 + "]" * 100_000, 21),
        ("x = " + "{a = " * 50_000 + "1" + "}" * 50_000, 21),
        ("a" + ".a" * 100_000 + " = 1", 21),
        ("[" + "a." * 100_000 + "a]", 100_001),
        ("[[" + "a." * 30 + "a]]", 32),
        ('[a]\nb = 1\n[c."d.e".f]\ng = [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]', 21),
    ],
)
def test_deep_nesting_is_refused_in_one_quick_pass(text, depth):
    started = time.perf_counter()
    refused = refusal(check_toml_nesting, text, 20)
    assert time.perf_counter() - started < 1
    assert refused.field == "source"
    assert f"nests {depth} levels deep" in refused.message and "at most 20" in refused.message


@pytest.mark.parametrize(
    "text",
    [
        'a = "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["',  # brackets in strings and comments do not count
        "a = '{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{'",
        'a = """\n[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n"""',
        "# [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\na = 1",
        '"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v" = 1',  # a quoted key is one level
        "a = [1, 2, [3, 4], {b = 1}, [[5]]]\nc = {d = {e = 1}}",
    ],
)
def test_what_does_not_nest_is_not_counted(text):
    check_toml_nesting(text, 20)


def test_the_refusal_names_the_line():
    text = "a = 1\nb = 2\nc = " + "[" * 30 + "]" * 30
    assert "on line 3" in refusal(check_toml_nesting, text, 20).message


def test_a_parsed_document_is_checked_for_what_its_schema_does_not_see():
    document = {
        "name": "Bad\u202ename",
        "description": "fine\nmulti-line",
        "plans": {"a\u200bb": {}, "basic": {"hours": Decimal("1e999999999"), "minutes": 10**20, "note": "x\x00"}},
        "deep": {"a": {"b": {"c": 1}}},
    }
    found = dict(check_document(document, replace(LIMITS, program_depth=3)))
    assert found["name"] == "may not contain a bidirectional formatting character (U+202E)"
    assert found["plans.?"] == "a key may not contain a zero-width space (U+200B)"
    assert found["plans.basic.hours"] == "1E+999999999 is too large"
    assert found["plans.basic.minutes"] == "must be below 1,000,000,000,000,000"
    assert found["plans.basic.note"] == "may not contain NUL (U+0000)"
    assert found["deep.a.b.c"] == "nests 4 levels deep; at most 3"
    assert "description" not in found


# ---- the settings ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"max_note_length": 0}, "ENTITLE_MAX_NOTE_LENGTH"),
        ({"max_text_length": 2_000_000}, "ENTITLE_MAX_TEXT_LENGTH"),
        ({"max_term_years": 0}, "ENTITLE_MAX_TERM_YEARS"),
        ({"program_max_depth": 3}, "ENTITLE_PROGRAM_MAX_DEPTH"),
        ({"program_max_size": 10}, "ENTITLE_PROGRAM_MAX_SIZE"),
        ({"earliest_date": date(1, 1, 1)}, "ENTITLE_EARLIEST_DATE"),
        ({"latest_date": date(9999, 12, 31)}, "ENTITLE_LATEST_DATE"),
        ({"earliest_date": date(2050, 1, 1), "latest_date": date(2040, 1, 1)}, "must come before"),
    ],
)
def test_limits_out_of_range_stop_the_settings(changes, words):
    with pytest.raises(ValueError, match=words):
        Settings(**changes)


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("ENTITLE_MAX_NOTE_LENGTH", "500")
    monkeypatch.setenv("ENTITLE_EARLIEST_DATE", "2010-01-01")
    monkeypatch.setenv("ENTITLE_MAX_TERM_YEARS", "5")
    settings = Settings.from_env()
    assert (settings.max_note_length, settings.earliest_date, settings.max_term_years) == (500, date(2010, 1, 1), 5)
    monkeypatch.setenv("ENTITLE_LATEST_DATE", "someday")
    with pytest.raises(ValueError, match="ENTITLE_LATEST_DATE must be a date written YYYY-MM-DD"):
        Settings.from_env()
