"""GraphQL of webhooks: subscriptions (created with their secret, shown once; listed; revoked), their deliveries
with every attempt, and replaying a delivery (staff)."""

from __future__ import annotations

import json
from datetime import datetime

import strawberry
from strawberry.types import Info

from api.graphql.context import RequestContext
from api.graphql.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
    mutation,
    result_union,
)
from api.graphql.ids import parse_id, require_id
from api.graphql.paging import PageInfo
from api.graphql.rows import from_row
from api.models import WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus, WebhookOwner, WebhookSubscription
from api.services import webhooks
from api.services.paging import encode_cursor

__all__ = [
    "CreateWebhookSubscriptionInput",
    "CreateWebhookSubscriptionResult",
    "ReplayWebhookDeliveryResult",
    "RevokeWebhookSubscriptionResult",
    "WebhookAttemptType",
    "WebhookDeliveryConnection",
    "WebhookDeliveryFilter",
    "WebhookDeliveryStatusEnum",
    "WebhookDeliveryType",
    "WebhookMutation",
    "WebhookOwnerEnum",
    "WebhookQuery",
    "WebhookSubscriptionConnection",
    "WebhookSubscriptionType",
]

WebhookOwnerEnum = strawberry.enum(
    WebhookOwner, name="WebhookOwner",
    description="Whose a subscription is: a customer's (its own events), a partner's (the events of the customers "
    "linked to it, as far as each link allows) or the provider's (every customer's).",
)
WebhookDeliveryStatusEnum = strawberry.enum(
    WebhookDeliveryStatus, name="WebhookDeliveryStatus",
    description="pending (waiting for its next attempt) → sending → delivered (a 2xx answer), or failed (given up; "
    "staff may replay).",
)


@strawberry.type(
    name="WebhookSubscription",
    description="Where events are sent, which ones, for whom. Its signing secret is shown only when it is created.",
)
class WebhookSubscriptionType:
    id: strawberry.ID
    owner_kind: WebhookOwnerEnum
    customer_id: strawberry.ID | None
    partner_id: strawberry.ID | None
    url: str
    description: str
    event_types: list[str] = strawberry.field(description="Event types, families (ticket.*) or * for all.")
    active: bool
    created_by: str
    created_by_name: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def build(cls, subscription: WebhookSubscription) -> WebhookSubscriptionType:
        return from_row(cls, subscription, event_types=list(subscription.event_types or []))


@strawberry.type(name="WebhookAttempt", description="One try at sending a delivery.")
class WebhookAttemptType:
    number: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None = strawberry.field(description="delivered or failed; null: the sender stopped mid-request.")
    response_code: int | None
    error: str | None
    duration_ms: int | None

    @classmethod
    def build(cls, attempt: WebhookAttempt) -> WebhookAttemptType:
        return from_row(cls, attempt)


@strawberry.type(name="WebhookDelivery", description="One event for one subscription, and how sending it went.")
class WebhookDeliveryType:
    id: strawberry.ID
    subscription_id: strawberry.ID
    event_id: strawberry.ID = strawberry.field(description="The event's id (Entitle-Event-Id), the same on every attempt.")
    event_type: str
    customer_id: strawberry.ID
    payload: strawberry.scalars.JSON = strawberry.field(description="The body sent: id, type, created_at, customer_id, data.")
    status: WebhookDeliveryStatusEnum
    attempts: int = strawberry.field(description="Attempts since it was queued or last replayed.")
    replays: int
    created_at: datetime
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None
    last_response_code: int | None
    last_error: str | None
    attempt_log: list[WebhookAttemptType] = strawberry.field(description="Every attempt, oldest first.")

    @classmethod
    def build(cls, delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> WebhookDeliveryType:
        return from_row(
            cls, delivery, payload=json.loads(delivery.payload),
            attempt_log=[WebhookAttemptType.build(a) for a in attempts],
        )


@strawberry.type
class WebhookSubscriptionEdge:
    cursor: str
    node: WebhookSubscriptionType


@strawberry.type
class WebhookSubscriptionConnection:
    edges: list[WebhookSubscriptionEdge]
    page_info: PageInfo


@strawberry.type
class WebhookDeliveryEdge:
    cursor: str
    node: WebhookDeliveryType


@strawberry.type
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge]
    page_info: PageInfo


@strawberry.input(description="Narrows `webhookDeliveries`; every given condition must hold.")
class WebhookDeliveryFilter:
    subscription_id: strawberry.ID | None = None
    status: WebhookDeliveryStatusEnum | None = None
    event_type: str | None = None
    event_id: strawberry.ID | None = None
    customer_id: strawberry.ID | None = None


@strawberry.input
class CreateWebhookSubscriptionInput:
    url: str = strawberry.field(
        description="https:// (plain http only to a loopback address, in development; in production a public host)."
    )
    event_types: list[str] = strawberry.field(
        description="Event types (ticket.filed …), families (ticket.*, entitlement.*, booking.*, report.*) or * for all."
    )
    description: str = ""


@strawberry.type
class CreateWebhookSubscriptionSuccess:
    subscription: WebhookSubscriptionType
    secret: str = strawberry.field(
        description="Signs every delivery (Entitle-Signature). Shown this once: keep it where the receiver can read it."
    )


@strawberry.type
class RevokeWebhookSubscriptionSuccess:
    subscription: WebhookSubscriptionType


@strawberry.type
class ReplayWebhookDeliverySuccess:
    delivery: WebhookDeliveryType


CreateWebhookSubscriptionResult = result_union(
    "CreateWebhookSubscriptionResult", CreateWebhookSubscriptionSuccess, ValidationError, ConflictError,
    PermissionDeniedError,
)
RevokeWebhookSubscriptionResult = result_union(
    "RevokeWebhookSubscriptionResult", RevokeWebhookSubscriptionSuccess, NotFoundError, PermissionDeniedError
)
ReplayWebhookDeliveryResult = result_union(
    "ReplayWebhookDeliveryResult", ReplayWebhookDeliverySuccess, NotFoundError, ConflictError, PermissionDeniedError
)

_EMPTY = WebhookDeliveryConnection(edges=[], page_info=PageInfo(has_next_page=False, end_cursor=None))


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="Webhook subscriptions the caller sees, newest first: its own side's (staff: all).")
    async def webhook_subscriptions(
        self, info: Info[RequestContext, None], first: int = 50, after: str | None = None, active: bool | None = None
    ) -> WebhookSubscriptionConnection:
        ctx = info.context
        page = await webhooks.list_subscriptions(ctx.app, ctx.actor, first=first, after=after, active=active)
        return WebhookSubscriptionConnection(
            edges=[
                WebhookSubscriptionEdge(cursor=encode_cursor(s.created_at, s.id), node=WebhookSubscriptionType.build(s))
                for s in page.subscriptions
            ],
            page_info=PageInfo.of(page),
        )

    @strawberry.field(description="Deliveries of the subscriptions the caller sees, newest first, with their attempts.")
    async def webhook_deliveries(
        self,
        info: Info[RequestContext, None],
        filter: WebhookDeliveryFilter | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> WebhookDeliveryConnection:
        ctx, given = info.context, filter or WebhookDeliveryFilter()
        ids = {name: getattr(given, name) for name in ("subscription_id", "event_id", "customer_id")}
        parsed = {name: None if value is None else parse_id(value) for name, value in ids.items()}
        if any(ids[name] is not None and parsed[name] is None for name in ids):
            return _EMPTY  # an id this API never gave out matches nothing
        page = await webhooks.list_deliveries(
            ctx.app, ctx.actor, first=first, after=after, status=given.status, event_type=given.event_type,
            subscription_id=parsed["subscription_id"], event_id=parsed["event_id"], customer_id=parsed["customer_id"],
        )
        return WebhookDeliveryConnection(
            edges=[
                WebhookDeliveryEdge(
                    cursor=encode_cursor(d.created_at, d.id), node=WebhookDeliveryType.build(d, page.attempts[d.id])
                )
                for d in page.deliveries
            ],
            page_info=PageInfo.of(page),
        )


@strawberry.type
class WebhookMutation:
    @mutation(
        description="Subscribe a receiver to events, for the caller's side (its customer, its partner, or the "
        "provider); the signing secret is in the result, once."
    )
    async def create_webhook_subscription(
        self, info: Info[RequestContext, None], input: CreateWebhookSubscriptionInput
    ) -> CreateWebhookSubscriptionResult:
        ctx = info.context
        subscription, secret = await webhooks.create_subscription(
            ctx.app, ctx.actor, webhooks.NewSubscription(input.url, input.event_types, input.description)
        )
        return CreateWebhookSubscriptionSuccess(subscription=WebhookSubscriptionType.build(subscription), secret=secret)

    @mutation(description="Stop a webhook subscription at once; its pending deliveries fail.")
    async def revoke_webhook_subscription(
        self, info: Info[RequestContext, None], id: strawberry.ID
    ) -> RevokeWebhookSubscriptionResult:
        ctx = info.context
        subscription = await webhooks.revoke_subscription(
            ctx.app, ctx.actor, require_id(id, "webhook subscription", "id")
        )
        return RevokeWebhookSubscriptionSuccess(subscription=WebhookSubscriptionType.build(subscription))

    @mutation(description="Send a delivered or failed webhook delivery again, due now (staff).")
    async def replay_webhook_delivery(
        self, info: Info[RequestContext, None], id: strawberry.ID
    ) -> ReplayWebhookDeliveryResult:
        ctx = info.context
        delivery, attempts = await webhooks.replay_delivery(ctx.app, ctx.actor, require_id(id, "webhook delivery", "id"))
        return ReplayWebhookDeliverySuccess(delivery=WebhookDeliveryType.build(delivery, attempts))
