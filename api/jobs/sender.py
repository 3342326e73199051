"""Outbox delivery: lease due messages, send each, record the outcome.

Each message passes through three commits: the lease (status sending, an owner and an expiry), the start
of the send (send_started_at, one more attempt), and the result (sent, or a failure with its backoff).
A message whose lease expired with a send started and no result belongs to a sender that died between
send and commit: it may have reached the server or not. It is resent with the same Message-ID, which
lets receiving servers and clients recognise the copy, and the resend is recorded (crash_resends)."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from api.jobs.leases import LeasedQueue
from api.mail import MailBackend, NothingToSend, Outgoing, build_outgoing, make_backend
from api.models import OutboxMessage, OutboxStatus
from api.services.context import AppContext

__all__ = ["MAX_BACKOFF", "DeliveryRun", "backoff", "deliver_outbox", "lease_owner"]

log = logging.getLogger("entitle.sender")

MAX_BACKOFF = timedelta(hours=6)
_ERROR_MAX = 2000


@dataclass
class DeliveryRun:
    leased: int = 0
    sent: int = 0
    retrying: int = 0  # failed this time, due again after their backoff
    failed: int = 0  # given up: no address, or the last attempt allowed
    resent_after_crash: int = 0  # in doubt (a sender died during their send): sent again, same Message-ID
    lost: int = 0  # leases another sender took over before this one began (this one was too slow)


@dataclass(frozen=True)
class _Leased:
    id: uuid.UUID
    attempts: int
    crash_resends: int
    in_doubt_since: datetime | None  # the send a dead sender started, when this lease recovers one
    outgoing: Outgoing | None
    unsendable: str | None


def lease_owner() -> str:
    """Names a sender run in lease_owner: which host and process holds a lease."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def backoff(base_seconds: int, attempts: int) -> timedelta:
    """The wait after the attempts-th failed send: base, 2·base, 4·base …, at most MAX_BACKOFF."""
    seconds = base_seconds * 2 ** min(max(attempts - 1, 0), 32)  # in integers: no timedelta overflow
    return min(timedelta(seconds=seconds), MAX_BACKOFF)


_QUEUE = LeasedQueue(OutboxMessage, (OutboxStatus.QUEUED, OutboxStatus.SENDING), OutboxStatus.SENDING)


async def _lease(ctx: AppContext, owner: str, batch: int) -> list[_Leased]:
    """Take up to `batch` due messages, oldest due first. On PostgreSQL rows another sender is leasing
    are skipped (FOR UPDATE SKIP LOCKED); on SQLite the transaction holds the write lock from its first
    statement (BEGIN IMMEDIATE). The UPDATE repeats the due condition either way."""
    settings = ctx.settings
    now = ctx.now()
    until = now + timedelta(seconds=settings.mail_lease_seconds)
    async with ctx.db.write() as session:
        rows = list(
            await session.scalars(
                select(OutboxMessage)
                .where(*_QUEUE.due(now))
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        )
        if not rows:
            return []
        leased = []
        for row in rows:
            in_doubt = row.status == OutboxStatus.SENDING and row.send_started_at is not None and row.sent_at is None
            outgoing, unsendable = None, None
            try:
                outgoing = build_outgoing(
                    mail_from=settings.mail_from, message_id=row.message_id, kind=row.kind, created_at=row.created_at,
                    recipient_name=row.recipient_name, recipient_email=row.recipient_email,
                    extra_emails=row.extra_emails or [], subject=row.subject, body=row.body, html_body=row.html_body,
                )
            except ValueError as exc:  # NothingToSend, or a header the email package refuses
                unsendable = str(exc) if isinstance(exc, NothingToSend) else f"the message cannot be built: {exc}"
            leased.append(
                _Leased(row.id, row.attempts, row.crash_resends, row.send_started_at if in_doubt else None,
                        outgoing, unsendable)
            )
        ids = await _QUEUE.take(session, [row.id for row in rows], now=now, owner=owner, until=until)
    return [message for message in leased if message.id in ids]


async def _start(ctx: AppContext, message: _Leased, owner: str) -> bool:
    """Commit that the send begins, before it begins, and extend the lease to cover the send and its
    commit. False when the lease is no longer this sender's."""
    now = ctx.now()
    until = now + timedelta(seconds=ctx.settings.mail_lease_seconds)
    values: dict[str, object] = {
        "send_started_at": now,
        "attempts": OutboxMessage.attempts + 1,
        "leased_until": until,
        "next_attempt_at": until,
    }
    if message.in_doubt_since is not None:
        values["crash_resends"] = OutboxMessage.crash_resends + 1
        values["last_error"] = (
            f"a sender stopped during the send it started at {message.in_doubt_since.isoformat()}, before "
            f"recording its result: sent again with the same Message-ID"
        )
    async with ctx.db.write() as session:
        result = await session.execute(
            update(OutboxMessage).where(*_QUEUE.held_by(message.id, owner)).values(**values)
            .execution_options(synchronize_session=False)
        )
    return result.rowcount == 1


async def _record_sent(ctx: AppContext, message: _Leased, note: str | None) -> None:
    # Not guarded by the lease: the server has the message, whoever holds the lease by now.
    values: dict[str, object] = {
        "status": OutboxStatus.SENT, "sent_at": ctx.now(), "lease_owner": None, "leased_until": None,
    }
    if note is not None:
        values["last_error"] = note[:_ERROR_MAX]
    async with ctx.db.write() as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message.id, OutboxMessage.sent_at.is_(None))
            .values(**values)
            .execution_options(synchronize_session=False)
        )


async def _record_failure(ctx: AppContext, message: _Leased, owner: str, error: str, *, final: bool) -> bool:
    """A failed send is due again after its backoff, or, after the last attempt allowed (or when no
    attempt can succeed), failed for good. True when the message is failed for good."""
    now = ctx.now()
    attempts = message.attempts + (0 if message.outgoing is None else 1)
    final = final or attempts >= ctx.settings.mail_max_attempts
    values: dict[str, object] = {
        "last_error": error[:_ERROR_MAX],
        "send_started_at": None,  # the outcome is known: not in doubt
        "lease_owner": None,
        "leased_until": None,
    }
    if final:
        values.update(status=OutboxStatus.FAILED, failed_at=now, next_attempt_at=now)
    else:
        values.update(status=OutboxStatus.QUEUED, next_attempt_at=now + backoff(ctx.settings.mail_retry_seconds, attempts))
    async with ctx.db.write() as session:
        await session.execute(
            update(OutboxMessage).where(*_QUEUE.held_by(message.id, owner)).values(**values)
            .execution_options(synchronize_session=False)
        )
    return final


async def _deliver_one(ctx: AppContext, backend: MailBackend, message: _Leased, owner: str, run: DeliveryRun) -> None:
    if message.outgoing is None:
        await _record_failure(ctx, message, owner, message.unsendable or "nothing to send", final=True)
        run.failed += 1
        log.error("outbox message %s failed: %s", message.id, message.unsendable)
        return
    if not await _start(ctx, message, owner):
        run.lost += 1
        log.warning("outbox message %s: lease lost to another sender before the send; left to it", message.id)
        return
    if message.in_doubt_since is not None:
        run.resent_after_crash += 1
        log.warning(
            "outbox message %s %s was being sent at %s by a sender that stopped: sending it again",
            message.id, message.outgoing.message_id, message.in_doubt_since.isoformat(),
        )
    try:
        note = await backend.send(message.outgoing)
    except Exception as exc:  # any failure of one message is recorded, and the batch goes on
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if await _record_failure(ctx, message, owner, error, final=False):
            run.failed += 1
            log.error("outbox message %s failed after %d attempt(s): %s", message.id, message.attempts + 1, error)
        else:
            run.retrying += 1
            log.warning("outbox message %s not sent (attempt %d), will retry: %s", message.id, message.attempts + 1, error)
        return
    await _record_sent(ctx, message, note)
    run.sent += 1


async def deliver_outbox(
    ctx: AppContext, *, backend: MailBackend | None = None, owner: str | None = None, batch: int | None = None
) -> DeliveryRun:
    """Deliver every message due now, a batch of leases at a time, until none is due. A message that
    fails is recorded and the others go on; a message this run could not finish (the process died) is
    left leased, and is taken again once its lease expires."""
    backend = backend or make_backend(ctx.settings)
    owner = owner or lease_owner()
    run = DeliveryRun()
    try:
        while leased := await _lease(ctx, owner, batch or ctx.settings.mail_batch):
            run.leased += len(leased)
            for message in leased:
                try:
                    await _deliver_one(ctx, backend, message, owner, run)
                except Exception:  # the database, not the send: the lease expires and the message comes back
                    log.exception("outbox message %s: could not record its delivery", message.id)
    finally:
        await backend.close()
    return run

