"""Reading program files: TOML in, a validated Program out, or every problem named by file and key."""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from api.domain.calendars import compile_calendar
from api.domain.catalog import CatalogError, plan_catalog
from api.domain.inputs import InputRefused, Limits, check_document, check_text, check_toml_nesting
from api.programs.schema import Program

__all__ = ["ProgramFileError", "ProgramIssue", "ParsedProgram", "parse_program", "read_program_file"]


@dataclass(frozen=True)
class ProgramIssue:
    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key or '(top level)'}: {self.reason}"


class ProgramFileError(Exception):
    """A program file was refused as a whole; `issues` names each problem."""

    def __init__(self, issues: list[ProgramIssue]):
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


@dataclass(frozen=True)
class ParsedProgram:
    program: Program
    source: str
    sha256: str
    file: str


def read_program_file(path: str | Path, *, limits: Limits | None = None) -> ParsedProgram:
    path = Path(path)
    limits = limits or Limits()
    try:
        if path.stat().st_size > 4 * limits.program_size:  # UTF-8 takes at most 4 bytes a character
            raise ProgramFileError([ProgramIssue(str(path), "", f"has more than {limits.program_size} characters")])
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProgramFileError([ProgramIssue(str(path), "", f"cannot be read: {exc}")]) from exc
    return parse_program(text, file=str(path), limits=limits)


def parse_program(text: str, *, file: str = "<program>", limits: Limits | None = None) -> ParsedProgram:
    """Parse and validate a program file. Its size, characters and nesting are checked before the TOML
    parser sees it (`api.domain.inputs`), and its numbers and strings after."""
    limits = limits or Limits()
    try:
        check_text(text, "source", limits)
        check_toml_nesting(text, limits.program_depth)
    except InputRefused as refused:
        raise ProgramFileError([ProgramIssue(file, "", refused.message.removeprefix("source "))]) from None
    try:
        raw = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ProgramFileError([ProgramIssue(file, "", f"is not valid TOML: {exc}")]) from exc
    except (ValueError, RecursionError) as exc:  # e.g. an integer of thousands of digits
        raise ProgramFileError([ProgramIssue(file, "", f"cannot be read: {str(exc)[:200]}")]) from None

    issues = [ProgramIssue(file, key, reason) for key, reason in check_document(raw, limits)]
    if issues:
        raise ProgramFileError(issues[:20])
    raw = _resolve_extends(raw, file, issues)
    if issues:
        raise ProgramFileError(issues)
    try:
        program = Program.model_validate(raw)
    except ValidationError as exc:
        raise ProgramFileError([_issue_from_pydantic(file, error) for error in exc.errors()]) from exc
    issues.extend(ProgramIssue(file, key, reason) for key, reason in _cross_references(program))
    if issues:
        raise ProgramFileError(issues)
    return ParsedProgram(program, text, hashlib.sha256(text.encode()).hexdigest(), file)


def _issue_from_pydantic(file: str, error: Any) -> ProgramIssue:
    key = ".".join(str(part) for part in error["loc"] if not str(part).startswith(("function-", "literal[")))
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "is not a known key here"
    elif error["type"] == "missing":
        message = "is required"
    return ProgramIssue(file, key, message.removeprefix("Value error, "))


def _resolve_extends(raw: dict[str, Any], file: str, issues: list[ProgramIssue]) -> dict[str, Any]:
    """A plan may say `extends = "other"`: it starts from the other plan and overrides what it sets."""
    plans = raw.get("plans")
    if not isinstance(plans, dict):
        return raw
    resolved: dict[str, dict[str, Any]] = {}

    def resolve(code: str, chain: tuple[str, ...]) -> dict[str, Any] | None:
        if code in resolved:
            return resolved[code]
        plan = plans[code]
        if not isinstance(plan, dict):
            return None
        parent = plan.get("extends")
        if parent is None:
            resolved[code] = plan
            return plan
        if parent not in plans:
            issues.append(ProgramIssue(file, f"plans.{code}.extends", f"no plan {parent!r} in this program"))
            return None
        if parent in chain:
            cycle = " -> ".join((*chain, parent))
            issues.append(ProgramIssue(file, f"plans.{code}.extends", f"plans extend each other in a cycle: {cycle}"))
            return None
        base = resolve(parent, (*chain, parent))
        if base is None:
            return None
        merged = _deep_merge(base, plan)
        merged["extends"] = parent
        resolved[code] = merged
        return merged

    out = {}
    for code in plans:
        plan = resolve(code, (code,))
        out[code] = plan if plan is not None else plans[code]
    return {**raw, "plans": out}


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _duplicates(items: Iterable[Any]) -> list[str]:
    seen: set[str] = set()
    dupes = []
    for item in items:
        if item.code in seen:
            dupes.append(item.code)
        seen.add(item.code)
    return dupes


def _cross_references(program: Program) -> Iterable[tuple[str, str]]:
    calendars = program.calendars
    for code, spec in calendars.items():
        # Two years from 2026 hold every window rule at least once: a calendar closed in both never opens.
        compiled = compile_calendar(spec)
        if compiled.between(datetime(2026, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC)) == 0:
            yield f"calendars.{code}", "the calendar is never open: its closures cover all of its hours"
    for list_name in ("out_of_scope", "out_of_support"):
        for code in _duplicates(getattr(program, list_name)):
            yield list_name, f"item code {code!r} appears twice"
    if program.partners:
        for code in _duplicates(program.partners.out_of_scope):
            yield "partners.out_of_scope", f"item code {code!r} appears twice"
    for code, plan in program.plans.items():
        where = f"plans.{code}"
        if plan.calendar is not None and plan.calendar not in calendars:
            yield f"{where}.calendar", f"no calendar {plan.calendar!r} in this program"
        for sev_code, severity in plan.severities.items():
            for target_name in ("acknowledge", "first_response", "update_interval", "resolution"):
                target = getattr(severity, target_name)
                if target is not None and target.calendar is not None and target.calendar not in calendars:
                    yield (
                        f"{where}.severities.{sev_code}.{target_name}.calendar",
                        f"no calendar {target.calendar!r} in this program",
                    )
        ranks = [s.rank for s in plan.severities.values()]
        if len(ranks) != len(set(ranks)):
            yield f"{where}.severities", "two severities share a rank"
        for type_code, ticket_type in plan.ticket_types.items():
            for sev in ticket_type.severities or ():
                if sev not in plan.severities:
                    yield f"{where}.ticket_types.{type_code}.severities", f"no severity {sev!r} in this plan"
        if plan.deductions is not None:
            bucket = plan.buckets.get(plan.deductions.bucket)
            if bucket is None:
                yield f"{where}.deductions.bucket", f"no bucket {plan.deductions.bucket!r} in this plan"
            elif bucket.unit != "hours":
                yield f"{where}.deductions.bucket", f"bucket {plan.deductions.bucket!r} is not counted in hours"
        if plan.catalog_bucket is not None and plan.catalog_bucket not in plan.buckets:
            yield f"{where}.catalog_bucket", f"no bucket {plan.catalog_bucket!r} in this plan"
        else:
            try:
                plan_catalog(program, plan)
            except CatalogError as exc:
                yield f"{where}.catalog", str(exc)
        for list_name in ("out_of_scope", "out_of_support"):
            for dup in _duplicates(getattr(plan, list_name)):
                yield f"{where}.{list_name}", f"item code {dup!r} appears twice"
