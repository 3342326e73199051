"""Tickets and their event history, from which every SLA clock is computed."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import JSON, CheckConstraint, Enum, ForeignKey, Index, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column

from api.models.base import Base, HasId, utcnow

__all__ = [
    "OPEN_STATUSES", "OutboxMessage", "OutboxStatus", "Ticket", "TicketComment", "TicketEventRecord", "TimeEntry",
]

# A ticket in one of these is open: it is in the staff queue and counts on the homes.
OPEN_STATUSES = ("new", "acknowledged", "in_progress", "waiting_on_customer")
_OPEN = f"status IN ({', '.join(repr(status) for status in OPEN_STATUSES)})"


class Ticket(HasId, Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_customer_created", "customer_id", "created_at"),
        # The staff queue: open tickets by the nearest due instant (none last), then oldest first.
        Index("ix_tickets_open_due", "sla_due_at", "created_at", "id", postgresql_where=text(_OPEN), sqlite_where=text(_OPEN)),
        # The list's order, newest first by (created_at, id): a page is read in index order, never sorted.
        Index("ix_tickets_created", "created_at", "id"),
        Index("ix_tickets_filed_by_created", "filed_by_ref", "created_at", "id"),  # the filedBy filter
        Index("ix_tickets_status_created", "status", "created_at", "id"),  # the status filter
    )

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
    # The earliest instant an SLA target not yet met falls due, as of the ticket's latest event: due instants
    # move only when something happens to the ticket, so it is kept with each event and the queue can sort
    # by it in SQL. Null: no target running (met, paused, as time permits, or no SLA).
    sla_due_at: Mapped[datetime | None]
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


class OutboxStatus(enum.StrEnum):
    QUEUED = "queued"  # waiting for its next attempt (next_attempt_at)
    SENDING = "sending"  # leased by a sender until leased_until; in doubt if send_started_at is set
    SENT = "sent"
    FAILED = "failed"  # given up: no address, or max attempts reached; staff may put it back


class OutboxMessage(HasId, Base):
    """An e-mail to send, written in the same transaction as the change that causes it. The unique key
    per logical message makes a second send of it impossible, and its Message-ID, derived from that key,
    lets a receiver recognise a resend after a crash as the same message."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        # The sender's one query: due messages (queued, or sending with an expired lease) oldest due first.
        Index("ix_outbox_messages_due", "status", "next_attempt_at"),
        # Staff lists, newest first: all, by status (the failures), by customer.
        Index("ix_outbox_messages_created", "created_at", "id"),
        Index("ix_outbox_messages_status_created", "status", "created_at"),
        Index("ix_outbox_messages_customer_created", "customer_id", "created_at"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
    )

    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    # None for a message about a user's own account (failed logins) when the user belongs to no customer.
    customer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customers.id"))
    recipient_kind: Mapped[str] = mapped_column(String(16))
    recipient_name: Mapped[str] = mapped_column(String(200))
    recipient_email: Mapped[str | None] = mapped_column(String(254))
    # More To addresses (a customer's several report contacts); the recipient above stays the first.
    extra_emails: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)  # the HTML alternative, where there is one
    # "<sha256(dedupe_key)[:32]@from-domain>", fixed when queued: every resend carries the same one. Unique
    # through dedupe_key; not a unique index of its own, which would turn a race of two writers queueing
    # the same key into an error instead of the ON CONFLICT (dedupe_key) DO NOTHING it is.
    message_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[OutboxStatus] = mapped_column(
        Enum(OutboxStatus, native_enum=False, length=16, create_constraint=True, name="outbox_status",
             values_callable=lambda members: [m.value for m in members]),
        default=OutboxStatus.QUEUED,
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When a sender may take it: creation, then each retry's backoff; while leased, the lease's end.
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)  # sends started
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    leased_until: Mapped[datetime | None]
    # Committed before the send and cleared when a failure is recorded: set without sent_at once the
    # lease has expired means the sender died during the send, which may or may not have reached the server.
    send_started_at: Mapped[datetime | None]
    crash_resends: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
