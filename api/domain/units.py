"""Quantities as people read them: activities as a count, minutes as hours and minutes."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["format_quantity"]


def format_quantity(value: int, ledger_unit: str, number: Callable[[int], str] = str) -> str:
    """Minutes as '12 h 30 min'; activities as a count ('1 activity', '3 activities'). `number` writes the
    counts (e.g. with a locale's grouping)."""
    if ledger_unit != "minutes":
        return f"{number(value)} {'activity' if abs(value) == 1 else 'activities'}"
    sign = "-" if value < 0 else ""
    hours, minutes = divmod(abs(value), 60)
    if hours and minutes:
        return f"{sign}{number(hours)} h {minutes} min"
    return f"{sign}{number(hours)} h" if hours else f"{sign}{minutes} min"
