"""The e-mail outbox: messages written in the transaction of the change that causes them, addressed to
whoever the provider writes to for the customer (its managing partner, or the customer) unless a
recipient is named (a client manager, a partner taking part in an activity). Delivery is a separate job;
nothing here sends."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from api.models import OutboxMessage
from api.services import access
from api.services.context import AppContext

__all__ = ["SUBJECT_MAX", "Recipient", "queue"]

SUBJECT_MAX = 300


@dataclass(frozen=True)
class Recipient:
    kind: str  # "customer", "partner" or "staff"
    name: str
    email: str | None


# INSERT … ON CONFLICT DO NOTHING on both backends Entitle runs on.
_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


async def queue(
    session: AsyncSession,
    ctx: AppContext,
    *,
    kind: str,
    customer_id: uuid.UUID,
    dedupe_key: str,
    subject: str,
    body: str,
    ticket_id: uuid.UUID | None = None,
    recipient: Recipient | None = None,
) -> uuid.UUID | None:
    """Queue one message about a customer (and a ticket, where it is about one) in the caller's
    transaction. The dedupe key names the logical message (e.g. "ticket:<id>:filed"): a second message
    with the same key is ignored, and None is returned instead of the new message's id. Without a named
    recipient it goes to the customer's correspondent: a partner-managed customer is never written to."""
    if recipient is None:
        correspondent = await access.correspondent_in(session, customer_id)
        recipient = Recipient(correspondent.kind, correspondent.name, correspondent.email)
    if len(subject) > SUBJECT_MAX:
        subject = subject[: SUBJECT_MAX - 1] + "…"
    statement = (
        _INSERT[session.get_bind().dialect.name](OutboxMessage)
        .values(
            id=uuid.uuid4(),
            dedupe_key=dedupe_key,
            kind=kind,
            ticket_id=ticket_id,
            customer_id=customer_id,
            recipient_kind=recipient.kind,
            recipient_name=recipient.name,
            recipient_email=recipient.email,
            subject=subject,
            body=body,
            created_at=ctx.now(),
            attempts=0,
        )
        # One row per logical message even when two writers race: the unique key decides, no error.
        .on_conflict_do_nothing(index_elements=[OutboxMessage.dedupe_key])
        .returning(OutboxMessage.id)
    )
    return (await session.execute(statement)).scalar_one_or_none()
