"""Paging shared by every connection: lists page by keyset in the services, cursors are opaque."""

from __future__ import annotations

import strawberry

__all__ = ["PageInfo"]


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None
