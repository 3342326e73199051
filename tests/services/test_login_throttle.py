"""Login throttling at service level: failures count per account and source address; a source that keeps
failing is slowed down with growing waits (whatever the password it then sends), never the account for
everyone: its owner still signs in from another address. One source failing across many accounts is slowed
for all of them. The owner is e-mailed once per window about failed attempts and where they came from. A
success clears its own (account, address) pair; old failures are pruned."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from api.config import Settings
from api.models import AuditEntry, LoginFailure, OutboxMessage, StaffRole, UserKind
from api.services import identity, login_throttle
from api.services.context import AppContext
from api.services.errors import AuthenticationFailed, ErrorCode, TooManyAttempts
from tests.conftest import ADMIN, NOW, unique

PASSWORD = "a long enough password"
TYPED = "Tr0ub4dor&3 guessed"  # what the attacker types: it must never appear in the owner's e-mail
_hosts = itertools.count(1)


def address() -> str:
    """A source address no other test uses (the database is shared by the whole run)."""
    n = next(_hosts)
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


def email() -> str:
    return f"{unique('owner')}@throttle.example"


def with_settings(ctx: AppContext, **changes: object) -> AppContext:
    return AppContext(db=ctx.db, settings=replace(ctx.settings, **changes), clock=ctx.clock)


async def make_user(ctx: AppContext, **fields: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = {
        "email": email(), "name": "Olive Owner", "password": PASSWORD, "kind": UserKind.STAFF,
        "staff_role": StaffRole.SUPPORT_ENGINEER,
    }
    values.update(fields)
    return await identity.create_user(ctx, ADMIN, identity.NewUser(**values))  # type: ignore[arg-type]


@pytest.fixture
async def user(ctx):  # type: ignore[no-untyped-def]
    return await make_user(ctx)


async def fail(ctx: AppContext, account: str, source: str, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(AuthenticationFailed):
            await identity.log_in(ctx, account, TYPED, source_address=source)


async def throttled(ctx: AppContext, account: str, source: str, password: str = TYPED) -> int:
    with pytest.raises(TooManyAttempts) as refused:
        await identity.log_in(ctx, account, password, source_address=source)
    wait = refused.value.retry_after_seconds
    assert refused.value.code == ErrorCode.THROTTLED
    assert refused.value.message == f"too many attempts, try again in {wait} s"
    return wait


async def failures(ctx: AppContext, *where) -> int:  # type: ignore[no-untyped-def]
    async with ctx.db.read() as session:
        return await session.scalar(select(func.count()).select_from(LoginFailure).where(*where))


async def alerts(ctx: AppContext, to: str) -> list[OutboxMessage]:
    async with ctx.db.read() as session:
        return list(await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.kind == login_throttle.ALERT_KIND, OutboxMessage.recipient_email == to)
            .order_by(OutboxMessage.created_at)
        ))


async def test_an_attacker_on_one_address_cannot_stop_the_owner_on_another(ctx, user):
    attacker, owner = address(), address()
    await fail(ctx, user.email, attacker, 5)
    for _ in range(10):  # hammering: refused at once, the right password too, and not counted
        await throttled(ctx, user.email, attacker)
    assert await throttled(ctx, user.email, attacker, PASSWORD) == 30
    assert await failures(ctx, LoginFailure.email == user.email) == 5

    login = await identity.log_in(ctx, user.email.upper(), PASSWORD, source_address=owner)
    assert login.user.id == user.id
    await fail(ctx, user.email, owner)  # the owner's own typo is only a wrong password
    assert (await identity.log_in(ctx, user.email, PASSWORD, source_address=owner)).user.id == user.id
    assert await throttled(ctx, user.email, attacker) == 30  # the owner's success did not free the attacker


async def test_the_attacker_waits_longer_after_each_failure_up_to_the_cap(ctx, clock, user):
    attacker = address()
    await fail(ctx, user.email, attacker, 5)
    for wait in (30, 60, 120, 240, 480, 900, 900):
        assert await throttled(ctx, user.email, attacker) == wait
        clock.instant += timedelta(seconds=wait - 1)
        assert await throttled(ctx, user.email, attacker, PASSWORD) == 1
        clock.instant += timedelta(seconds=1)
        await fail(ctx, user.email, attacker)  # one more guess, and the next wait doubles
    # Twelve failures within the hour; an hour after the last they are all forgotten.
    assert await throttled(ctx, user.email, attacker) == 900
    clock.instant += timedelta(hours=1)
    assert (await identity.log_in(ctx, user.email, PASSWORD, source_address=attacker)).user.id == user.id


async def test_a_success_clears_its_own_pair_only(ctx, user):
    here, there = address(), address()
    await fail(ctx, user.email, here, 4)
    await fail(ctx, user.email, there, 4)
    await identity.log_in(ctx, user.email, PASSWORD, source_address=here)
    assert await failures(ctx, LoginFailure.email == user.email, LoginFailure.source_address == here) == 0
    await fail(ctx, user.email, here, 5)  # five afresh, not nine
    assert await throttled(ctx, user.email, here) == 30
    await fail(ctx, user.email, there)  # the other address's four were kept: this is its fifth
    assert await throttled(ctx, user.email, there) == 30


async def test_unknown_accounts_are_throttled_alike_and_refusals_are_not_recorded(ctx):
    nobody, source = email(), address()
    await fail(ctx, nobody, source, 5)
    for _ in range(5):
        assert await throttled(ctx, nobody, source) == 30
    assert await failures(ctx, LoginFailure.email == nobody) == 5
    assert await alerts(ctx, nobody) == []  # no owner to tell


@pytest.mark.parametrize("typed", ["nul\x00@throttle.example", f"{'a' * 250}@throttle.example", "tab\t@x.example"])
async def test_what_no_account_can_be_is_refused_alike_and_counted(ctx, typed):
    source = address()
    await fail(ctx, typed, source, 5)
    assert await throttled(ctx, typed, source) == 30
    assert await failures(ctx, LoginFailure.source_address == source, LoginFailure.email.like("invalid:%")) == 5


async def test_the_owner_is_emailed_once_per_window_with_the_addresses(ctx, clock, make_customer):
    customer = await make_customer()
    user = await make_user(ctx, kind=UserKind.CUSTOMER, staff_role=None, customer_id=customer.id, name="Carla Customer")
    first, second, third, later = address(), address(), address(), address()
    await fail(ctx, user.email, first, 4)
    assert await alerts(ctx, user.email) == []
    await fail(ctx, user.email, first)  # the fifth failure of the account
    [message] = await alerts(ctx, user.email)
    alerted_at = clock.instant
    assert (message.customer_id, message.recipient_kind, message.recipient_name) == (customer.id, "customer", "Carla Customer")
    assert message.subject == "Failed sign-in attempts on your Entitle account"
    assert f"there were 5 failed attempts to sign in to your Entitle account ({user.email})" in message.body
    assert f"  {first}: 5 attempts, the last at 2026-03-10 12:00 UTC" in message.body
    assert "not locked" in message.body
    assert TYPED not in message.body and PASSWORD not in message.body

    for minutes, source in enumerate((second, third) * 3, start=1):  # more failures within the hour
        clock.instant = alerted_at + timedelta(minutes=minutes * 9)
        await fail(ctx, user.email, source)
    assert len(await alerts(ctx, user.email)) == 1

    clock.instant = alerted_at + timedelta(hours=1)  # a new window: the failures still in it are told
    await fail(ctx, user.email, later)
    _, renewed = await alerts(ctx, user.email)
    assert "there were 7 failed attempts" in renewed.body
    for source, count in ((second, 3), (third, 3), (later, 1)):
        assert f"  {source}: {count} attempt{'s' if count > 1 else ''}, the last at" in renewed.body
    assert first not in renewed.body
    assert renewed.dedupe_key != message.dedupe_key and renewed.message_id != message.message_id

    async with ctx.db.read() as session:
        audited = list(await session.scalars(
            select(AuditEntry)
            .where(AuditEntry.target_id == str(user.id), AuditEntry.action == "user.failed_logins_alert")
            .order_by(AuditEntry.occurred_at)
        ))
    assert [(e.actor_ref, e.on_behalf_of_customer_id, e.detail) for e in audited] == [
        ("system:login-throttling", customer.id, {"failures": 5, "sources": 1}),
        ("system:login-throttling", customer.id, {"failures": 7, "sources": 3}),
    ]


async def test_racing_failures_queue_one_email(ctx, user):
    sources = [address() for _ in range(8)]
    await fail(ctx, user.email, sources[0], 4)

    async def attempt(source: str) -> None:
        with pytest.raises(AuthenticationFailed):
            await identity.log_in(ctx, user.email, TYPED, source_address=source)

    await asyncio.gather(*(attempt(s) for s in sources[1:]))
    assert len(await alerts(ctx, user.email)) == 1


async def test_users_of_no_customer_are_emailed_too(ctx):
    staff = await make_user(ctx, name="Sam Staff")
    await fail(ctx, staff.email, address(), 5)
    [message] = await alerts(ctx, staff.email)
    assert (message.customer_id, message.recipient_kind, message.recipient_name) == (None, "staff", "Sam Staff")


async def test_an_inactive_account_gets_no_email(ctx):
    from sqlalchemy import update

    from api.models import User

    gone = await make_user(ctx)
    async with ctx.db.write() as session:
        await session.execute(update(User).where(User.id == gone.id).values(active=False))
    await fail(ctx, gone.email, address(), 5)
    assert await alerts(ctx, gone.email) == []


async def test_one_address_failing_across_many_accounts_is_slowed_for_all(ctx, clock, user):
    ctx = with_settings(ctx, login_address_attempts=6)
    stuffer, owner = address(), address()
    for _ in range(6):  # credential stuffing: one guess per account
        await fail(ctx, email(), stuffer)
    assert await throttled(ctx, email(), stuffer) == 30
    assert await throttled(ctx, user.email, stuffer, PASSWORD) == 30  # even a right password, from there
    assert (await identity.log_in(ctx, user.email, PASSWORD, source_address=owner)).user.id == user.id
    clock.instant += timedelta(seconds=30)
    await fail(ctx, email(), stuffer)
    assert await throttled(ctx, email(), stuffer) == 60


async def test_an_account_failing_from_many_addresses_still_lets_a_fresh_address_in(ctx, user):
    ctx = with_settings(ctx, login_account_attempts=6)
    for _ in range(6):  # a botnet: one guess from each address
        await fail(ctx, user.email, address())
    typo = address()
    await fail(ctx, user.email, typo)
    assert await throttled(ctx, user.email, typo) == 30  # under attack, an address waits after one failure
    assert (await identity.log_in(ctx, user.email, PASSWORD, source_address=address())).user.id == user.id


async def test_parallel_attempts_from_one_address_get_no_more_than_the_allowance(ctx, user):
    source = address()

    async def attempt() -> type[Exception]:
        try:
            await identity.log_in(ctx, user.email, TYPED, source_address=source)
        except (AuthenticationFailed, TooManyAttempts) as exc:
            return type(exc)
        raise AssertionError("a wrong password was accepted")

    outcomes = await asyncio.gather(*(attempt() for _ in range(12)))
    assert sorted(o.__name__ for o in outcomes) == ["AuthenticationFailed"] * 5 + ["TooManyAttempts"] * 7
    assert await failures(ctx, LoginFailure.email == user.email) == 5


async def test_failures_older_than_the_window_are_pruned(ctx, clock):
    old, new = address(), address()
    await fail(ctx, email(), old, 3)
    clock.instant = NOW + timedelta(hours=1)
    await fail(ctx, email(), new)
    assert await failures(ctx, LoginFailure.failed_at <= clock.instant - timedelta(hours=1)) == 0
    assert await failures(ctx, LoginFailure.source_address == old) == 0
    assert await failures(ctx, LoginFailure.source_address == new) == 1


async def test_pruning_goes_in_bounded_batches(ctx):
    stale = address()
    async with ctx.db.write() as session:
        session.add_all(
            LoginFailure(email=email(), source_address=stale, failed_at=NOW - timedelta(hours=2))
            for _ in range(login_throttle.PRUNE_BATCH + 20)
        )
    await fail(ctx, email(), address())
    assert await failures(ctx, LoginFailure.source_address == stale) <= 20  # one attempt deletes a batch
    await fail(ctx, email(), address())
    assert await failures(ctx, LoginFailure.source_address == stale) == 0


async def test_addresses_are_counted_by_ipv4_and_ipv6_64(ctx, user):
    for attempt in range(5):  # five addresses of one IPv6 /64, one source
        await fail(ctx, user.email, f"2001:db8:77:1::{attempt + 1:x}")
    assert await throttled(ctx, user.email, "2001:db8:77:1:ffff::9") == 30
    assert await failures(ctx, LoginFailure.source_address == "2001:db8:77:1::/64") == 5
    assert (await identity.log_in(ctx, user.email, PASSWORD, source_address="2001:db8:77:2::1")).user.id == user.id


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"login_attempts": 0}, "ENTITLE_LOGIN_ATTEMPTS must be 1 to 1000, not 0"),
        ({"login_window_seconds": 30}, "ENTITLE_LOGIN_WINDOW_SECONDS must be 60 to 86400, not 30"),
        ({"login_delay_seconds": 0}, "ENTITLE_LOGIN_DELAY_SECONDS must be 1 to 3600, not 0"),
        ({"login_max_delay_seconds": 7200}, "ENTITLE_LOGIN_MAX_DELAY_SECONDS must be from"),
        ({"login_max_delay_seconds": 10}, "ENTITLE_LOGIN_MAX_DELAY_SECONDS must be from"),
        ({"trusted_proxies": ("proxy.internal",)}, "ENTITLE_TRUSTED_PROXIES must list IP addresses or networks"),
    ],
)
def test_settings_out_of_range_are_refused(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Settings(**changes)  # type: ignore[arg-type]


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("ENTITLE_LOGIN_ATTEMPTS", "3")
    monkeypatch.setenv("ENTITLE_LOGIN_MAX_DELAY_SECONDS", "600")
    monkeypatch.setenv("ENTITLE_TRUSTED_PROXIES", " 127.0.0.1, 10.0.0.0/8 ,")
    settings = Settings.from_env()
    assert (settings.login_attempts, settings.login_max_delay_seconds, settings.trusted_proxies) == (
        3, 600, ("127.0.0.1", "10.0.0.0/8")
    )
    defaults = Settings()
    assert (
        defaults.login_window_seconds, defaults.login_attempts, defaults.login_account_attempts,
        defaults.login_address_attempts, defaults.login_delay_seconds, defaults.login_max_delay_seconds,
        defaults.login_alert_attempts, defaults.trusted_proxies,
    ) == (3600, 5, 20, 100, 30, 900, 5, ())
