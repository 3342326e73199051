"""Tickets and their event history, from which every SLA clock is computed."""

from __future__ import annotations

import uuid
from datetime import datetime

from datetime import date

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from api.models.base import Base, HasId, utcnow

__all__ = ["OutboxMessage", "Ticket", "TicketComment", "TicketEventRecord", "TimeEntry"]


class Ticket(HasId, Base):
    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_customer_created", "customer_id", "created_at"),)

    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    contract_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contracts.id"), index=True)
    ticket_type: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    # What diagnostic work needs: the affected account, the steps followed, the result expected.
    affected_account: Mapped[str | None] = mapped_column(String(200))
    steps_followed: Mapped[str | None] = mapped_column(Text)
    expected_result: Mapped[str | None] = mapped_column(Text)
    priority_flag: Mapped[bool] = mapped_column(default=False, server_default=false())
    resolved_at: Mapped[datetime | None]
    filed_by_kind: Mapped[str] = mapped_column(String(16))
    filed_by_ref: Mapped[str] = mapped_column(String(200))
    via_partner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("partners.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketEventRecord(HasId, Base):
    """One thing that happened to a ticket. Append-only: the SLA clocks replay these."""

    __tablename__ = "ticket_events"
    __table_args__ = (UniqueConstraint("ticket_id", "position"),)

    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id"))
    # 1, 2, 3 … within the ticket: the order events happened in, even when two share an instant.
    position: Mapped[int]
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_ref: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str | None] = mapped_column(String(64))
    plan: Mapped[str | None] = mapped_column(String(64))
    automatic: Mapped[bool] = mapped_column(default=False)
    next_update_at: Mapped[datetime | None]


class TicketComment(HasId, Base):
    """A message on a ticket. Internal ones are for provider staff only; automatic ones are sent by the
    system and never count as a response."""

    __tablename__ = "ticket_comments"
    __table_args__ = (Index("ix_ticket_comments_ticket_created", "ticket_id", "created_at"),)

    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id"))
    author_kind: Mapped[str] = mapped_column(String(16))
    author_ref: Mapped[str] = mapped_column(String(200))
    author_name: Mapped[str] = mapped_column(String(200))
    internal: Mapped[bool] = mapped_column(default=False)
    automatic: Mapped[bool] = mapped_column(default=False)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TimeEntry(HasId, Base):
    """Minutes a staff member worked on a ticket. Never edited: a correction is a negative entry that
    names the one it corrects."""

    __tablename__ = "time_entries"
    __table_args__ = (
        CheckConstraint("minutes <> 0", name="minutes_not_zero"),
        Index("ix_time_entries_ticket_created", "ticket_id", "created_at"),
    )

    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id"))
    actor_ref: Mapped[str] = mapped_column(String(200))
    actor_name: Mapped[str] = mapped_column(String(200))
    minutes: Mapped[int]
    note: Mapped[str] = mapped_column(Text)
    work_date: Mapped[date]
    corrects_entry_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("time_entries.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxMessage(HasId, Base):
    """An e-mail to send, written in the same transaction as the change that causes it. The unique key
    per logical message makes a second send of it impossible."""

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_pending", "sent_at", "created_at"),)

    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    recipient_kind: Mapped[str] = mapped_column(String(16))
    recipient_name: Mapped[str] = mapped_column(String(200))
    recipient_email: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    leased_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
