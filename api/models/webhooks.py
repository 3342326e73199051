"""Webhooks: integrators' subscriptions to events, one delivery per event and subscription (written in the
transaction of the change that causes the event), and every attempt to send a delivery."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, Enum, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from api.models.base import Base, HasId, utcnow

__all__ = ["WebhookAttempt", "WebhookDelivery", "WebhookDeliveryStatus", "WebhookOwner", "WebhookSubscription"]


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, native_enum=False, length=16, create_constraint=True, name=name,
                values_callable=lambda members: [m.value for m in members])


class WebhookOwner(enum.StrEnum):
    CUSTOMER = "customer"  # receives its own events
    PARTNER = "partner"  # receives the events of the customers linked to it, as far as each link allows
    PROVIDER = "provider"  # receives every customer's events, internal ones included


class WebhookDeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its next attempt (next_attempt_at)
    SENDING = "sending"  # leased by a sender until leased_until
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # given up (attempts exhausted, subscription revoked, owner no longer sees it); staff may replay


class WebhookSubscription(HasId, Base):
    """Where to send which events, for whom. The secret signs every delivery (HMAC needs it in the clear);
    it is shown once, when the subscription is created, and never again."""

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (
        CheckConstraint(
            "(owner_kind = 'customer' AND customer_id IS NOT NULL AND partner_id IS NULL)"
            " OR (owner_kind = 'partner' AND partner_id IS NOT NULL AND customer_id IS NULL)"
            " OR (owner_kind = 'provider' AND customer_id IS NULL AND partner_id IS NULL)",
            name="owner_target",
        ),
        # Emission's one query: the active subscriptions of the provider, of a customer, of its partners.
        Index("ix_webhook_subscriptions_owner", "active", "owner_kind"),
        Index("ix_webhook_subscriptions_customer_id", "customer_id"),
        Index("ix_webhook_subscriptions_partner_id", "partner_id"),
        Index("ix_webhook_subscriptions_created", "created_at", "id"),
    )

    owner_kind: Mapped[WebhookOwner] = mapped_column(_enum(WebhookOwner, "webhook_owner"))
    customer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customers.id"))
    partner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("partners.id"))
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # Event types and families ("ticket.*"), or "*" for all.
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str] = mapped_column(String(200))  # the actor's ref
    created_by_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(200))


class WebhookDelivery(HasId, Base):
    """One event for one subscription. The unique (subscription, event) pair makes a second delivery of an
    event to a subscription impossible; `payload` holds the exact body, so every attempt sends the same bytes."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # The sender's one query: due deliveries (pending, or sending with an expired lease), oldest due first.
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        # Lists, newest first: all, per subscription, per customer, per event.
        Index("ix_webhook_deliveries_created", "created_at", "id"),
        Index("ix_webhook_deliveries_subscription_created", "subscription_id", "created_at"),
        Index("ix_webhook_deliveries_customer_created", "customer_id", "created_at"),
        Index("ix_webhook_deliveries_event_id", "event_id"),
    )

    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_subscriptions.id"))
    event_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    payload: Mapped[str] = mapped_column(Text)  # the JSON body, exactly as sent
    status: Mapped[WebhookDeliveryStatus] = mapped_column(
        _enum(WebhookDeliveryStatus, "webhook_delivery_status"), default=WebhookDeliveryStatus.PENDING
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When a sender may take it: creation, then each retry's backoff; while leased, the lease's end.
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)  # attempts since it was queued or last replayed
    replays: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    leased_until: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_response_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class WebhookAttempt(HasId, Base):
    """One try at sending a delivery: recorded before the request goes out, completed with its outcome. One
    left without an outcome belongs to a sender that stopped mid-request."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "number"),)

    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_deliveries.id"))
    number: Mapped[int]  # 1, 2, 3 … over the delivery's whole life, replays included
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(16))  # "delivered" or "failed"; None: interrupted
    response_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None]
