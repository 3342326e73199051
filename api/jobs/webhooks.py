"""Webhook delivery: lease due deliveries, POST each one signed with httpx, record every attempt.

Like the e-mail sender (api/jobs/sender.py), each delivery passes through three commits: the lease (status
sending, an owner and an expiry), the start of the attempt (its attempt row and one more attempt, the lease
renewed to cover the request), and the result (delivered on a 2xx answer; otherwise due again after its
backoff, or failed for good after the last attempt allowed). A sender that dies mid-request leaves its attempt
without an outcome; once the lease expires another sends the delivery again, with the same event id and
body. Webhooks are therefore delivered at least once; receivers de-duplicate on `Entitle-Event-Id`.

Before anything is sent the policy is asked again: a delivery whose subscription was revoked, or whose partner
no longer sees that customer's events, fails without a request."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, func, insert, select, update

from api.jobs.leases import LeasedQueue
from api.jobs.sender import backoff, lease_owner
from api.models import PartnerCustomer, WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus, WebhookSubscription
from api.services import policy
from api.services.context import AppContext
from api.services.webhooks import family_of, is_public_address
from api.signing import SIGNATURE_HEADER, signature_header

__all__ = ["USER_AGENT", "WebhookRun", "deliver_webhooks", "purge_deliveries"]

log = logging.getLogger("entitle.webhooks")

USER_AGENT = "Entitle-Webhooks/1"
_ERROR_MAX = 2000
_SNIPPET = 300  # bytes of a refusing receiver's answer kept with the attempt
_PURGE_BATCH = 1000
_OPEN = (WebhookDeliveryStatus.PENDING, WebhookDeliveryStatus.SENDING)
_QUEUE = LeasedQueue(WebhookDelivery, _OPEN, WebhookDeliveryStatus.SENDING)


@dataclass
class WebhookRun:
    leased: int = 0
    delivered: int = 0
    retrying: int = 0  # failed this time, due again after their backoff
    failed: int = 0  # given up after the last attempt allowed
    refused: int = 0  # failed without a request: subscription revoked, or its owner no longer sees the customer
    lost: int = 0  # leases another sender took over before this one began (this one was too slow)
    purged: int = 0  # finished deliveries older than ENTITLE_WEBHOOK_RETENTION_DAYS, deleted


@dataclass(frozen=True)
class _Leased:
    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    attempts: int
    url: str
    secret: str
    body: bytes


@dataclass(frozen=True)
class _Outcome:
    code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


async def _lease(ctx: AppContext, owner: str, batch: int, run: WebhookRun) -> list[_Leased] | None:
    """Take up to `batch` due deliveries, oldest due first (on PostgreSQL skipping rows another sender is
    leasing; on SQLite under the write lock). Those the policy no longer lets through fail here. None when
    nothing was due."""
    settings, now = ctx.settings, ctx.now()
    until = now + timedelta(seconds=settings.webhook_lease_seconds)
    async with ctx.db.write() as session:
        rows = (
            await session.execute(
                select(WebhookDelivery, WebhookSubscription)
                .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
                .where(*_QUEUE.due(now))
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(batch)
                .with_for_update(skip_locked=True, of=WebhookDelivery)
            )
        ).all()
        if not rows:
            return None
        pairs = {(s.partner_id, d.customer_id) for d, s in rows if s.partner_id is not None}
        links: dict[tuple[uuid.UUID, uuid.UUID], PartnerCustomer] = {}
        if pairs:
            for link in await session.scalars(
                select(PartnerCustomer).where(
                    PartnerCustomer.partner_id.in_({p for p, _ in pairs}),
                    PartnerCustomer.customer_id.in_({c for _, c in pairs}),
                )
            ):
                links[(link.partner_id, link.customer_id)] = link
        leased: list[_Leased] = []
        refused: dict[str, list[uuid.UUID]] = {}
        for delivery, subscription in rows:
            link = links.get((subscription.partner_id, delivery.customer_id)) if subscription.partner_id else None
            if policy.webhook_receives(subscription, delivery.customer_id, family_of(delivery.event_type), link):
                leased.append(
                    _Leased(delivery.id, delivery.event_id, delivery.event_type, delivery.attempts, subscription.url,
                            subscription.secret, delivery.payload.encode())
                )
            else:
                reason = (
                    "the subscription was revoked"
                    if not subscription.active
                    else "the subscription's partner no longer sees these events of this customer"
                )
                refused.setdefault(reason, []).append(delivery.id)
        for reason, ids in refused.items():
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(ids), *_QUEUE.due(now))
                .values(status=WebhookDeliveryStatus.FAILED, failed_at=now, last_error=reason, lease_owner=None,
                        leased_until=None)
                .execution_options(synchronize_session=False)
            )
            run.refused += len(ids)
        if not leased:
            return []
        ids = await _QUEUE.take(session, [d.id for d in leased], now=now, owner=owner, until=until)
    return [d for d in leased if d.id in ids]


async def _start(ctx: AppContext, delivery: _Leased, owner: str) -> int | None:
    """Record the attempt before the request goes out, and extend the lease to cover it and its commit.
    Returns the attempt's number, or None when the lease is no longer this sender's."""
    now = ctx.now()
    until = now + timedelta(seconds=ctx.settings.webhook_lease_seconds)
    async with ctx.db.write() as session:
        moved = await session.execute(
            update(WebhookDelivery)
            .where(*_QUEUE.held_by(delivery.id, owner))
            .values(attempts=WebhookDelivery.attempts + 1, last_attempt_at=now, leased_until=until, next_attempt_at=until)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:
            return None
        number = int(
            await session.scalar(
                select(func.coalesce(func.max(WebhookAttempt.number), 0)).where(WebhookAttempt.delivery_id == delivery.id)
            )
            or 0
        ) + 1
        await session.execute(
            insert(WebhookAttempt).values(id=uuid.uuid4(), delivery_id=delivery.id, number=number, started_at=now)
        )
    return number


async def _finish_attempt(session, ctx: AppContext, delivery_id: uuid.UUID, number: int, outcome: _Outcome,  # type: ignore[no-untyped-def]
                          started: float) -> None:
    await session.execute(
        update(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery_id, WebhookAttempt.number == number)
        .values(
            finished_at=ctx.now(), outcome="delivered" if outcome.delivered else "failed", response_code=outcome.code,
            error=None if outcome.error is None else outcome.error[:_ERROR_MAX],
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        .execution_options(synchronize_session=False)
    )


async def _record(
    ctx: AppContext, delivery: _Leased, owner: str, number: int, outcome: _Outcome, started: float
) -> WebhookDeliveryStatus | None:
    """The attempt's outcome and the delivery's new state: delivered, pending again after its backoff, or
    failed after the last attempt allowed. None when the lease was lost meanwhile (a delivered answer is
    recorded all the same: the receiver has the event)."""
    now = ctx.now()
    attempts = delivery.attempts + 1
    values: dict[str, object] = {
        "last_response_code": outcome.code, "lease_owner": None, "leased_until": None,
        "last_error": None if outcome.error is None else outcome.error[:_ERROR_MAX],
    }
    if outcome.delivered:
        status = WebhookDeliveryStatus.DELIVERED
        values.update(status=status, delivered_at=now, next_attempt_at=now)
        where = (WebhookDelivery.id == delivery.id, WebhookDelivery.status.in_(_OPEN))
    elif attempts >= ctx.settings.webhook_max_attempts:
        status = WebhookDeliveryStatus.FAILED
        values.update(status=status, failed_at=now, next_attempt_at=now)
        where = _QUEUE.held_by(delivery.id, owner)
    else:
        status = WebhookDeliveryStatus.PENDING
        values.update(status=status, next_attempt_at=now + backoff(ctx.settings.webhook_retry_seconds, attempts))
        where = _QUEUE.held_by(delivery.id, owner)
    async with ctx.db.write() as session:
        await _finish_attempt(session, ctx, delivery.id, number, outcome, started)
        moved = await session.execute(
            update(WebhookDelivery).where(*where).values(**values).execution_options(synchronize_session=False)
        )
    return status if moved.rowcount == 1 else None


async def _check_public(url: str) -> str | None:
    """In production a receiver's host must resolve to public addresses only (no loopback, private or
    link-local targets, whatever the name says); the reason when it does not."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=0), timeout=10
        )
    except (OSError, TimeoutError) as exc:
        return f"cannot resolve {host}: {exc or type(exc).__name__}"
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not is_public_address(address):
            return f"{host} resolves to {address}, which is not a public address: not sent"
    return None


async def _post(ctx: AppContext, client: httpx.AsyncClient, delivery: _Leased) -> _Outcome:
    """One signed POST, bounded as a whole by ENTITLE_WEBHOOK_TIMEOUT; only the first bytes of a refusing
    answer are read. Redirects are not followed: a 3xx is a failure."""
    settings = ctx.settings
    if settings.production:
        problem = await _check_public(delivery.url)
        if problem is not None:
            return _Outcome(None, problem)
    # Signed with the wall clock: receivers compare the timestamp with theirs.
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature_header(delivery.secret, delivery.body, int(time.time())),
        "Entitle-Event-Id": str(delivery.event_id),
        "Entitle-Event-Type": delivery.event_type,
        "Entitle-Delivery-Id": str(delivery.id),
    }
    try:
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            async with client.stream("POST", delivery.url, content=delivery.body, headers=headers) as response:
                code = response.status_code
                if 200 <= code < 300:
                    return _Outcome(code, None)
                snippet = b""
                async for chunk in response.aiter_raw():
                    snippet += chunk
                    if len(snippet) >= _SNIPPET:
                        break
    except (TimeoutError, httpx.TimeoutException):
        return _Outcome(None, f"no answer within {settings.webhook_timeout_seconds:g} s")
    except Exception as exc:  # any failure of one request is that attempt's outcome, and the batch goes on
        return _Outcome(None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    text = snippet[:_SNIPPET].decode("utf-8", "replace").strip()
    note = " (redirects are not followed)" if 300 <= code < 400 else ""
    return _Outcome(code, f"HTTP {code}{note}" + (f": {text}" if text else ""))


async def _deliver_one(
    ctx: AppContext, client: httpx.AsyncClient, delivery: _Leased, owner: str, run: WebhookRun
) -> None:
    number = await _start(ctx, delivery, owner)
    if number is None:
        run.lost += 1
        log.warning("webhook delivery %s: lease lost to another sender before the request; left to it", delivery.id)
        return
    started = time.monotonic()
    outcome = await _post(ctx, client, delivery)
    status = await _record(ctx, delivery, owner, number, outcome, started)
    if status == WebhookDeliveryStatus.DELIVERED:
        run.delivered += 1
    elif status == WebhookDeliveryStatus.FAILED:
        run.failed += 1
        log.error("webhook delivery %s failed after %d attempt(s): %s", delivery.id, delivery.attempts + 1, outcome.error)
    elif status == WebhookDeliveryStatus.PENDING:
        run.retrying += 1
        log.warning("webhook delivery %s not delivered (attempt %d), will retry: %s", delivery.id, number, outcome.error)
    else:
        run.lost += 1


async def purge_deliveries(ctx: AppContext) -> int:
    """Delete delivered and failed deliveries (with their attempts) queued more than
    ENTITLE_WEBHOOK_RETENTION_DAYS ago, a batch at a time."""
    before = ctx.now() - timedelta(days=ctx.settings.webhook_retention_days)
    purged = 0
    while True:
        async with ctx.db.write() as session:
            ids = list(
                await session.scalars(
                    select(WebhookDelivery.id)
                    .where(
                        WebhookDelivery.status.in_([WebhookDeliveryStatus.DELIVERED, WebhookDeliveryStatus.FAILED]),
                        WebhookDelivery.created_at < before,
                    )
                    .limit(_PURGE_BATCH)
                )
            )
            if ids:
                await session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
                await session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))
        purged += len(ids)
        if len(ids) < _PURGE_BATCH:
            return purged


async def deliver_webhooks(
    ctx: AppContext, *, client: httpx.AsyncClient | None = None, owner: str | None = None, batch: int | None = None
) -> WebhookRun:
    """Deliver every webhook due now, a batch of leases at a time with ENTITLE_WEBHOOK_CONCURRENCY requests
    in flight, until none is due; then delete what is past its retention. A failing receiver is recorded and
    the others go on; a delivery this run could not finish (the process died) is taken again once its lease
    expires."""
    owner = owner or lease_owner()
    run = WebhookRun()
    own_client = client is None
    http = client or httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=ctx.settings.webhook_timeout_seconds)
    gate = asyncio.Semaphore(ctx.settings.webhook_concurrency)

    async def one(delivery: _Leased) -> None:
        async with gate:
            try:
                await _deliver_one(ctx, http, delivery, owner, run)
            except Exception:  # the database, not the receiver: the lease expires and the delivery comes back
                log.exception("webhook delivery %s: could not record its attempt", delivery.id)

    try:
        while (leased := await _lease(ctx, owner, batch or ctx.settings.webhook_batch, run)) is not None:
            run.leased += len(leased)
            await asyncio.gather(*(one(d) for d in leased))
    finally:
        if own_client:
            await http.aclose()
    run.purged = await purge_deliveries(ctx)
    return run
