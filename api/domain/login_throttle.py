"""Login throttling arithmetic: which source an attempt counts against, and how long the next one must wait.

Failures are counted per (account, source), per source across accounts and per account across sources, over
a sliding window. Nothing here locks an account: a source that keeps failing waits longer and longer (the
delay doubles with each failure past its allowance, up to a cap), and a source that has not failed for an
account always gets its attempt."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["UNKNOWN_SOURCE", "Failures", "ThrottleRules", "delay_after", "source_key", "wait_before_attempt"]

# Where an attempt comes from when the interface cannot tell (no client address).
UNKNOWN_SOURCE = "unknown"
SOURCE_MAX = 64
# Anyone holding one IPv6 address usually holds its whole /64: counting addresses one by one would give
# such an attacker 2^64 fresh sources.
IPV6_PREFIX = 64


@dataclass(frozen=True)
class ThrottleRules:
    window: timedelta  # failures older than this are forgotten
    attempts: int  # failures one source may make for one account before each further attempt waits
    account_attempts: int  # failures of one account from all sources after which every source gets one free failure
    address_attempts: int  # failures one source may make across all accounts before it waits for any account
    delay: timedelta  # the first wait; it doubles with each further failure
    max_delay: timedelta  # the longest wait


@dataclass(frozen=True)
class Failures:
    """Failures within the window: how many, and the latest."""

    count: int
    last_at: datetime | None = None


def source_key(address: str | None) -> str:
    """What an attempt's client address counts as: the IPv4 address, the IPv6 /64 network (an IPv4-mapped
    IPv6 address as its IPv4 address), or, for anything that is not an IP address, the text itself trimmed."""
    text = (address or "").strip()
    if not text:
        return UNKNOWN_SOURCE
    try:
        parsed = ipaddress.ip_address(text.strip("[]"))
    except ValueError:  # a host name or socket path: kept as text, without control characters
        return "".join(c if c.isprintable() else "?" for c in text.lower()[:SOURCE_MAX])
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, IPV6_PREFIX), strict=False))
    return str(parsed)


def delay_after(failures: int, allowance: int, rules: ThrottleRules) -> timedelta | None:
    """How long after its latest failure a source with `failures` may try again: nothing within its
    allowance, then `delay`, doubling with each further failure, never more than `max_delay`."""
    if failures < allowance:
        return None
    doublings = failures - allowance
    if doublings >= 32:  # far past any sensible cap; avoids building huge numbers
        return rules.max_delay
    return min(rules.max_delay, rules.delay * (2**doublings))


def wait_before_attempt(
    now: datetime, *, pair: Failures, account: Failures, address: Failures, rules: ThrottleRules
) -> int:
    """Whole seconds this source must still wait before it may try this account's password; 0 if it may now.

    `pair` counts this source's failures for this account, `account` the account's failures from every
    source, `address` this source's failures for every account. Once an account is under attack from many
    sources (`account_attempts`), a source waits after its first failure for it instead of after
    `attempts`; a source with no failure for the account is never held back on the account's behalf."""
    pair_allowance = rules.attempts if account.count < rules.account_attempts else 1
    remaining = timedelta(0)
    for failures, allowance in ((pair, pair_allowance), (address, rules.address_attempts)):
        delay = delay_after(failures.count, allowance, rules)
        if delay is not None and failures.last_at is not None:
            remaining = max(remaining, failures.last_at + delay - now)
    return math.ceil(remaining.total_seconds()) if remaining > timedelta(0) else 0
