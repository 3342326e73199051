"""Keyset paging on (instant, id), newest first, with opaque cursors."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_

from api.services.errors import ValidationFailed

__all__ = ["MAX_PAGE", "check_first", "encode_cursor", "older_than"]

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
    return or_(at_column < instant, and_(at_column == instant, id_column < row_id))
