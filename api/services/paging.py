"""Keyset paging with opaque cursors: on (instant, id), newest first, or on a unique text key, in order."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import datetime
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, bindparam, tuple_

from api.services.errors import ValidationFailed

__all__ = [
    "MAX_PAGE", "Page", "by_key", "check_first", "cut_page", "decode_key_cursor", "encode_cursor", "encode_key_cursor",
    "newest_first", "older_than",
]

MAX_PAGE = 200


def check_first(first: int) -> None:
    if not 1 <= first <= MAX_PAGE:
        raise ValidationFailed(f"first must be between 1 and {MAX_PAGE}", field="first")


def encode_cursor(at: datetime, ident: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{ident}".encode()).decode()


def older_than(at_column: Any, id_column: Any, cursor: str) -> ColumnElement[bool]:
    """Rows after `cursor` in newest-first order."""
    try:
        at, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        instant, row_id = datetime.fromisoformat(at), uuid.UUID(ident)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed(f"cursor {cursor!r} is not one this API gave out", field="after") from None
    # A row comparison, not `at < x OR (at = x AND id < y)`: PostgreSQL starts an index scan on (at, id) at a
    # row value, while the OR form made it read every newer row first (0.1 ms against 690 ms, 20 pages deep
    # into a million tickets). SQLite compares row values too.
    bound = tuple_(bindparam(None, instant, type_=at_column.type), bindparam(None, row_id, type_=id_column.type))
    return tuple_(at_column, id_column) < bound


def newest_first(query: Select[Any], at_column: Any, id_column: Any, *, first: int, after: str | None) -> Select[Any]:
    """`query` newest first on (instant, id), from after the cursor, with one row more than the page so
    the caller can tell whether another page follows (`cut_page`)."""
    check_first(first)
    query = query.order_by(at_column.desc(), id_column.desc()).limit(first + 1)
    return query if after is None else query.where(older_than(at_column, id_column, after))


def encode_key_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(f"k|{key}".encode()).decode()


def decode_key_cursor(cursor: str) -> str:
    try:
        tag, key = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
    except (ValueError, UnicodeDecodeError):
        tag, key = "", ""
    if tag != "k":
        raise ValidationFailed(f"cursor {cursor!r} is not one this API gave out", field="after")
    return key


def by_key(query: Select[Any], key_column: Any, *, first: int, after: str | None) -> Select[Any]:
    """`query` in the order of a unique text key, from after the cursor, with one row more than the page."""
    check_first(first)
    query = query.order_by(key_column).limit(first + 1)
    return query if after is None else query.where(key_column > decode_key_cursor(after))


Row = TypeVar("Row")


@dataclass(frozen=True)
class Page(Generic[Row]):
    """One page of a keyset-paged list: its rows, whether another page follows, and the cursor to ask for it."""

    items: list[Row]
    has_next_page: bool
    end_cursor: str | None


def cut_page(rows: list[Row], first: int, cursor: Callable[[Row], str]) -> tuple[list[Row], bool, str | None]:
    """The page, whether another follows, and the cursor of its last row."""
    page = rows[:first]
    return page, len(rows) > first, cursor(page[-1]) if page else None
