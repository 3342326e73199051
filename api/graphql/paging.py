"""Paging shared by every connection: lists page by keyset in the services, cursors are opaque."""

from __future__ import annotations

from typing import Any

import strawberry

__all__ = ["PageInfo"]


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None

    @classmethod
    def of(cls, page: Any) -> PageInfo:
        """Of a page a service returned (anything with `has_next_page` and `end_cursor`)."""
        return cls(has_next_page=page.has_next_page, end_cursor=page.end_cursor)
