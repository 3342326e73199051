"""Webhooks for integrators: subscriptions (which events go where, for whom), emission (one delivery row per
subscription that may see the event, written in the transaction of the change that causes it, so it never
blocks or fails that change), the deliveries with every attempt, and replaying one. Sending is the worker's
deliver-webhooks job (api/jobs/webhooks.py); who receives what is decided by the policy
(`policy.webhook_candidates`, `policy.webhook_receives`)."""

from __future__ import annotations

import ipaddress
import json
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.config import Settings
from api.models import (
    Booking,
    LedgerEntry,
    PartnerCustomer,
    Ticket,
    TicketComment,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookOwner,
    WebhookSubscription,
)
from api.domain.inputs import TextRule, refused_character
from api.services import audit, inputs, policy
from api.services.context import Actor, AppContext
from api.services.errors import Conflict, ErrorCode, NotFound, ValidationFailed
from api.services.paging import cut_page, encode_cursor, newest_first
from api.signing import verify_signature

__all__ = [
    "BOOKING_EVENTS",
    "EVENT_TYPES",
    "FAMILIES",
    "LEDGER_EVENTS",
    "MAX_DESCRIPTION",
    "MAX_URL",
    "DeliveryPage",
    "Event",
    "NewSubscription",
    "SubscriptionPage",
    "booking_data",
    "check_event_types",
    "check_url",
    "comment_data",
    "create_subscription",
    "emit",
    "emit_all",
    "entry_data",
    "family_of",
    "is_public_address",
    "list_deliveries",
    "list_subscriptions",
    "matches",
    "replay_delivery",
    "revoke_subscription",
    "ticket_data",
    "verify_signature",
]

# Every event type, with what it means; a subscription names types, families ("ticket.*") or "*".
EVENT_TYPES: dict[str, str] = {
    "ticket.filed": "a ticket was filed",
    "ticket.transitioned": "a ticket moved to another status",
    "ticket.updated": "the support team recorded an event on a ticket (a severity or plan change, an update)",
    "ticket.commented": "a comment was added to a ticket (internal comments: the provider's subscriptions only)",
    "entitlement.consumed": "units were consumed from a period (a deduction, a booking, a consumption)",
    "entitlement.reversed": "an entry was reversed and its units given back",
    "entitlement.adjusted": "staff adjusted a period's consumption",
    "entitlement.overage": "support time past an empty bucket was recorded as overage",
    "booking.created": "an activity was booked",
    "booking.scheduled": "a booked activity was scheduled",
    "booking.rescheduled": "a scheduled activity was moved",
    "booking.delivered": "an activity took place",
    "booking.cancelled": "a booked activity was cancelled and its units given back",
    "report.queued": "a contract's monthly report was queued for sending",
}
FAMILIES = ("ticket", "entitlement", "booking", "report")
MAX_URL = 2000
MAX_DESCRIPTION = 200
MAX_PATTERNS = 50
SECRET_PREFIX = "whsec_"
_DESCRIPTION = TextRule(MAX_DESCRIPTION, strict=True)  # a label: one line, nothing invisible
_CHUNK = 500  # rows per INSERT: well inside SQLite's limit on bound parameters
_NOT_PUBLIC_NAMES = ("localhost", "localhost.localdomain")
_NOT_PUBLIC_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")


def family_of(event_type: str) -> str:
    return event_type.partition(".")[0]


def matches(patterns: Iterable[str], event_type: str) -> bool:
    """Whether a subscription naming `patterns` wants events of `event_type`."""
    return any(p == "*" or p == event_type or p == f"{family_of(event_type)}.*" for p in patterns)


def check_event_types(given: Sequence[str]) -> list[str]:
    """The event types a subscription names, each a known type, a family ("ticket.*") or "*"; in order,
    without repeats."""
    known = {"*", *EVENT_TYPES, *(f"{f}.*" for f in FAMILIES)}
    patterns = list(dict.fromkeys(str(p).strip() for p in inputs.items(given, "eventTypes", most=MAX_PATTERNS)))
    if not patterns:
        raise ValidationFailed("name at least one event type (or a family such as ticket.*)", field="eventTypes")
    unknown = [p for p in patterns if p not in known]
    if unknown:
        raise ValidationFailed(
            f"unknown event type {unknown[0][:64]!r}; the types are {', '.join(EVENT_TYPES)}, the families "
            f"{', '.join(f + '.*' for f in FAMILIES)}, and * for all",
            field="eventTypes",
        )
    return patterns


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _loopback(host: str) -> bool:
    address = _ip(host)
    return host in _NOT_PUBLIC_NAMES or host.endswith(".localhost") or (address is not None and address.is_loopback)


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a receiver may be at this address in production: a global unicast address, not loopback,
    private, link-local (cloud metadata), shared, reserved or multicast; IPv4-mapped addresses judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_url(url: str, settings: Settings) -> str:
    """A receiver's address. https always; plain http only to a loopback address (127.0.0.1, ::1,
    localhost) and only in development. In production the host must not be, or name, a non-public
    address (loopback, private, link-local, …); the sender checks what the name resolves to as well."""
    value = (url or "").strip()
    if not value or len(value) > MAX_URL:
        raise ValidationFailed(f"the URL must be 1 to {MAX_URL} characters", field="url")
    if any(c.isspace() or refused_character(c, strict=True) for c in value):
        raise ValidationFailed("the URL may not contain spaces, control or invisible characters", field="url")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValidationFailed(f"{value[:100]!r} is not a valid URL", field="url") from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".")
    if scheme not in ("https", "http") or not host:
        raise ValidationFailed("the URL must be an https:// address with a host", field="url")
    if parts.username is not None or parts.password is not None:
        raise ValidationFailed(
            "the URL may not carry a user name or password: verify deliveries by their signature", field="url"
        )
    if parts.fragment:
        raise ValidationFailed("the URL may not have a #fragment", field="url")
    if port == 0:
        raise ValidationFailed("the URL's port must be 1 to 65535", field="url")
    try:
        httpx.URL(value)  # what the sender will send to (an international name must be valid IDNA)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValidationFailed(f"{value[:100]!r} is not a valid URL: {exc}", field="url") from None
    if scheme == "http" and (settings.production or not _loopback(host)):
        raise ValidationFailed(
            "the URL must use https (plain http is accepted only to a loopback address, in development)", field="url"
        )
    if settings.production:
        address = _ip(host)
        if (address is not None and not is_public_address(address)) or host in _NOT_PUBLIC_NAMES or host.endswith(
            _NOT_PUBLIC_SUFFIXES
        ):
            raise ValidationFailed(
                f"{host} is not a public address: webhooks go to receivers on the internet", field="url"
            )
    return value


# ---- payloads ------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON")


# The event each ledger kind and each booking change emits.
LEDGER_EVENTS = {
    "consume": "entitlement.consumed", "reverse": "entitlement.reversed", "adjust": "entitlement.adjusted",
    "overage": "entitlement.overage",
}
BOOKING_EVENTS = {
    "booking.create": "booking.created", "booking.schedule": "booking.scheduled",
    "booking.reschedule": "booking.rescheduled", "booking.deliver": "booking.delivered",
    "booking.cancel": "booking.cancelled",
}


def ticket_data(ticket: Ticket, **more: Any) -> dict[str, Any]:
    """A ticket event's data: the ticket as its customer sees it, and what else the event names."""
    return {"ticket": _ticket(ticket), **more}


def _ticket(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.id, "customer_id": ticket.customer_id, "contract_id": ticket.contract_id,
        "type": ticket.ticket_type, "severity": ticket.severity, "status": ticket.status, "subject": ticket.subject,
        "priority_flag": ticket.priority_flag, "filed_by_kind": ticket.filed_by_kind,
        "via_partner_id": ticket.via_partner_id, "created_at": ticket.created_at, "resolved_at": ticket.resolved_at,
        "sla_due_at": ticket.sla_due_at,
    }


def comment_data(comment: TicketComment) -> dict[str, Any]:
    return {
        "id": comment.id, "author_kind": comment.author_kind, "author_name": comment.author_name,
        "internal": comment.internal, "body": comment.body, "created_at": comment.created_at,
    }


def entry_data(entry: LedgerEntry, *, contract_reference: str, allowance: int, consumed: int, overage: int) -> dict[str, Any]:
    """An entitlement event's data: the ledger entry and its period's balance after it."""
    return {
        "entry": {
            "id": entry.id, "contract_id": entry.contract_id, "contract_reference": contract_reference,
            "bucket": entry.bucket_code, "period_start": entry.period_start, "period_end": entry.period_end,
            "quantity": entry.quantity, "kind": entry.kind, "reason": entry.reason, "actor_kind": entry.actor_kind,
            "on_behalf_of_customer_id": entry.on_behalf_of_customer_id, "reverses_entry_id": entry.reverses_entry_id,
            "ticket_id": entry.ticket_id, "time_entry_id": entry.time_entry_id, "booking_id": entry.booking_id,
            "created_at": entry.created_at,
        },
        "period": {"allowance": allowance, "consumed": consumed, "remaining": allowance - consumed, "overage": overage},
    }


def booking_data(booking: Booking) -> dict[str, Any]:
    return {
        "booking": {
            "id": booking.id, "contract_id": booking.contract_id, "customer_id": booking.customer_id,
            "activity": booking.activity_code, "activity_name": booking.activity_name, "bucket": booking.bucket_code,
            "units": booking.units, "period_start": booking.period_start, "period_end": booking.period_end,
            "requested_date": booking.requested_date, "status": booking.status, "note": booking.note,
            "starts_at": booking.starts_at, "ends_at": booking.ends_at, "staff_id": booking.staff_id,
            "requested_by_kind": booking.requested_by_kind, "via_partner_id": booking.via_partner_id,
            "delivered_at": booking.delivered_at, "cancelled_at": booking.cancelled_at,
            "cancel_reason": booking.cancel_reason, "revision": booking.revision, "created_at": booking.created_at,
        }
    }


# ---- emission ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    type: str
    customer_id: uuid.UUID
    data: Mapping[str, Any]
    provider_only: bool = False  # internal matters (an internal comment): the provider's subscriptions alone


def _body(event_id: uuid.UUID, event: Event, at: datetime) -> str:
    envelope = {
        "id": event_id, "type": event.type, "created_at": at, "customer_id": event.customer_id, "data": event.data,
    }
    return json.dumps(envelope, default=_plain, separators=(",", ":"), ensure_ascii=False)


async def emit(
    session: AsyncSession,
    ctx: AppContext,
    event_type: str,
    customer_id: uuid.UUID,
    payload: Mapping[str, Any],
    *,
    provider_only: bool = False,
) -> int:
    """Queue an event about a customer, in the caller's transaction, for every active subscription that
    wants its type and may see it; returns how many deliveries were queued. Nothing is sent here."""
    return await emit_all(session, ctx, [Event(event_type, customer_id, payload, provider_only)])


async def emit_all(session: AsyncSession, ctx: AppContext, events: Sequence[Event]) -> int:
    """`emit` for many events: two reads (the candidate subscriptions, their partners' links) and the
    inserts, whatever the number of events. Each event gets one id, the same in every subscription's
    delivery of it."""
    if not events:
        return 0
    for event in events:
        if event.type not in EVENT_TYPES:
            raise ValueError(f"unknown webhook event type {event.type!r}")  # pragma: no cover - a programming error
    customers = {event.customer_id for event in events}
    candidates = list(
        await session.scalars(
            policy.webhook_candidates(customers, provider_only=all(e.provider_only for e in events))
        )
    )
    if not candidates:
        return 0
    partners = {s.partner_id for s in candidates if s.owner_kind == WebhookOwner.PARTNER}
    links: dict[tuple[uuid.UUID, uuid.UUID], PartnerCustomer] = {}
    if partners:
        for link in await session.scalars(
            select(PartnerCustomer).where(PartnerCustomer.partner_id.in_(partners), PartnerCustomer.customer_id.in_(customers))
        ):
            links[(link.partner_id, link.customer_id)] = link
    now = ctx.now()
    rows: list[dict[str, Any]] = []
    for event in events:
        wanting = [
            s for s in candidates
            if matches(s.event_types or [], event.type)
            and policy.webhook_receives(
                s, event.customer_id, family_of(event.type),
                links.get((s.partner_id, event.customer_id)) if s.partner_id is not None else None,
                provider_only=event.provider_only,
            )
        ]
        if not wanting:
            continue
        event_id = uuid.uuid4()
        body = _body(event_id, event, now)
        rows += [
            {
                "id": uuid.uuid4(), "subscription_id": s.id, "event_id": event_id, "event_type": event.type,
                "customer_id": event.customer_id, "payload": body, "status": WebhookDeliveryStatus.PENDING,
                "created_at": now, "next_attempt_at": now, "attempts": 0, "replays": 0,
            }
            for s in wanting
        ]
    for start in range(0, len(rows), _CHUNK):
        await session.execute(insert(WebhookDelivery), rows[start : start + _CHUNK])
    return len(rows)


# ---- subscriptions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewSubscription:
    url: str
    event_types: Sequence[str]
    description: str = ""


@dataclass(frozen=True)
class SubscriptionPage:
    subscriptions: list[WebhookSubscription]
    has_next_page: bool
    end_cursor: str | None


def _owner_key(kind: WebhookOwner, customer_id: uuid.UUID | None, partner_id: uuid.UUID | None) -> str:
    return f"webhook-owner:{kind.value}:{customer_id or partner_id or ''}"


async def create_subscription(ctx: AppContext, actor: Actor, new: NewSubscription) -> tuple[WebhookSubscription, str]:
    """A subscription for the actor's side (its customer, its partner, or the provider) and its signing
    secret, which is returned this once and never shown again. At most ENTITLE_WEBHOOK_MAX_SUBSCRIPTIONS
    are active per owner."""
    policy.require(actor, "webhook.manage")
    url = check_url(new.url, ctx.settings)
    patterns = check_event_types(new.event_types)
    description = inputs.text(ctx, (new.description or "").strip(), "description", rule=_DESCRIPTION)
    kind, customer_id, partner_id = policy.webhook_owner(actor)
    limit = ctx.settings.webhook_max_subscriptions
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    async with ctx.db.write() as session:
        if session.get_bind().dialect.name == "postgresql":
            # Two creations for one owner never both pass the count below (SQLite's writers are serialised).
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": _owner_key(kind, customer_id, partner_id)},
            )
        active = await session.scalar(
            select(func.count(WebhookSubscription.id)).where(
                WebhookSubscription.active.is_(True),
                WebhookSubscription.owner_kind == kind,
                WebhookSubscription.customer_id.is_(None) if customer_id is None else WebhookSubscription.customer_id == customer_id,
                WebhookSubscription.partner_id.is_(None) if partner_id is None else WebhookSubscription.partner_id == partner_id,
            )
        )
        if int(active or 0) >= limit:
            raise Conflict(
                f"{actor.name} already has {active} active webhook subscriptions, the most allowed "
                f"(ENTITLE_WEBHOOK_MAX_SUBSCRIPTIONS = {limit}): revoke one first",
                field="url",
            )
        subscription = WebhookSubscription(
            owner_kind=kind, customer_id=customer_id, partner_id=partner_id, url=url, description=description,
            event_types=patterns, secret=secret, active=True, created_by=actor.ref, created_by_name=actor.name[:200],
            created_at=ctx.now(),
        )
        session.add(subscription)
        await session.flush()
        await audit.record(
            session, ctx, actor, "webhook.create", target_type="webhook_subscription", target_id=subscription.id,
            on_behalf_of_customer_id=customer_id,
            detail={"owner": kind.value, "url": url, "event_types": patterns},
        )
    return subscription, secret


async def list_subscriptions(
    ctx: AppContext, actor: Actor, *, first: int = 50, after: str | None = None, active: bool | None = None
) -> SubscriptionPage:
    """The subscriptions the actor sees, newest first (never their secrets)."""
    policy.require(actor, "webhook.read")
    query = newest_first(
        policy.visible_webhook_subscriptions(actor), WebhookSubscription.created_at, WebhookSubscription.id,
        first=first, after=after,
    )
    if active is not None:
        query = query.where(WebhookSubscription.active.is_(active))
    async with ctx.db.read() as session:
        rows = list(await session.scalars(query))
    return SubscriptionPage(*cut_page(rows, first, lambda s: encode_cursor(s.created_at, s.id)))


async def revoke_subscription(ctx: AppContext, actor: Actor, subscription_id: uuid.UUID) -> WebhookSubscription:
    """Stop a subscription at once: nothing more is queued for it and its pending deliveries fail. Its
    owner's side revokes it, or an admin or integrator; revoking a revoked one changes nothing."""
    policy.require(actor, "webhook.manage")
    now = ctx.now()
    async with ctx.db.write() as session:
        # FOR NO KEY UPDATE on PostgreSQL: changes going on meanwhile still insert deliveries that reference it.
        subscription = await session.scalar(
            policy.visible_webhook_subscriptions(actor)
            .where(WebhookSubscription.id == subscription_id)
            .with_for_update(key_share=True)
        )
        if subscription is None:
            raise NotFound("webhook subscription", subscription_id, field="id")
        if not subscription.active:
            return subscription
        subscription.active, subscription.revoked_at, subscription.revoked_by = False, now, actor.ref
        cancelled = await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.subscription_id == subscription.id,
                WebhookDelivery.status == WebhookDeliveryStatus.PENDING,
            )
            .values(status=WebhookDeliveryStatus.FAILED, failed_at=now, last_error="the subscription was revoked")
            .execution_options(synchronize_session=False)
        )
        await audit.record(
            session, ctx, actor, "webhook.revoke", target_type="webhook_subscription", target_id=subscription.id,
            on_behalf_of_customer_id=subscription.customer_id,
            detail={"url": subscription.url, "pending_deliveries_failed": cancelled.rowcount},
        )
        return subscription


# ---- deliveries ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[WebhookDelivery]
    has_next_page: bool
    end_cursor: str | None
    attempts: dict[uuid.UUID, list[WebhookAttempt]] = field(default_factory=dict)  # delivery id → attempts in order


async def _attempts_of(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[WebhookAttempt]]:
    found: dict[uuid.UUID, list[WebhookAttempt]] = {ident: [] for ident in ids}
    if ids:
        for attempt in await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(ids)))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
        ):
            found[attempt.delivery_id].append(attempt)
    return found


async def list_deliveries(
    ctx: AppContext,
    actor: Actor,
    *,
    first: int = 50,
    after: str | None = None,
    subscription_id: uuid.UUID | None = None,
    status: WebhookDeliveryStatus | None = None,
    event_type: str | None = None,
    customer_id: uuid.UUID | None = None,
    event_id: uuid.UUID | None = None,
) -> DeliveryPage:
    """Deliveries of the subscriptions the actor sees, newest first (by when they were queued), each with
    its attempts; two statements for any page."""
    policy.require(actor, "webhook.read")
    query = newest_first(
        policy.visible_webhook_deliveries(actor), WebhookDelivery.created_at, WebhookDelivery.id, first=first, after=after
    )
    if subscription_id is not None:
        query = query.where(WebhookDelivery.subscription_id == subscription_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if event_type is not None:
        query = query.where(WebhookDelivery.event_type == event_type)
    if customer_id is not None:
        query = query.where(WebhookDelivery.customer_id == customer_id)
    if event_id is not None:
        query = query.where(WebhookDelivery.event_id == event_id)
    async with ctx.db.read() as session:
        rows = list(await session.scalars(query))
        page, has_next, cursor = cut_page(rows, first, lambda d: encode_cursor(d.created_at, d.id))
        attempts = await _attempts_of(session, [d.id for d in page])
    return DeliveryPage(page, has_next, cursor, attempts)


async def replay_delivery(
    ctx: AppContext, actor: Actor, delivery_id: uuid.UUID
) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
    """Send a delivered or failed delivery again (staff): due now, with a fresh set of attempts, the same
    event id and body (a receiver that has it already recognises it by Entitle-Event-Id). Its subscription
    must still be active."""
    policy.require(actor, "webhook.replay")
    now = ctx.now()
    async with ctx.db.write() as session:
        delivery = await session.scalar(
            policy.visible_webhook_deliveries(actor).where(WebhookDelivery.id == delivery_id).with_for_update()
        )
        if delivery is None:
            raise NotFound("webhook delivery", delivery_id, field="id")
        if delivery.status not in (WebhookDeliveryStatus.DELIVERED, WebhookDeliveryStatus.FAILED):
            raise Conflict(
                f"webhook delivery {delivery_id} is {delivery.status.value}: it is already waiting to be sent",
                code=ErrorCode.WRONG_STATUS, field="id", status=delivery.status.value,
            )
        subscription = await session.get(WebhookSubscription, delivery.subscription_id)
        if subscription is None or not subscription.active:
            raise Conflict(
                f"the subscription of webhook delivery {delivery_id} was revoked: nothing is sent to it any more",
                code=ErrorCode.WRONG_STATUS, field="id",
            )
        before = {"status": delivery.status.value, "attempts": delivery.attempts, "last_error": delivery.last_error}
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id)
            .values(
                status=WebhookDeliveryStatus.PENDING, attempts=0, replays=WebhookDelivery.replays + 1,
                next_attempt_at=now, delivered_at=None, failed_at=None, lease_owner=None, leased_until=None,
            )
            .execution_options(synchronize_session=False)
        )
        await audit.record(
            session, ctx, actor, "webhook.replay", target_type="webhook_delivery", target_id=delivery.id,
            on_behalf_of_customer_id=delivery.customer_id,
            detail={"event_id": str(delivery.event_id), "event_type": delivery.event_type, **before},
        )
        await session.refresh(delivery)
        attempts = (await _attempts_of(session, [delivery.id]))[delivery.id]
    return delivery, attempts
