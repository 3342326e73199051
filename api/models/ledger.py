"""The append-only entitlement ledger and the per-period balance kept beside it."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.models.base import Base, HasId, utcnow

__all__ = ["EntitlementBalance", "LedgerEntry", "LedgerKind"]


class LedgerKind(enum.StrEnum):
    CONSUME = "consume"
    REVERSE = "reverse"
    ADJUST = "adjust"
    # Work past an empty bucket, where the plan records it rather than refusing: reported, never hidden,
    # and kept apart from `consumed` so the allowance still holds.
    OVERAGE = "overage"


class LedgerEntry(HasId, Base):
    """One signed movement of a bucket in one period. Never updated, never deleted."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("contract_id", "idempotency_key"),
        CheckConstraint("quantity <> 0", name="quantity_not_zero"),
        Index("ix_ledger_entries_contract_created", "contract_id", "created_at", "id"),
        Index("ix_ledger_entries_period", "contract_id", "bucket_code", "period_start"),
    )

    contract_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contracts.id"))
    bucket_code: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[date]
    period_end: Mapped[date]
    # In ledger units: activities, or minutes for hours buckets. Positive consumes, negative restores.
    quantity: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[LedgerKind] = mapped_column(
        Enum(LedgerKind, native_enum=False, length=16, create_constraint=True, name="ledger_kind",
             values_callable=lambda kinds: [k.value for k in kinds])
    )
    reason: Mapped[str] = mapped_column(Text)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_ref: Mapped[str] = mapped_column(String(200))
    on_behalf_of_customer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customers.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    reverses_entry_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_entries.id"), unique=True)
    # A deduction for support work: the ticket, and the time entry that caused it (none for the
    # minimum deducted when a conversation opens).
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    time_entry_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("time_entries.id"))
    # A booked activity: its consumption, or the reversal when it was cancelled.
    booking_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bookings.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EntitlementBalance(Base):
    """Allowance and consumption of one bucket in one period, kept in the same transaction as
    every ledger entry so balances are read without summing the ledger."""

    __tablename__ = "entitlement_balances"
    __table_args__ = (
        CheckConstraint("consumed >= 0", name="consumed_not_negative"),
        CheckConstraint("consumed <= allowance", name="within_allowance"),
        CheckConstraint("overage >= 0", name="overage_not_negative"),
    )

    contract_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contracts.id"), primary_key=True)
    bucket_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    period_start: Mapped[date] = mapped_column(primary_key=True)
    period_end: Mapped[date]
    allowance: Mapped[int] = mapped_column(BigInteger)
    consumed: Mapped[int] = mapped_column(BigInteger, default=0)
    overage: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
