"""Customers, partners and the link that says which partner manages which customer."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import JSON, ForeignKey, String, false, true
from sqlalchemy.orm import Mapped, mapped_column

from api.models.base import Base, HasId, utcnow

__all__ = ["Customer", "Partner", "PartnerCustomer"]


class Customer(HasId, Base):
    __tablename__ = "customers"

    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    country: Mapped[str | None] = mapped_column(String(2))
    # Who receives the monthly consumption report (e-mail addresses); empty: the customer's own address.
    # Never written to while a partner manages the customer: its reports go to the partner.
    report_contacts: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Partner(HasId, Base):
    __tablename__ = "partners"

    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    certified_until_date: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PartnerCustomer(Base):
    __tablename__ = "partner_customers"

    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"), primary_key=True, index=True)
    # Managed: the partner intermediates all communication; the provider writes to it, never the customer.
    managed: Mapped[bool] = mapped_column(default=True)
    production_access: Mapped[bool] = mapped_column(default=False)
    # What the customer lets this partner do on its behalf.
    can_file_tickets: Mapped[bool] = mapped_column(default=True, server_default=true())
    can_view_entitlements: Mapped[bool] = mapped_column(default=True, server_default=true())
    can_book_activities: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
