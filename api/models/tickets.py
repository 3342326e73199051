"""Tickets and their event history, from which every SLA clock is computed."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.models.base import Base, HasId, utcnow

__all__ = ["Ticket", "TicketEventRecord"]


class Ticket(HasId, Base):
    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_customer_created", "customer_id", "created_at"),)

    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    contract_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contracts.id"), index=True)
    ticket_type: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(300))
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
