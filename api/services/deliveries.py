"""E-mail deliveries for staff: what the outbox sent, what it is still trying, what failed and why; and
putting a failed message back in the queue."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update

from api.models import OutboxMessage, OutboxStatus
from api.services import audit, inputs, policy
from api.services.context import Actor, AppContext
from api.services.errors import Conflict, ErrorCode, NotFound, ValidationFailed
from api.services.paging import cut_page, encode_cursor, newest_first

__all__ = ["DeliveryPage", "delivery_counts", "list_deliveries", "retry_delivery"]


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[OutboxMessage]
    has_next_page: bool
    end_cursor: str | None


async def list_deliveries(
    ctx: AppContext,
    actor: Actor,
    *,
    first: int = 50,
    after: str | None = None,
    status: OutboxStatus | None = None,
    kind: str | None = None,
    customer_id: uuid.UUID | None = None,
) -> DeliveryPage:
    """Outbox messages newest first (by when they were queued), optionally of one status, kind or customer."""
    policy.require(actor, "outbox.read")
    inputs.optional_text(ctx, kind, "kind")
    query = newest_first(select(OutboxMessage), OutboxMessage.created_at, OutboxMessage.id, first=first, after=after)
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    if kind is not None:
        query = query.where(OutboxMessage.kind == kind)
    if customer_id is not None:
        query = query.where(OutboxMessage.customer_id == customer_id)
    async with ctx.db.read() as session:
        rows = list(await session.scalars(query))
    return DeliveryPage(*cut_page(rows, first, lambda row: encode_cursor(row.created_at, row.id)))


async def delivery_counts(ctx: AppContext, actor: Actor) -> dict[OutboxStatus, int]:
    """How many messages are in each status (every status present, 0 where none)."""
    policy.require(actor, "outbox.read")
    async with ctx.db.read() as session:
        result = await session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))
        found = {status: count for status, count in result}
    return {status: found.get(status, 0) for status in OutboxStatus}


async def retry_delivery(ctx: AppContext, actor: Actor, message_id: uuid.UUID) -> OutboxMessage:
    """Put a failed message (`message_id` is the outbox row's id) back in the queue, due now, with a fresh
    set of attempts. Its Message-ID stays the same. Only a failed message can be retried, and only one
    with an address to send to."""
    policy.require(actor, "outbox.retry")
    now = ctx.now()
    async with ctx.db.write() as session:
        message = await session.get(OutboxMessage, message_id, with_for_update=True)
        if message is None:
            raise NotFound("outbox message", message_id, field="id")
        if message.status != OutboxStatus.FAILED:
            raise Conflict(
                f"outbox message {message_id} is {message.status.value}: only a failed message can be retried",
                code=ErrorCode.WRONG_STATUS, field="id", status=message.status.value,
            )
        if not message.recipient_email and not message.extra_emails:
            raise ValidationFailed(
                f"outbox message {message_id} has no e-mail address to send to: retrying it would fail again",
                field="id",
            )
        before = {"attempts": message.attempts, "failed_at": message.failed_at, "last_error": message.last_error}
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status == OutboxStatus.FAILED)
            .values(status=OutboxStatus.QUEUED, attempts=0, next_attempt_at=now, failed_at=None, send_started_at=None,
                    lease_owner=None, leased_until=None)
            .execution_options(synchronize_session=False)
        )
        await audit.record(
            session, ctx, actor, "outbox.retry", target_type="outbox_message", target_id=message_id,
            on_behalf_of_customer_id=message.customer_id,
            detail={
                "dedupe_key": message.dedupe_key,
                "message_id": message.message_id,
                "attempts": before["attempts"],
                "failed_at": before["failed_at"].isoformat() if before["failed_at"] else None,
                "last_error": before["last_error"],
            },
        )
        await session.refresh(message)
    return message
