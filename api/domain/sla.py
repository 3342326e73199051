"""SLA clocks of a ticket: which response targets are met, breached, at risk or paused, and when each falls due.

Pure functions over a ticket's event history and its program: no I/O, no database, no wall clock (the
caller passes `now`). Open time is measured with the program's compiled support calendars
(`BusinessCalendar.between` / `.add`, exact to the second), never by stepping through time.

How the clocks are computed
---------------------------
* Events are sorted by `at` (stable; a "created" event goes first among events of the same instant) and
  those after `now` are ignored. The first event must be "created", with a plan and a severity.
* The plan and severity in force are those of the latest "created" / "plan_changed" / "severity_changed"
  event; every clock is then computed from the whole history with that severity's targets and calendars,
  so a change of severity or plan re-times the ticket from its creation and keeps the pauses taken.
  A "plan_changed" event may also carry a severity (needed when the new plan names its severities
  differently); a "severity_changed" event reads only `severity`, a "plan_changed" only `plan` (and
  `severity` if given).
* The ticket counts time ("runs") except while it waits on the customer ("waiting_on_customer" up to
  the next "resumed"), and while it is resolved or closed (up to a "reopened"). "resolved" and "closed"
  also end a wait on the customer.
* acknowledge: met by the first non-automatic "acknowledged" or non-automatic "responded". An automatic
  acknowledgement (an auto-reply) does not count, like every automatic message.
  first_response: met by the first non-automatic "responded".
  resolution: met while the ticket is resolved or closed, at the instant it became so; "reopened"
  un-meets it and the clock goes on with the open time already counted (the time spent resolved is
  not counted).
  An acknowledge / first-response clock still unmet when the ticket is resolved or closed stops there
  (paused) until a reopening.
* update_interval: see `sla_clocks`.
* A clock is met in time when met_at <= due_at, breached when met later or, unmet, when now > due_at.
  Instants are compared, so a reply on Saturday to a target that fell due at Friday's close is late
  even though no open time passed in between.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise

from api.domain.calendars import BusinessCalendar, compile_calendar
from api.programs.schema import Program, Severity, Target

__all__ = [
    "EVENT_KINDS",
    "TARGET_NAMES",
    "TargetClock",
    "TicketEvent",
    "sla_clocks",
]

EVENT_KINDS = (
    "created",
    "acknowledged",
    "responded",
    "updated",
    "waiting_on_customer",
    "resumed",
    "resolved",
    "reopened",
    "closed",
    "severity_changed",
    "plan_changed",
)
TARGET_NAMES = ("acknowledge", "first_response", "update_interval", "resolution")

Segment = tuple[datetime, datetime]  # [start, end) in UTC


@dataclass(frozen=True)
class TicketEvent:
    """One thing that happened to a ticket."""

    at: datetime  # aware
    kind: str  # one of EVENT_KINDS
    severity: str | None = None  # for "created" and "severity_changed" (and optionally "plan_changed")
    plan: str | None = None  # for "created" and "plan_changed": a plan code within the program
    automatic: bool = False  # automatic messages never count as an acknowledgement, response or update
    next_update_at: datetime | None = None  # a staff update may state when the next one comes


@dataclass(frozen=True)
class TargetClock:
    """The state, at `now`, of one SLA target of a ticket.

    `paused` means the clock is not counting now although it is not met: the ticket waits on the
    customer, or (acknowledge / first response / update interval) it is resolved or closed. While
    paused and not yet breached, `due_at` is None and `remaining_seconds` is frozen. A breached clock
    keeps the instant it fell due in `due_at`. `missed_updates` is only used by update_interval.
    """

    target: str  # "acknowledge" | "first_response" | "update_interval" | "resolution"
    calendar: str | None
    target_seconds: int | None  # None: as time permits
    as_time_permits: bool
    best_effort: bool
    started_at: datetime
    due_at: datetime | None  # None while paused, or when as time permits
    met_at: datetime | None
    breached: bool
    paused: bool
    elapsed_seconds: int  # open time counted so far (to met_at, or to now)
    remaining_seconds: int | None  # open time left now (0 when breached or met); None as time permits
    at_risk: bool  # not met, not breached, elapsed >= share x target
    missed_updates: int = 0  # update_interval: earlier intervals whose update came late


# ---- input checking and the ticket's timeline ------------------------------------------------------------


def _utc(instant: datetime, what: str) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what} must be a time-zone aware datetime, got {instant!r}")
    return instant.astimezone(UTC)


def _prepare(events: Sequence[TicketEvent], now: datetime) -> list[TicketEvent]:
    for event in events:
        if event.kind not in EVENT_KINDS:
            raise ValueError(f"unknown ticket event kind {event.kind!r} (expected one of {', '.join(EVENT_KINDS)})")
        _utc(event.at, f"the 'at' of a {event.kind!r} event")
        if event.next_update_at is not None:
            _utc(event.next_update_at, f"the 'next_update_at' of a {event.kind!r} event")
    ordered = sorted(events, key=lambda e: (_utc(e.at, "at"), e.kind != "created"))
    kept = [e for e in ordered if _utc(e.at, "at") <= now]
    if not kept:
        raise ValueError("the ticket has no event at or before now: its history must start with 'created'")
    first = kept[0]
    if first.kind != "created":
        raise ValueError(f"a ticket's first event must be 'created', not {first.kind!r} at {first.at.isoformat()}")
    if first.severity is None or first.plan is None:
        raise ValueError("the 'created' event must give both the plan and the severity")
    if any(e.kind == "created" for e in kept[1:]):
        raise ValueError("a ticket can be created only once: there is more than one 'created' event")
    return kept


def _terms(events: list[TicketEvent], program: Program) -> tuple[str, str, Severity]:
    """The plan and severity in force after the last change, checked against the program."""
    plan_code = severity_code = ""
    for event in events:
        if event.kind == "created":
            plan_code, severity_code = event.plan or "", event.severity or ""
        elif event.kind == "plan_changed":
            if not event.plan:
                raise ValueError(f"the 'plan_changed' event at {event.at.isoformat()} gives no plan")
            plan_code = event.plan
            severity_code = event.severity or severity_code
        elif event.kind == "severity_changed":
            if not event.severity:
                raise ValueError(f"the 'severity_changed' event at {event.at.isoformat()} gives no severity")
            severity_code = event.severity
        else:
            continue
        if plan_code not in program.plans:
            raise ValueError(
                f"unknown plan {plan_code!r} in program {program.code!r} "
                f"(plans: {', '.join(program.plans) or 'none'})"
            )
    plan = program.plans[plan_code]
    severity = plan.severities.get(severity_code)
    if severity is None:
        raise ValueError(
            f"unknown severity {severity_code!r} for plan {plan_code!r} of program {program.code!r} "
            f"(severities: {', '.join(plan.severities) or 'none'})"
        )
    return plan_code, severity_code, severity


@dataclass(frozen=True)
class _Timeline:
    created: datetime
    now: datetime
    running: list[Segment]  # when the ticket counts time: not waiting, not resolved, not closed
    waiting_now: bool
    resolved_since: datetime | None  # start of the current resolved/closed state
    acknowledged_at: datetime | None
    first_response_at: datetime | None
    updates: list[TicketEvent]  # non-automatic responded/updated while open, from the first response on


def _timeline(events: list[TicketEvent], now: datetime) -> _Timeline:
    created = _utc(events[0].at, "at")
    running: list[Segment] = []
    run_start: datetime | None = created
    waiting = False
    resolved_since: datetime | None = None
    acknowledged_at = first_response_at = None
    updates: list[TicketEvent] = []

    for event in events[1:]:
        at = _utc(event.at, "at")
        kind = event.kind
        human = not event.automatic
        if kind == "acknowledged" and human and acknowledged_at is None:
            acknowledged_at = at
        elif kind == "responded" and human:
            acknowledged_at = acknowledged_at or at
            if first_response_at is None:
                first_response_at = at
        if kind in ("responded", "updated") and human and first_response_at is not None and resolved_since is None:
            updates.append(event)
        elif kind == "waiting_on_customer":
            waiting = True
        elif kind == "resumed":
            waiting = False
        elif kind in ("resolved", "closed"):
            waiting = False
            if resolved_since is None:
                resolved_since = at
        elif kind == "reopened":
            resolved_since = None

        runs = not waiting and resolved_since is None
        if runs and run_start is None:
            run_start = at
        elif not runs and run_start is not None:
            if at > run_start:
                running.append((run_start, at))
            run_start = None
    if run_start is not None and now > run_start:
        running.append((run_start, now))
    return _Timeline(
        created, now, running, waiting, resolved_since, acknowledged_at, first_response_at, updates
    )


def _clip(segments: list[Segment], start: datetime, end: datetime) -> list[Segment]:
    out = []
    for s, e in segments:
        s, e = max(s, start), min(e, end)
        if e > s:
            out.append((s, e))
    return out


# ---- one clock -------------------------------------------------------------------------------------------


def _measure(calendar: BusinessCalendar | None) -> tuple[Callable[[datetime, datetime], int], Callable[[datetime, int], datetime]]:
    """between / add on the target's calendar, or on plain elapsed time for a target without one."""
    if calendar is None:
        return (
            lambda a, b: max(0, int(b.timestamp() // 1) - int(a.timestamp() // 1)),
            lambda a, seconds: datetime.fromtimestamp(int(a.timestamp() // 1) + seconds, UTC),
        )
    return calendar.between, calendar.add


def _clock(
    *,
    name: str,
    target: Target,
    target_seconds: int | None,
    program: Program,
    started_at: datetime,
    segments: list[Segment],  # counted time from started_at, already cut at met_at (or now)
    met_at: datetime | None,
    running_now: bool,
    now: datetime,
    share: Decimal,
    missed_updates: int = 0,
) -> TargetClock:
    calendar = compile_calendar(program.calendars[target.calendar]) if target.calendar else None
    between, add = _measure(calendar)
    elapsed = sum(between(s, e) for s, e in segments)
    paused = met_at is None and not running_now

    due_at: datetime | None = None
    if target_seconds is not None:
        counted = 0
        for s, e in segments:
            length = between(s, e)
            if counted + length >= target_seconds:
                due_at = add(s, target_seconds - counted)
                break
            counted += length
        else:
            if met_at is not None:
                due_at = add(met_at, target_seconds - counted)  # where it was due when it was met
            elif running_now:
                due_at = add(now, target_seconds - counted)

    if target_seconds is None:
        breached, remaining, at_risk = False, None, False
    else:
        if met_at is not None:
            breached = due_at is not None and met_at > due_at
        else:
            breached = due_at is not None and now > due_at
        remaining = 0 if met_at is not None or breached else max(0, target_seconds - elapsed)
        at_risk = met_at is None and not breached and Decimal(elapsed) >= share * target_seconds
    return TargetClock(
        target=name,
        calendar=target.calendar,
        target_seconds=target_seconds,
        as_time_permits=target.as_time_permits,
        best_effort=target.best_effort,
        started_at=started_at,
        due_at=due_at,
        met_at=met_at,
        breached=breached,
        paused=paused,
        elapsed_seconds=elapsed,
        remaining_seconds=remaining,
        at_risk=at_risk,
        missed_updates=missed_updates,
    )


def _seconds(target: Target) -> int | None:
    if target.as_time_permits:
        return None
    minutes = target.duration_minutes
    return None if minutes is None else minutes * 60


def _update_clock(
    target: Target, severity: Severity, program: Program, line: _Timeline, share: Decimal
) -> TargetClock | None:
    if line.first_response_at is None or not line.updates:
        return None
    standard = _seconds(target)
    calendar = compile_calendar(program.calendars[target.calendar]) if target.calendar else None
    between, add = _measure(calendar)

    def interval(update: TicketEvent) -> int | None:
        """Open seconds from this update to the next one owed: the stated time where allowed."""
        start = _utc(update.at, "at")
        if severity.update_may_be_rescheduled and update.next_update_at is not None and standard is not None:
            stated = _utc(update.next_update_at, "next_update_at")
            if stated <= start:
                raise ValueError(
                    f"the update at {start.isoformat()} states its next update at {stated.isoformat()}, "
                    "which is not after it"
                )
            return between(start, stated)
        return standard

    missed = 0
    anchors = line.updates
    for previous, following in pairwise(anchors):
        length = interval(previous)
        if length is None:
            continue
        start, end = _utc(previous.at, "at"), _utc(following.at, "at")
        counted = 0
        for s, e in _clip(line.running, start, end):
            part = between(s, e)
            if counted + part >= length:
                if add(s, length - counted) < end:
                    missed += 1
                break
            counted += part

    current = anchors[-1]
    start = _utc(current.at, "at")
    met_at = line.resolved_since if line.resolved_since is not None and line.resolved_since >= start else None
    segments = _clip(line.running, start, met_at or line.now)
    running_now = line.resolved_since is None and not line.waiting_now
    return _clock(
        name="update_interval",
        target=target,
        target_seconds=interval(current),
        program=program,
        started_at=start,
        segments=segments,
        met_at=met_at,
        running_now=running_now,
        now=line.now,
        share=share,
        missed_updates=missed,
    )


# ---- the public function ---------------------------------------------------------------------------------


def sla_clocks(
    events: Sequence[TicketEvent],
    program: Program,
    now: datetime,
    *,
    at_risk_share: Decimal = Decimal("0.8"),
) -> list[TargetClock]:
    """The clocks of every target the ticket's current severity defines, in the order acknowledge,
    first_response, update_interval, resolution (a target the severity does not define is left out).

    update_interval: it exists once the ticket has had its first (non-automatic) response, and
    describes the CURRENT interval. Every non-automatic "responded"/"updated" while the ticket is open
    starts a new interval; the interval is the severity's update_interval of open time on its calendar,
    or, when the severity has update_may_be_rescheduled, up to the update's `next_update_at` (taken as
    the open time between the update and that instant). It does not count while the ticket waits on
    the customer or is resolved/closed; a resolution ends the current interval (met_at = resolution,
    breached if that came after the due instant), a reopening lets it go on. `breached` says whether
    the current interval is overdue; `missed_updates` counts the earlier intervals whose next update
    came after their due instant.

    Raises ValueError for an unknown event kind, a naive datetime, a history not starting with
    "created" (with plan and severity), a second "created", an unknown plan or severity, a change event
    without its code, a stated next update not after its update, or a share outside (0, 1].
    """
    now = _utc(now, "now")
    if not Decimal(0) < at_risk_share <= Decimal(1):
        raise ValueError(f"at_risk_share must be above 0 and at most 1, not {at_risk_share}")
    kept = _prepare(events, now)
    _, _, severity = _terms(kept, program)
    line = _timeline(kept, now)
    running_now = line.resolved_since is None and not line.waiting_now

    clocks: list[TargetClock] = []
    for name in TARGET_NAMES:
        target: Target | None = getattr(severity, name)
        if target is None:
            continue
        if name == "update_interval":
            clock = _update_clock(target, severity, program, line, at_risk_share)
            if clock is not None:
                clocks.append(clock)
            continue
        if name == "acknowledge":
            met_at = line.acknowledged_at
        elif name == "first_response":
            met_at = line.first_response_at
        else:
            met_at = line.resolved_since
        clocks.append(
            _clock(
                name=name,
                target=target,
                target_seconds=_seconds(target),
                program=program,
                started_at=line.created,
                segments=_clip(line.running, line.created, met_at or now),
                met_at=met_at,
                running_now=running_now,
                now=now,
                share=at_risk_share,
            )
        )
    return clocks

