"""Input rules in one place: which characters text may hold, how long each field may be, how large a number
may be written, which dates are sane, and how deeply a program file may nest. Pure: each rule returns the
value it accepts or raises InputRefused naming the field in the API's names; the service layer
(`api.services.inputs`) turns that into a ValidationFailed before anything is written."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "DECIMAL_MAX_DIGITS",
    "DECIMAL_MAX_LENGTH",
    "DECIMAL_MAX_MAGNITUDE",
    "FIELDS",
    "InputRefused",
    "Limits",
    "TextRule",
    "check_day",
    "check_decimal",
    "check_document",
    "check_instant",
    "check_items",
    "check_term",
    "check_text",
    "check_toml_nesting",
    "refused_character",
]

# A number is at most this many characters as written, at most this many significant digits, and lies
# within 10^-DECIMAL_MAX_MAGNITUDE .. 10^DECIMAL_MAX_MAGNITUDE: far beyond any quantity, fee, rate or share
# this service counts, and small enough that no arithmetic on it takes noticeable time or memory.
DECIMAL_MAX_LENGTH = 64
DECIMAL_MAX_DIGITS = 50
DECIMAL_MAX_MAGNITUDE = 40
# Whole numbers in a program file (minutes, counts, ranks) stay below this.
_PROGRAM_MAX_INT = 10**15


class InputRefused(ValueError):
    """An input breaks a rule; `field` names it in the API's names."""

    def __init__(self, message: str, *, field: str):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Limits:
    """The configurable limits (api.config.Settings): free-text lengths, the sane range of dates, the
    longest contract term, and how large and deeply nested a program file may be."""

    note: int = 2_000  # reasons and notes
    text: int = 20_000  # descriptions, comments, steps followed, expected results
    earliest: date = date(2000, 1, 1)
    latest: date = date(2100, 12, 31)
    term_years: int = 10
    program_depth: int = 20
    program_size: int = 1_000_000


@dataclass(frozen=True)
class TextRule:
    """How long a field may be (characters, or the name of a configurable limit of `Limits`), whether it
    spans lines (keeps line breaks and tabs), and whether invisible and direction-changing characters are
    refused too (names, subjects, codes, references, keys: what people identify things by)."""

    limit: int | str
    multiline: bool = False
    strict: bool = False

    def maximum(self, limits: Limits) -> int:
        return self.limit if isinstance(self.limit, int) else int(getattr(limits, self.limit))


_NAME = TextRule(200, strict=True)
_CODE = TextRule(64, strict=True)
_KEY = TextRule(200, strict=True)
_NOTE = TextRule("note", multiline=True)
_TEXT = TextRule("text", multiline=True)

# Every text field the API takes, by its name in the API, with its rule. E-mail addresses (254 characters,
# one line, strict) are checked by `api.services.errors.check_email`, contract references by their pattern.
FIELDS: dict[str, TextRule] = {
    # names, subjects and labels: one line, what people tell things apart by
    "name": _NAME,
    "subject": TextRule(300, strict=True),
    "affectedAccount": _NAME,
    "password": TextRule(1_000),
    "fileName": TextRule(500, strict=True),
    # codes, references and keys
    "code": _CODE,
    "programCode": _CODE,
    "planCode": _CODE,
    "calendar": _CODE,
    "bucket": _CODE,
    "activity": _CODE,
    "catalog": _CODE,
    "customAllowances": _CODE,
    "ticketType": _CODE,
    "severity": _CODE,
    "scopeItem": _CODE,
    "window": _CODE,
    "addOn": _CODE,
    "to": _CODE,
    "status": _CODE,
    "kind": _CODE,
    "action": _CODE,
    "month": TextRule(16, strict=True),
    "idempotencyKey": _KEY,
    "filedBy": _KEY,
    "text": TextRule(300, strict=True),  # a search
    "search": TextRule(300, strict=True),
    "reference": TextRule(64, strict=True),  # a contract reference, or the start of one
    # free text
    "reason": _NOTE,
    "note": _NOTE,
    "description": _TEXT,
    "body": _TEXT,
    "stepsFollowed": _TEXT,
    "expectedResult": _TEXT,
    "source": TextRule("program_size", multiline=True),
}

# Never in any text: control characters (C0, DEL, C1) and lone surrogates, which no encoding can store
# (PostgreSQL refuses NUL outright). Multi-line text keeps tab, line feed and carriage return.
_CONTROLS = "\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029"
_MULTILINE_CONTROLS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff"
# Also refused where people identify things: bidi embeddings, overrides and isolates (U+202A-202E,
# U+2066-2069), which make text display in another order than it is stored, and zero-width characters
# (U+200B-200D, U+2060, U+FEFF), which make two different names look the same.
_INVISIBLE = "\u202a-\u202e\u2066-\u2069\u200b-\u200d\u2060\ufeff"

_REFUSED = {
    (False, False): re.compile(f"[{_CONTROLS}]"),
    (False, True): re.compile(f"[{_CONTROLS}{_INVISIBLE}]"),
    (True, False): re.compile(f"[{_MULTILINE_CONTROLS}]"),
    (True, True): re.compile(f"[{_MULTILINE_CONTROLS}{_INVISIBLE}]"),
}


def refused_character(value: str, *, multiline: bool = False, strict: bool = False) -> tuple[int, str] | None:
    """The position and the first character `value` may not hold under the rule, or None."""
    found = _REFUSED[(multiline, strict)].search(value)
    return None if found is None else (found.start(), found.group())


def _describe(char: str) -> str:
    names = {
        "\x00": "NUL", "\t": "a tab", "\n": "a line break", "\r": "a carriage return", "\u2028": "a line separator",
        "\u2029": "a paragraph separator", "\ufeff": "a zero-width no-break space", "\u200b": "a zero-width space",
        "\u200c": "a zero-width non-joiner", "\u200d": "a zero-width joiner", "\u2060": "a word joiner",
    }
    code = f"U+{ord(char):04X}"
    if char in names:
        return f"{names[char]} ({code})"
    if "\u202a" <= char <= "\u202e" or "\u2066" <= char <= "\u2069":
        return f"a bidirectional formatting character ({code})"
    if "\ud800" <= char <= "\udfff":
        return f"a lone surrogate ({code})"
    return f"a control character ({code})"


def check_text(value: object, field: str, limits: Limits, *, rule: TextRule | None = None) -> str:
    """`value` if it is text of at most the field's length holding only characters the field allows. The
    length is checked first, so an overlong text is refused without being read."""
    rule = rule or FIELDS[field]
    if not isinstance(value, str):
        raise InputRefused(f"{field} must be text", field=field)
    maximum = rule.maximum(limits)
    if len(value) > maximum:
        raise InputRefused(f"{field} must be at most {maximum} characters", field=field)
    refused = refused_character(value, multiline=rule.multiline, strict=rule.strict)
    if refused is not None:
        position, char = refused
        raise InputRefused(
            f"{field} may not contain {_describe(char)}; found at character {position + 1}", field=field
        )
    return value


def check_items(values: Iterable[Any], field: str, maximum: int) -> list[Any]:
    """A list of at most `maximum` items (counted without reading past the limit)."""
    items: list[Any] = []
    for item in values:
        if len(items) == maximum:
            raise InputRefused(f"{field} lists at most {maximum:,} items", field=field)
        items.append(item)
    return items


def check_decimal(value: object, field: str, *, label: str | None = None) -> Decimal:
    """A finite number, bounded in length, digits and magnitude before any arithmetic is done with it:
    "1e1000000" is refused here rather than expanded into a million digits. `label` names it in messages
    (by default the field)."""
    label = label or field
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise InputRefused(f"{label} must be a number", field=field)
    if isinstance(value, str):
        if len(value) > DECIMAL_MAX_LENGTH:
            raise InputRefused(f"{label} must be a number of at most {DECIMAL_MAX_LENGTH} characters", field=field)
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise InputRefused(f"{label} {value.strip()!r} is not a number", field=field) from None
    elif isinstance(value, int):
        if value.bit_length() > 4 * DECIMAL_MAX_MAGNITUDE:
            raise InputRefused(f"{label} is too large", field=field)
        value = Decimal(value)
    if not value.is_finite():
        raise InputRefused(f"{label} {value} is not a number", field=field)
    digits, exponent = value.as_tuple()[1:]
    assert isinstance(exponent, int)  # finite
    if not any(digits):
        return Decimal(0).copy_sign(value) if exponent > 0 else value  # 0E+1000000 is plain zero
    if value.adjusted() >= DECIMAL_MAX_MAGNITUDE:
        raise InputRefused(f"{label} {value} is too large", field=field)
    if exponent < -DECIMAL_MAX_MAGNITUDE or len(digits) > DECIMAL_MAX_DIGITS:
        raise InputRefused(
            f"{label} {value} has too many digits: at most {DECIMAL_MAX_DIGITS}, and at most "
            f"{DECIMAL_MAX_MAGNITUDE} decimals",
            field=field,
        )
    return value


def _range(limits: Limits) -> str:
    return f"from {limits.earliest.isoformat()} to {limits.latest.isoformat()}"


def check_day(value: object, field: str, limits: Limits) -> date:
    """A calendar day within the sane range (by default 2000-01-01 to 2100-12-31)."""
    if isinstance(value, datetime) or not isinstance(value, date):
        raise InputRefused(f"{field} must be a date", field=field)
    if not limits.earliest <= value <= limits.latest:
        raise InputRefused(f"{field} must be a date {_range(limits)}, not {value.isoformat()}", field=field)
    return value


def check_instant(value: object, field: str, limits: Limits) -> datetime:
    """An instant whose day, as written, lies within the sane range: checked before any conversion, so a
    time zone offset cannot carry it past the year 1 or 9999."""
    if not isinstance(value, datetime):
        raise InputRefused(f"{field} must be a date and time", field=field)
    if not limits.earliest <= value.date() <= limits.latest:
        raise InputRefused(f"{field} must be a time {_range(limits)}, not {value.isoformat()}", field=field)
    return value


def check_term(effective_date: object, end_date: object, limits: Limits) -> tuple[date, date]:
    """A contract term: both days in the sane range, the end not before the start, and at most
    `limits.term_years` years long."""
    start = check_day(effective_date, "effectiveDate", limits)
    end = check_day(end_date, "endDate", limits)
    if end < start:
        raise InputRefused(f"end date {end} is before the effective date {start}", field="endDate")
    years = limits.term_years
    # The last day a term of `years` years may run to: the day before the same date `years` years on.
    try:
        limit = start.replace(year=start.year + years)
    except ValueError:  # 29 February into a year without one
        limit = date(start.year + years, 3, 1)
    if end >= limit:
        raise InputRefused(
            f"a contract term is at most {years} years: from {start} it ends by "
            f"{date.fromordinal(limit.toordinal() - 1)}, not {end}",
            field="endDate",
        )
    return start, end


# ---- program files -----------------------------------------------------------------------------------


def check_toml_nesting(text: str, limit: int) -> None:
    """Refuse TOML text that nests tables, dotted keys, arrays or inline tables more than `limit` levels,
    found in one pass that skips strings and comments, before any parser sees it: the standard library's
    parser recurses once per level of arrays and inline tables, and long dotted keys cost it quadratic
    time. The refusal names the line (field `source`)."""
    i, n = 0, len(text)
    stack: list[tuple[str, int]] = []  # open arrays and inline tables: (bracket, depth of what they hold)
    table_depth = 0  # levels of the current [table] or [[array of tables]]
    expect_key = True  # at the start of a top-level line, or after '{' or ',' in an inline table
    key_dots = 0
    level = 0  # depth of the value being read

    def refuse(depth: int, at: int) -> InputRefused:
        line = text.count("\n", 0, at) + 1
        return InputRefused(
            f"the program file nests {depth} levels deep on line {line}; at most {limit}", field="source"
        )

    while i < n:
        char = text[i]
        if char == "\n":
            if not stack:
                expect_key, key_dots = True, 0
            i += 1
        elif char == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif char in "\"'":
            i = _string_end(text, i)
        elif expect_key and not stack and char == "[":
            end = i + 1
            depth = 1
            if end < n and text[end] == "[":
                depth, end = 2, end + 1
            while end < n and text[end] not in "]\n":
                if text[end] in "\"'":
                    end = _string_end(text, end)
                    continue
                depth += text[end] == "."
                end += 1
            if depth > limit:
                raise refuse(depth, i)
            table_depth = depth
            i = end
        elif expect_key:
            if char == ".":
                key_dots += 1
                if (stack[-1][1] if stack else table_depth) + key_dots + 1 > limit:
                    raise refuse((stack[-1][1] if stack else table_depth) + key_dots + 1, i)
            elif char == "=":
                level = (stack[-1][1] if stack else table_depth) + key_dots + 1
                if level > limit:
                    raise refuse(level, i)
                expect_key, key_dots = False, 0
            elif char == "}" and stack and stack[-1][0] == "{":  # an empty inline table
                stack.pop()
                expect_key = False
            i += 1
        else:
            if char in "[{":
                level += 1
                if level > limit:
                    raise refuse(level, i)
                stack.append((char, level))
                if char == "{":
                    expect_key, key_dots = True, 0
            elif char in "]}":
                if stack:
                    stack.pop()
                if stack:
                    level = stack[-1][1]
            elif char == "," and stack:
                if stack[-1][0] == "{":
                    expect_key, key_dots = True, 0
                else:
                    level = stack[-1][1]
            i += 1


def _string_end(text: str, start: int) -> int:
    """The index just past the TOML string opening at `start` (basic or literal, one or three quotes); the
    end of the text if it never closes (the parser then says what is wrong)."""
    quote = text[start]
    delimiter = quote * 3 if text.startswith(quote * 3, start) else quote
    i, n = start + len(delimiter), len(text)
    while i < n:
        char = text[i]
        if char == "\\" and quote == '"':
            i += 2
            continue
        if char == "\n" and len(delimiter) == 1:
            return i  # a one-line string never spans lines
        if text.startswith(delimiter, i):
            i += len(delimiter)
            while len(delimiter) == 3 and i < n and text[i] == quote:
                i += 1  # up to two quotes may end a multi-line string's content
            return i
        i += 1
    return n


def check_document(document: Any, limits: Limits) -> Iterator[tuple[str, str]]:
    """Every problem (key, reason) of a parsed program file that its schema does not look at: nesting past
    the limit, numbers too large to compute with, and characters no text may hold (in keys and names,
    neither invisible nor direction-changing ones). Walks the document without recursing."""
    pending: list[tuple[Any, tuple[str, ...]]] = [(document, ())]
    while pending:
        value, path = pending.pop()
        where = ".".join(path)
        if len(path) > limits.program_depth:
            yield where, f"nests {len(path)} levels deep; at most {limits.program_depth}"
            continue
        if isinstance(value, dict):
            for key, item in value.items():
                refused = refused_character(str(key), strict=True)
                if refused is not None:
                    yield ".".join((*path, "?")), f"a key may not contain {_describe(refused[1])}"
                    continue
                pending.append((item, (*path, str(key))))
        elif isinstance(value, list):
            pending.extend((item, (*path, str(index))) for index, item in enumerate(value))
        elif isinstance(value, str):
            strict = bool(path) and path[-1] in ("name", "provider", "code")
            refused = refused_character(value, multiline=not strict, strict=strict)
            if refused is not None:
                yield where, f"may not contain {_describe(refused[1])}"
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if abs(value) >= _PROGRAM_MAX_INT:
                yield where, f"must be below {_PROGRAM_MAX_INT:,}"
        elif isinstance(value, Decimal):
            try:
                check_decimal(value, where or "value")
            except InputRefused as exc:
                yield where, exc.message.removeprefix(f"{where} ").removeprefix("value ")
