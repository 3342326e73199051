"""GraphQL of e-mail deliveries (staff): what the outbox sent, is still trying or gave up on, and retrying."""

from __future__ import annotations

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
from api.graphql.ids import opt_id, parse_id, require_id
from api.graphql.paging import PageInfo
from api.graphql.rows import from_row
from api.models import OutboxMessage, OutboxStatus
from api.services import deliveries
from api.services.paging import encode_cursor

__all__ = [
    "DeliveryConnection",
    "DeliveryCountType",
    "DeliveryEdge",
    "DeliveryFilter",
    "DeliveryMutation",
    "DeliveryQuery",
    "DeliveryStatusEnum",
    "DeliveryType",
    "RetryDeliveryResult",
]

DeliveryStatusEnum = strawberry.enum(
    OutboxStatus,
    name="DeliveryStatus",
    description="queued (waiting for its next attempt) → sending → sent, or failed (given up; staff may retry).",
)


@strawberry.type(name="Delivery", description="One e-mail of the outbox and how its delivery went.")
class DeliveryType:
    id: strawberry.ID
    kind: str
    customer_id: strawberry.ID | None = strawberry.field(
        description="The customer the message is about; null for a message about a user's own account "
        "(failed logins) when the user belongs to no customer (staff, partner users)."
    )
    ticket_id: strawberry.ID | None
    recipient_kind: str
    recipient_name: str
    recipient_email: str | None
    extra_emails: list[str]
    subject: str
    message_id: str = strawberry.field(description="The SMTP Message-ID, the same on every attempt.")
    status: DeliveryStatusEnum
    attempts: int
    crash_resends: int = strawberry.field(description="Sends repeated because a sender died mid-send.")
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    send_started_at: datetime | None
    sent_at: datetime | None
    failed_at: datetime | None

    @classmethod
    def build(cls, message: OutboxMessage) -> DeliveryType:
        return from_row(cls, message, ticket_id=opt_id(message.ticket_id), extra_emails=list(message.extra_emails))


@strawberry.type
class DeliveryEdge:
    cursor: str
    node: DeliveryType


@strawberry.type
class DeliveryConnection:
    edges: list[DeliveryEdge]
    page_info: PageInfo


@strawberry.type(name="DeliveryCount")
class DeliveryCountType:
    status: DeliveryStatusEnum
    count: int


@strawberry.input(description="Narrows `deliveries`; every given condition must hold.")
class DeliveryFilter:
    status: DeliveryStatusEnum | None = None
    kind: str | None = None
    customer_id: strawberry.ID | None = None


@strawberry.type
class RetryDeliverySuccess:
    delivery: DeliveryType


RetryDeliveryResult = result_union(
    "RetryDeliveryResult", RetryDeliverySuccess, ValidationError, NotFoundError, ConflictError, PermissionDeniedError
)


@strawberry.type
class DeliveryQuery:
    @strawberry.field(description="E-mail deliveries, newest first (staff: admins and support engineers).")
    async def deliveries(
        self,
        info: Info[RequestContext, None],
        filter: DeliveryFilter | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> DeliveryConnection:
        ctx, given = info.context, filter or DeliveryFilter()
        customer = None if given.customer_id is None else parse_id(given.customer_id)
        if given.customer_id is not None and customer is None:
            return DeliveryConnection(edges=[], page_info=PageInfo(has_next_page=False, end_cursor=None))
        page = await deliveries.list_deliveries(
            ctx.app, ctx.actor, first=first, after=after, status=given.status, kind=given.kind, customer_id=customer
        )
        return DeliveryConnection(
            edges=[
                DeliveryEdge(cursor=encode_cursor(m.created_at, m.id), node=DeliveryType.build(m))
                for m in page.deliveries
            ],
            page_info=PageInfo.of(page),
        )

    @strawberry.field(description="How many deliveries are in each status (staff).")
    async def delivery_counts(self, info: Info[RequestContext, None]) -> list[DeliveryCountType]:
        ctx = info.context
        counts = await deliveries.delivery_counts(ctx.app, ctx.actor)
        return [DeliveryCountType(status=status, count=count) for status, count in counts.items()]


@strawberry.type
class DeliveryMutation:
    @mutation(description="Put a failed delivery back in the queue, due now, with its attempts reset (staff).")
    async def retry_delivery(self, info: Info[RequestContext, None], id: strawberry.ID) -> RetryDeliveryResult:
        ctx = info.context
        message = await deliveries.retry_delivery(ctx.app, ctx.actor, require_id(id, "delivery", "id"))
        return RetryDeliverySuccess(delivery=DeliveryType.build(message))
