"""Forms: parsing what was typed, and placing a service's refusal beside the field it names."""

from __future__ import annotations

import uuid
from datetime import date

from starlette.exceptions import HTTPException

from api.services.errors import DomainError, ValidationFailed

__all__ = ["errors_of", "parse_day", "parse_uuid", "path_id"]


def errors_of(exc: DomainError, fields: dict[str, str], default: str = "form") -> dict[str, str]:
    """{form field: message}: the refusal beside the field it names (`fields` maps the services' field names
    to the form's), every missing one where it names several, else under `default`."""
    named = [str(f) for f in exc.details.get("missing", [])] or [exc.field or ""]
    found = {fields[name]: exc.message for name in named if name in fields}
    return found or {default: exc.message}


def parse_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def path_id(path_params: dict, name: str, what: str) -> uuid.UUID:
    """An id in the URL; a malformed one is a page that does not exist."""
    found = parse_uuid(str(path_params.get(name, "")))
    if found is None:
        raise HTTPException(404, f"no such {what}")
    return found


def parse_day(value: str | None, field: str = "on") -> date | None:
    """A YYYY-MM-DD query or form value; empty: none."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"{value!r} is not a date (YYYY-MM-DD)", field=field) from None
