"""On-call readiness (seed 004, Premium): which add-on of a plan it is, and which of its windows a day
falls in; pure, no I/O."""

from __future__ import annotations

from datetime import date

from api.programs.schema import AddOn, Plan

__all__ = ["ON_CALL_UNIT", "WEEKENDS", "on_call_add_ons", "window_for"]

# An add-on priced per whole consultant-day is on-call readiness, whatever a program calls it.
ON_CALL_UNIT = "consultant-day"
# The window that covers Saturdays and Sundays only; any other window (evenings) covers every day.
WEEKENDS = "weekends"


def on_call_add_ons(plan: Plan) -> dict[str, AddOn]:
    """The plan's on-call add-ons by code, in the program file's order."""
    return {code: add_on for code, add_on in plan.add_ons.items() if add_on.unit == ON_CALL_UNIT}


def window_for(add_on: AddOn, day: date, given: str | None) -> str | None:
    """The window a reservation for `day` is in: the one given, which must be one of the add-on's and fit
    the day; else weekends on a Saturday or Sunday where offered, else the first other window offered.
    None when the add-on names no windows. Raises ValueError with the reason."""
    windows = add_on.windows
    weekend = day.weekday() >= 5
    if given is not None:
        if given not in windows:
            raise ValueError(
                f"{add_on.name} is offered for {', '.join(windows) or 'no particular window'}, not {given!r}"
            )
        if given == WEEKENDS and not weekend:
            raise ValueError(f"{day} is a {day:%A}: the {WEEKENDS} window covers Saturdays and Sundays")
        return given
    if not windows:
        return None
    if weekend and WEEKENDS in windows:
        return WEEKENDS
    others = [w for w in windows if w != WEEKENDS]
    if not others:
        raise ValueError(f"{day} is a {day:%A}: {add_on.name} is offered at weekends only")
    return others[0]
