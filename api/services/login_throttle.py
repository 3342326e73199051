"""Login throttling's storage, used by identity.log_in: failures per account and source, the wait before the
next attempt, clearing a pair on success, pruning, and the owner's e-mail about failed attempts.

An attempt is written as a failure *before* its password is checked, in a transaction that first takes a
per-source lock (PostgreSQL advisory lock; on SQLite the write lock), so parallel requests from one source
cannot all slip through on the same count. A success deletes its pair's failures; a crash in between
leaves a failure, which only errs towards caution."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from api.config import Settings
from api.domain.login_throttle import Failures, ThrottleRules, wait_before_attempt
from api.models import LoginAlert, LoginFailure, User
from api.services import audit, outbox
from api.services.context import Actor, AppContext
from api.services.errors import TooManyAttempts

__all__ = ["ALERT_KIND", "Attempt", "clear_pair", "record_attempt", "rules_from", "tell_owner"]

ALERT_KIND = "login_failures"
# Sources named in the owner's e-mail; the rest are counted.
ALERT_SOURCES_LISTED = 10
PRUNE_BATCH = 500

log = logging.getLogger("entitle.login")
_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def rules_from(settings: Settings) -> ThrottleRules:
    return ThrottleRules(
        window=timedelta(seconds=settings.login_window_seconds),
        attempts=settings.login_attempts,
        account_attempts=settings.login_account_attempts,
        address_attempts=settings.login_address_attempts,
        delay=timedelta(seconds=settings.login_delay_seconds),
        max_delay=timedelta(seconds=settings.login_max_delay_seconds),
    )


@dataclass(frozen=True)
class Attempt:
    """An attempt let through and recorded as a failure until it succeeds."""

    email: str
    source: str
    at: datetime
    account_failures: int  # the account's failures in the window, from every source, this one included


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def _lock(session: AsyncSession, name: str) -> None:
    """Serialise the writers of one throttling key until the transaction ends. SQLite needs nothing more: a
    write transaction there holds the database's write lock from its start (BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(name)})


async def _failures(session: AsyncSession, since: datetime, now: datetime, *where) -> Failures:  # type: ignore[no-untyped-def]
    count, last = (
        await session.execute(
            select(func.count(), func.max(LoginFailure.failed_at)).where(
                *where, LoginFailure.failed_at > since, LoginFailure.failed_at <= now
            )
        )
    ).one()
    return Failures(count, last)


async def record_attempt(ctx: AppContext, email: str, source: str) -> Attempt:
    """Let an attempt at `email` from `source` through, recorded as a failure, or refuse it with
    TooManyAttempts (writing nothing) while its source must still wait. Prunes failures past the window."""
    rules, now = rules_from(ctx.settings), ctx.now()
    since = now - rules.window
    async with ctx.db.write() as session:
        await _lock(session, f"login-source:{source}")
        pair = await _failures(session, since, now, LoginFailure.email == email, LoginFailure.source_address == source)
        account = await _failures(session, since, now, LoginFailure.email == email)
        address = await _failures(session, since, now, LoginFailure.source_address == source)
        wait = wait_before_attempt(now, pair=pair, account=account, address=address, rules=rules)
        if wait:
            log.warning(
                "login throttled: account %r from %s must wait %d s (failures in the window: %d from this source "
                "for the account, %d for the account, %d from this source)",
                email, source, wait, pair.count, account.count, address.count,
            )
            raise TooManyAttempts(f"too many attempts, try again in {wait} s", retry_after_seconds=wait)
        session.add(LoginFailure(email=email, source_address=source, failed_at=now))
        await _prune(session, since)
    return Attempt(email, source, now, account.count + 1)


async def _prune(session: AsyncSession, since: datetime) -> None:
    """Delete failures that have left the window, a bounded batch per attempt (an attack writes at most one
    row per attempt, so the batches keep up). On PostgreSQL rows another pruner holds are skipped, not
    waited for."""
    old = select(LoginFailure.id).where(LoginFailure.failed_at <= since).limit(PRUNE_BATCH)
    if session.get_bind().dialect.name == "postgresql":
        old = old.with_for_update(skip_locked=True)
    await session.execute(delete(LoginFailure).where(LoginFailure.id.in_(old)))


async def clear_pair(session: AsyncSession, email: str, source: str) -> None:
    """A successful login forgets its (account, source) pair's failures, the attempt's own included."""
    await session.execute(delete(LoginFailure).where(LoginFailure.email == email, LoginFailure.source_address == source))


async def tell_owner(ctx: AppContext, user: User, attempt: Attempt) -> bool:
    """E-mail the user, once per window, that their account had failed logins and from where; True when this
    call queued the message. Whoever sets `alerted_at` first in a window wins; the others do nothing."""
    if attempt.account_failures < ctx.settings.login_alert_attempts or not user.active:
        return False
    window = timedelta(seconds=ctx.settings.login_window_seconds)
    now = attempt.at
    async with ctx.db.write() as session:
        insert = _INSERT[session.get_bind().dialect.name]
        claim = insert(LoginAlert).values(user_id=user.id, alerted_at=now)
        claim = claim.on_conflict_do_update(
            index_elements=[LoginAlert.user_id],
            set_={"alerted_at": claim.excluded.alerted_at},
            where=LoginAlert.alerted_at <= now - window,
        ).returning(LoginAlert.user_id)
        if (await session.execute(claim)).first() is None:
            return False
        sources = (
            await session.execute(
                select(LoginFailure.source_address, func.count(), func.max(LoginFailure.failed_at))
                .where(LoginFailure.email == attempt.email, LoginFailure.failed_at > now - window,
                       LoginFailure.failed_at <= now)
                .group_by(LoginFailure.source_address)
                .order_by(func.count().desc(), LoginFailure.source_address)
            )
        ).all()
        total = sum(count for _, count, _ in sources)
        await outbox.queue(
            session, ctx,
            kind=ALERT_KIND,
            customer_id=user.customer_id,
            dedupe_key=f"login-failures:{user.id}:{now:%Y%m%dT%H%M%S.%fZ}",
            subject="Failed sign-in attempts on your Entitle account",
            body=_alert_body(ctx, user, sources, total, window),
            recipient=outbox.Recipient(user.kind.value, user.name, user.email),
        )
        await audit.record(
            session, ctx, Actor.system("login-throttling", interface="portal"), "user.failed_logins_alert",
            target_type="user", target_id=user.id, on_behalf_of_customer_id=user.customer_id,
            detail={"failures": total, "sources": len(sources)},
        )
    return True


def _alert_body(ctx: AppContext, user: User, sources, total: int, window: timedelta) -> str:  # type: ignore[no-untyped-def]
    minutes = int(window.total_seconds() // 60)
    lines = [
        f"Hello {user.name},",
        "",
        f"In the last {minutes} minutes there were {total} failed attempts to sign in to your Entitle account "
        f"({user.email}), from {'this address' if len(sources) == 1 else 'these addresses'}:",
        "",
    ]
    for source, count, last in sources[:ALERT_SOURCES_LISTED]:
        lines.append(f"  {source}: {count} attempt{'s' if count != 1 else ''}, the last at {last:%Y-%m-%d %H:%M} UTC")
    if len(sources) > ALERT_SOURCES_LISTED:
        rest = sources[ALERT_SOURCES_LISTED:]
        lines.append(f"  and {len(rest)} more addresses ({sum(c for _, c, _ in rest)} attempts)")
    lines += [
        "",
        "If that was you, there is nothing to do. If not, someone may be guessing your password. Your account "
        "is not locked: those addresses are slowed down, and you can still sign in from yours. If you think "
        "your password may be known, ask your administrator to change it.",
        "",
        f"Sign in: {ctx.settings.link_base}/login",
        "",
        f"You will not get another message like this for {minutes} minutes.",
    ]
    return "\n".join(lines) + "\n"
