"""Login throttling arithmetic: sources, growing waits with a cap, and the three ceilings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.domain.login_throttle import Failures, ThrottleRules, delay_after, source_key, wait_before_attempt

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
RULES = ThrottleRules(
    window=timedelta(hours=1), attempts=5, account_attempts=20, address_attempts=100,
    delay=timedelta(seconds=30), max_delay=timedelta(minutes=15),
)


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("[2001:DB8:1:2::9]", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.4", "198.51.100.4"),
        ("testclient", "testclient"),
        ("X" * 100, "x" * 64),
        ("pro\x00xy\n", "pro?xy"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_source_key(address, key):
    assert source_key(address) == key


def test_the_delay_doubles_past_the_allowance_up_to_the_cap():
    assert [delay_after(n, 5, RULES) for n in range(4, 12)] == [
        None, *(timedelta(seconds=s) for s in (30, 60, 120, 240, 480, 900, 900))
    ]
    assert delay_after(10_000, 5, RULES) == timedelta(minutes=15)


def wait(pair=Failures(0), account=Failures(0), address=Failures(0)):  # type: ignore[no-untyped-def]
    return wait_before_attempt(NOW, pair=pair, account=account, address=address, rules=RULES)


def test_the_wait_counts_from_the_latest_failure_and_rounds_up():
    assert wait(pair=Failures(4, NOW)) == 0
    assert wait(pair=Failures(5, NOW)) == 30
    assert wait(pair=Failures(6, NOW - timedelta(seconds=59, milliseconds=500))) == 1
    assert wait(pair=Failures(6, NOW - timedelta(seconds=60))) == 0


def test_an_account_under_attack_allows_one_failure_per_address_and_never_holds_a_fresh_one():
    hot = Failures(20, NOW)
    assert wait(pair=Failures(0), account=hot) == 0
    assert wait(pair=Failures(1, NOW), account=hot) == 30
    assert wait(pair=Failures(3, NOW), account=hot) == 120
    assert wait(pair=Failures(1, NOW), account=Failures(19, NOW)) == 0


def test_an_address_past_its_ceiling_waits_for_every_account():
    assert wait(address=Failures(99, NOW)) == 0
    assert wait(address=Failures(100, NOW)) == 30
    assert wait(address=Failures(101, NOW - timedelta(seconds=10)), pair=Failures(5, NOW - timedelta(seconds=20))) == 50
