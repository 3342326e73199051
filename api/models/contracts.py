"""Contracts: one customer on one plan from an effective date to an end date."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from api.models.base import Base, HasId, utcnow

__all__ = ["Contract"]


class Contract(HasId, Base):
    __tablename__ = "contracts"
    __table_args__ = (
        CheckConstraint("end_date >= effective_date", name="term_order"),
        CheckConstraint("monthly_fee >= 0", name="fee_not_negative"),
    )

    reference: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"), index=True)
    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("plans.id"), index=True)
    effective_date: Mapped[date]
    end_date: Mapped[date]
    monthly_fee: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    # Allowances per period for buckets whose plan leaves them to the contract, in ledger units.
    custom_allowances: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    # The activities listed on the order (codes of the plan's catalog); None: the plan's whole catalog.
    catalog: Mapped[list[str] | None] = mapped_column(JSON)
    client_manager_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def is_active_on(self, day: date) -> bool:
        return self.effective_date <= day <= self.end_date
