"""The e-mail outbox: messages written in the transaction of the change that causes them, addressed to
whoever the provider writes to for the customer (its managing partner, or the customer) unless a
recipient is named (a client manager, a partner taking part in an activity). Delivery is a separate job
(api/jobs/sender.py); nothing here sends."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from api.mail import message_id_for
from api.models import OutboxMessage, OutboxStatus
from api.services import access
from api.services.context import AppContext

__all__ = ["SUBJECT_MAX", "Message", "Recipient", "queue", "queue_all", "queued_keys"]

SUBJECT_MAX = 300


@dataclass(frozen=True)
class Recipient:
    kind: str  # "customer", "partner" or "staff"
    name: str
    email: str | None


@dataclass(frozen=True)
class Message:
    kind: str
    customer_id: uuid.UUID | None  # None only for a message about a user's own account that belongs to no customer
    dedupe_key: str  # names the logical message: a second one with the same key is never queued
    subject: str
    body: str
    recipient: Recipient
    ticket_id: uuid.UUID | None = None
    html_body: str | None = None  # the HTML alternative to `body`, where there is one
    extra_emails: tuple[str, ...] = ()  # more To addresses (a customer's report contacts), beside the recipient's


# INSERT … ON CONFLICT DO NOTHING on both backends Entitle runs on.
_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
# Rows per INSERT statement: well inside SQLite's limit on bound parameters.
_CHUNK = 500


async def queue(
    session: AsyncSession,
    ctx: AppContext,
    *,
    kind: str,
    customer_id: uuid.UUID | None,
    dedupe_key: str,
    subject: str,
    body: str,
    ticket_id: uuid.UUID | None = None,
    recipient: Recipient | None = None,
) -> uuid.UUID | None:
    """Queue one message about a customer (and a ticket, where it is about one) in the caller's
    transaction. The dedupe key names the logical message (e.g. "ticket:<id>:filed"): a second message
    with the same key is ignored, and None is returned instead of the new message's id. Without a named
    recipient it goes to the customer's correspondent: a partner-managed customer is never written to.
    A message about no customer (customer_id None, e.g. failed logins of a staff user) names its recipient."""
    if recipient is None:
        if customer_id is None:
            raise ValueError("a message about no customer needs a named recipient")
        correspondent = await access.correspondent_in(session, customer_id)
        recipient = Recipient(correspondent.kind, correspondent.name, correspondent.email)
    queued = await queue_all(session, ctx, [Message(kind, customer_id, dedupe_key, subject, body, recipient, ticket_id)])
    return queued[0] if queued else None


async def queue_all(session: AsyncSession, ctx: AppContext, messages: Sequence[Message]) -> list[uuid.UUID]:
    """Queue many messages in the caller's transaction, a few statements for any number; returns the ids
    of those newly queued (a message whose key is already queued is skipped, even when two writers race:
    the unique key decides, no error)."""
    insert = _INSERT[session.get_bind().dialect.name]
    now = ctx.now()
    queued: list[uuid.UUID] = []
    for start in range(0, len(messages), _CHUNK):
        rows = [
            {
                "id": uuid.uuid4(),
                "dedupe_key": m.dedupe_key,
                "kind": m.kind,
                "ticket_id": m.ticket_id,
                "customer_id": m.customer_id,
                "recipient_kind": m.recipient.kind,
                "recipient_name": m.recipient.name,
                "recipient_email": m.recipient.email,
                "subject": m.subject if len(m.subject) <= SUBJECT_MAX else m.subject[: SUBJECT_MAX - 1] + "…",
                "body": m.body,
                "html_body": m.html_body,
                "extra_emails": list(m.extra_emails),
                "message_id": message_id_for(m.dedupe_key, ctx.settings.mail_from),
                "status": OutboxStatus.QUEUED,
                "created_at": now,
                "next_attempt_at": now,
                "attempts": 0,
                "crash_resends": 0,
            }
            for m in messages[start : start + _CHUNK]
        ]
        statement = (
            insert(OutboxMessage)
            .values(rows)
            .on_conflict_do_nothing(index_elements=[OutboxMessage.dedupe_key])
            .returning(OutboxMessage.id)
        )
        queued += (await session.execute(statement)).scalars()
    return queued


async def queued_keys(session: AsyncSession, keys: Sequence[str]) -> set[str]:
    """Which of these dedupe keys are queued already."""
    found: set[str] = set()
    for start in range(0, len(keys), _CHUNK):
        found |= set(
            await session.scalars(
                select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.in_(keys[start : start + _CHUNK]))
            )
        )
    return found
