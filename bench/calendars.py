"""SLA clock benchmark: due instants per second over the shipped calendars, against a naive reference.

    .venv/bin/python bench/calendars.py [--deadlines N] [--sample N] [--seed N]

100,000 random (calendar, start, duration) triples over every calendar of programs/*.toml: starts
anywhere in 2026-2027 (to the second), durations from 1 s to 5 business days (5 x the calendar's open
seconds on a typical weekday). Calendars are compiled before timing. It times `add` (aware datetimes in
and out, as callers use it, and on epoch seconds), then `between` on the same triples, checking it
gives the durations back. A naive reference steps through time a minute at a time, asking
`local_open_spans` of each local day (not the compiled intervals) whether the minute is open; on a
sample of 1,000 minute-aligned starts with whole-minute durations it must give the same due instants.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from api.config import PROJECT_ROOT
from api.domain.calendars import BusinessCalendar, compile_calendar, local_open_spans
from api.programs.loader import read_program_file
from api.programs.schema import Calendar

FIRST = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
LAST = int(datetime(2028, 1, 1, tzinfo=UTC).timestamp())
TYPICAL_WEEK = date(2026, 6, 8)  # a Monday of a week without holidays or holiday periods


def shipped_calendars() -> dict[str, Calendar]:
    found: dict[str, Calendar] = {}
    for path in sorted((PROJECT_ROOT / "programs").glob("*.toml")):
        program = read_program_file(path).program
        for code, spec in program.calendars.items():
            found[f"{program.code}/{code}"] = spec
    return found


def typical_weekday_seconds(spec: Calendar) -> int:
    """Open seconds of an ordinary weekday (the mean over Monday to Friday of a plain week)."""
    days = [TYPICAL_WEEK + timedelta(days=n) for n in range(5)]
    return sum((e - s) * 60 for day in days for s, e in local_open_spans(spec, day)) // 5


def naive_add(spec: Calendar, zone: ZoneInfo, start: int, duration: int, spans_of: dict[date, list]) -> int:
    """Minute by minute: a minute is open when its local time of day lies in an open span of its local
    date. `start` is minute-aligned and `duration` whole minutes."""
    t, left = start, duration
    while left > 0:
        local = datetime.fromtimestamp(t, zone)
        day = local.date()
        spans = spans_of.get(day)
        if spans is None:
            spans = spans_of[day] = local_open_spans(spec, day)
        minute = local.hour * 60 + local.minute
        if any(s <= minute < e for s, e in spans):
            left -= 60
        t += 60
    return t


def main(count: int, sample: int, seed: int) -> None:
    rng = random.Random(seed)
    specs = shipped_calendars()
    names = list(specs)
    compiled: dict[str, BusinessCalendar] = {name: compile_calendar(spec) for name, spec in specs.items()}
    reach = {name: 5 * typical_weekday_seconds(spec) for name, spec in specs.items()}
    # Compile every year the deadlines can reach before timing (a query over 2025-2031 touches each).
    for cal in compiled.values():
        cal.between_seconds(FIRST - 366 * 86400, LAST + 4 * 366 * 86400)

    print(f"{len(names)} shipped calendars (typical weekday, open hours):")
    for name in names:
        print(f"  {name:42} {reach[name] / 5 / 3600:5.1f} h")

    jobs = []
    for _ in range(count):
        name = rng.choice(names)
        jobs.append((compiled[name], rng.randrange(FIRST, LAST), rng.randint(1, max(1, reach[name]))))
    aware = [(cal, datetime.fromtimestamp(start, UTC), duration) for cal, start, duration in jobs]

    began = time.perf_counter()
    dues = [cal.add(start, duration) for cal, start, duration in aware]
    add_seconds = time.perf_counter() - began

    began = time.perf_counter()
    due_epochs = [cal.add_seconds(start, duration) for cal, start, duration in jobs]
    add_epoch_seconds = time.perf_counter() - began

    triples = [(cal, start, due) for (cal, start, _), due in zip(aware, dues, strict=True)]
    began = time.perf_counter()
    spent = [cal.between(start, due) for cal, start, due in triples]
    between_seconds = time.perf_counter() - began
    assert spent == [duration for _, _, duration in jobs], "between(start, add(start, d)) != d"
    assert [int(d.timestamp()) for d in dues] == due_epochs

    # The naive reference on a sample: minute-aligned starts, whole-minute durations.
    checks = []
    for _ in range(sample):
        name = rng.choice(names)
        minutes = max(1, reach[name] // 60)
        checks.append((name, rng.randrange(FIRST // 60, LAST // 60) * 60, rng.randint(1, minutes) * 60))
    began = time.perf_counter()
    fast = [compiled[name].add_seconds(start, duration) for name, start, duration in checks]
    fast_seconds = time.perf_counter() - began
    spans_of: dict[str, dict[date, list]] = {name: {} for name in names}  # one local day's spans, asked once per day
    began = time.perf_counter()
    slow = [
        naive_add(specs[name], compiled[name].zone, start, duration, spans_of[name]) for name, start, duration in checks
    ]
    naive_seconds = time.perf_counter() - began
    wrong = [(c, f, s) for c, f, s in zip(checks, fast, slow, strict=True) if f != s]
    assert not wrong, f"{len(wrong)} of {sample} differ from the naive reference, e.g. {wrong[:3]}"

    rate = count / add_seconds
    naive_rate = sample / naive_seconds
    print(f"add, aware datetimes:   {count:,} deadlines in {add_seconds:.3f} s = {rate:,.0f}/s")
    print(f"add, epoch seconds:     {count:,} deadlines in {add_epoch_seconds:.3f} s = {count / add_epoch_seconds:,.0f}/s")
    print(f"between, aware:         {count:,} in {between_seconds:.3f} s = {count / between_seconds:,.0f}/s")
    print(
        f"naive minute stepping:  {sample:,} deadlines in {naive_seconds:.2f} s = {naive_rate:,.0f}/s "
        f"(same answers; engine on the same sample {sample / fast_seconds:,.0f}/s)"
    )
    print(f"speed ratio (add vs naive): {rate / naive_rate:,.0f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deadlines", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    main(args.deadlines, args.sample, args.seed)
