"""Bookings of catalog activities against a contract's quota, the partners taking part in them, and
the secret calendar feeds that publish them."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.models.base import Base, HasId, utcnow

__all__ = ["Booking", "BookingPartner", "BookingStatus", "CalendarFeed"]


class BookingStatus(enum.StrEnum):
    REQUESTED = "requested"
    SCHEDULED = "scheduled"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class Booking(HasId, Base):
    """One catalog activity requested for a contract. Its units are consumed from the period containing
    its date when it is requested (the ledger entry names the booking) and given back if it is cancelled."""

    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint("units > 0", name="units_positive"),
        CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("requested_date >= period_start AND requested_date <= period_end", name="date_in_period"),
        Index("ix_bookings_contract_created", "contract_id", "created_at"),
        Index("ix_bookings_customer_created", "customer_id", "created_at"),
    )

    contract_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contracts.id"))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    # The activity as the catalog described it when booked: later wording changes do not rewrite bookings.
    activity_code: Mapped[str] = mapped_column(String(64))
    activity_name: Mapped[str] = mapped_column(String(200))
    bucket_code: Mapped[str] = mapped_column(String(64))
    units: Mapped[int] = mapped_column(BigInteger)  # ledger units: activities, or minutes
    # The period charged: the one containing the requested date; scheduling stays inside it.
    period_start: Mapped[date]
    period_end: Mapped[date]
    requested_date: Mapped[date]
    status: Mapped[BookingStatus] = mapped_column(
        Enum(BookingStatus, native_enum=False, length=16, create_constraint=True, name="booking_status",
             values_callable=lambda members: [m.value for m in members])
    )
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    staff_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    requested_by_kind: Mapped[str] = mapped_column(String(16))
    requested_by_ref: Mapped[str] = mapped_column(String(200))
    requested_by_name: Mapped[str] = mapped_column(String(200))
    via_partner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("partners.id"))
    delivered_at: Mapped[datetime | None]
    delivery_note: Mapped[str | None] = mapped_column(Text)
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    # Raised at every change calendars should pick up (iCalendar SEQUENCE).
    revision: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class BookingPartner(Base):
    """A solution partner taking part in a booked activity, which the customer allowed."""

    __tablename__ = "booking_partners"

    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id"), primary_key=True)
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partners.id"), primary_key=True, index=True)
    added_by_ref: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CalendarFeed(HasId, Base):
    """A secret URL publishing one contract's scheduled activities and period ends as iCalendar. Only
    the secret's hash is kept; revoking it stops the URL at once."""

    __tablename__ = "calendar_feeds"

    contract_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contracts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_ref: Mapped[str] = mapped_column(String(200))
    created_by_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
