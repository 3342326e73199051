"""SQLAlchemy tables, one module per aggregate; importing this registers them all on Base.metadata."""

from api.models.audit import AuditEntry
from api.models.availability import OnCallReservation, OnCallStatus, Outage
from api.models.base import Base
from api.models.bookings import Booking, BookingPartner, BookingStatus, CalendarFeed
from api.models.contracts import Contract
from api.models.identity import (
    ApiToken,
    LoginAlert,
    LoginFailure,
    StaffRole,
    TokenAccess,
    TokenScope,
    User,
    UserKind,
    UserSession,
)
from api.models.ledger import EntitlementBalance, LedgerEntry, LedgerKind
from api.models.parties import Customer, Partner, PartnerCustomer
from api.models.programs import PlanRecord, ProgramRecord
from api.models.tickets import OutboxMessage, OutboxStatus, Ticket, TicketComment, TicketEventRecord, TimeEntry
from api.models.webhooks import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookOwner,
    WebhookSubscription,
)

__all__ = [
    "ApiToken",
    "AuditEntry",
    "OnCallReservation",
    "OnCallStatus",
    "Outage",
    "LoginAlert",
    "LoginFailure",
    "StaffRole",
    "OutboxMessage",
    "OutboxStatus",
    "Ticket",
    "TicketComment",
    "TicketEventRecord",
    "TimeEntry",
    "TokenAccess",
    "TokenScope",
    "User",
    "UserKind",
    "UserSession",
    "Base",
    "Booking",
    "BookingPartner",
    "BookingStatus",
    "CalendarFeed",
    "Contract",
    "Customer",
    "EntitlementBalance",
    "LedgerEntry",
    "LedgerKind",
    "Partner",
    "PartnerCustomer",
    "PlanRecord",
    "ProgramRecord",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookDeliveryStatus",
    "WebhookOwner",
    "WebhookSubscription",
]
