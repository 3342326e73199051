"""Outages of the service (for one contract, or for every contract of a program) and on-call days
reserved on a contract's on-call add-on."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, Enum, ForeignKey, Index, Numeric, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from api.models.base import Base, HasId, Money, utcnow

__all__ = ["OnCallReservation", "OnCallStatus", "Outage"]


class Outage(HasId, Base):
    """Downtime staff recorded: from `started_at` to `ended_at` (UTC), impacting a share of the service.
    It concerns one contract, or every contract of a program (`program_id`), never both."""

    __tablename__ = "outages"
    __table_args__ = (
        CheckConstraint("ended_at > started_at", name="ends_after_start"),
        CheckConstraint("impacted_portion > 0 AND impacted_portion <= 1", name="portion_in_range"),
        CheckConstraint(
            "(contract_id IS NULL) <> (program_id IS NULL)", name="one_scope"
        ),
        Index("ix_outages_contract_started", "contract_id", "started_at"),
        Index("ix_outages_program_started", "program_id", "started_at"),
        Index("ix_outages_started_at", "started_at"),
    )

    contract_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contracts.id"))
    program_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("programs.id"))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    impacted_portion: Mapped[Decimal] = mapped_column(Numeric(5, 4, asdecimal=True))
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_by_ref: Mapped[str] = mapped_column(String(200))
    created_by_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OnCallStatus(enum.StrEnum):
    RESERVED = "reserved"
    CANCELLED = "cancelled"


class OnCallReservation(HasId, Base):
    """Whole consultant-days of on-call readiness reserved for one day of a contract, at a day rate in the
    add-on's currency. Cancelled before the day, it is not charged."""

    __tablename__ = "on_call_reservations"
    __table_args__ = (
        CheckConstraint("consultants >= 1", name="consultants_positive"),
        CheckConstraint("day_rate >= 0", name="rate_not_negative"),
        Index("ix_on_call_reservations_contract_on", "contract_id", "on_date"),
        # One live reservation per contract and day: more consultants is a larger reservation.
        Index(
            "uq_on_call_reservations_contract_day",
            "contract_id",
            "on_date",
            unique=True,
            sqlite_where=text("status = 'reserved'"),
            postgresql_where=text("status = 'reserved'"),
        ),
    )

    contract_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contracts.id"))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"), index=True)
    add_on_code: Mapped[str] = mapped_column(String(64))
    on_date: Mapped[date]
    consultants: Mapped[int]
    day_rate: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    window: Mapped[str | None] = mapped_column(String(32))  # one of the add-on's windows (evenings, weekends)
    status: Mapped[OnCallStatus] = mapped_column(
        Enum(OnCallStatus, native_enum=False, length=16, create_constraint=True, name="on_call_status",
             values_callable=lambda members: [m.value for m in members])
    )
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_by_kind: Mapped[str] = mapped_column(String(16))
    created_by_ref: Mapped[str] = mapped_column(String(200))
    created_by_name: Mapped[str] = mapped_column(String(200))
    via_partner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("partners.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[datetime | None]
    cancelled_by_ref: Mapped[str | None] = mapped_column(String(200))
