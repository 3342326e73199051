"""The access policy, end to end: every Query and Mutation field, for every kind of caller, against an
object the caller represents ("own") and one it does not ("foreign"), over HTTP with real credentials.

EXPECTED is written out by hand from the access rules (issue 3 and the README's "Who can do what"),
not derived from api/services/policy.py, so a mistake in the policy table shows up here.

Outcomes:
  allow            the success type, or the data asked for
  deny             PermissionDeniedError / a read refused with a permission error: the caller may never
                   take this action, whatever the object
  hidden           null, an empty list, NotFoundError or the out-of-scope answer: exactly what a
                   nonexistent object gets (checked against a random id for every foreign row)
  unauthenticated  HTTP 401
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import graphql
import httpx
import pytest
from sqlalchemy import func, select, update

from api.auth import CSRF_HEADER, SESSION_COOKIE
from api.config import PROJECT_ROOT, Settings
from api.db import Database
from api.graphql.schema import build_schema
from api.models import (
    AuditEntry,
    Customer,
    LedgerEntry,
    OnCallReservation,
    OnCallStatus,
    Outage,
    OutboxMessage,
    OutboxStatus,
    StaffRole,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookSubscription,
    TokenAccess,
    TokenScope,
    UserKind,
)
from api.services import (
    availability,
    bookings,
    calendar_feeds,
    contracts,
    identity,
    ledger,
    on_call,
    outbox,
    parties,
    tickets,
    webhooks,
)
from api.services.context import Actor, AppContext, FixedClock
from tests.conftest import ADMIN, NOW, unique

PASSWORD = "matrix password, long enough"

U, A, D, H = "unauthenticated", "allow", "deny", "hidden"

# ---- the callers ---------------------------------------------------------------------------------

ACTORS = (
    "anonymous",
    "customer",  # user of customer A
    "partner",  # user of partner P: linked to A (managed, can view entitlements, can file tickets)
    "partner_unlinked",  # user of partner U, linked to no customer
    "support_engineer",
    "client_manager",  # assigned to A's contract, not to B's
    "admin",
    "customer_read_token",  # scoped to A
    "customer_rw_token",  # scoped to A
    "partner_rw_token",  # scoped to P
    "provider_read_token",  # an integrator, read only
    "provider_rw_token",  # an integrator
)

# ---- the expected outcomes, by hand ----------------------------------------------------------------
#
# target "own": customer A (its contract CA, partner P linked to A); "foreign": customer B (contract CB,
# not assigned to the client manager, partner F linked to B only); "-": the operation names no object.
#
# Decisions where the rules leave room (see the module's report):
# * An action a caller may never take is "deny" for own and foreign alike; that answer names no object
#   and is the same for a nonexistent one (checked). An action it may take on objects outside its reach
#   is "hidden".
# * Provider staff (client managers too) see every customer, its out-of-scope list and filing check;
#   a client manager sees only the contracts assigned to them, and their ledgers.
# * The audit log is staff-only; admins and support engineers read all of it, a client manager what
#   concerns the customers of the contracts assigned to them (and their own actions).
# * Partners: a partner sees itself only; customers may not list partners.
# * A client manager may create customers and contracts (for any customer), consume and reverse on the
#   contracts assigned to them; linking a partner to a customer (which hands the partner the customer's
#   data) is for admins and integrators only.
# * checkFiling: any answer past the access check (allowed, or "no contract offers this ticket type")
#   counts as "allow".
# * Tickets: customers and partners (and their read-write tokens) file and comment on their own; a
#   customer or partner filing for someone else gets the out-of-scope answer ("hidden"). Moving a new
#   ticket along (transitionTicket) and logging time are for staff: on its own ticket the customer's side
#   is denied. A client manager works on the tickets of the contracts assigned to them, and may file for
#   any customer (like createContract); the ticket it files elsewhere then comes back as null.
# * Bookings: the customer books and cancels on its own contracts, a partner where it manages the customer
#   and the link lets it book (P's does), the client manager on the contracts assigned to them; scheduling and
#   delivering are the provider's (client manager, admin, integrator). Support engineers read bookings but
#   do not book. Calendar feeds: whoever may book may create and revoke them; a partner that does not manage
#   the customer creates and revokes only its own (see test_a_partner_that_does_not_manage_the_customer).
# * Service levels: outages are the provider's record, so recordOutage (on a contract) is for admins,
#   integrators and the contract's client manager (program-wide for admins and integrators only, checked in
#   test_availability_api.py); customers, partners and support engineers are denied. serviceCredit and outages
#   are read by whoever reads the contract. On-call days follow the booking rules (reserveOnCall and
#   cancelOnCall as bookActivity and cancelBooking): support engineers read them but do not reserve.
# * Reports: consumptionReport (own or foreign contract, March 2026) is read by whoever reads the contract,
#   and answers null where the contract would. setReportContacts is for admins, integrators and a client
#   manager on the customers of the contracts assigned to them; for another customer the client manager
#   gets what a nonexistent one gets ("hidden"), as for every action it may take on objects outside its reach.
# * E-mail deliveries name every customer's correspondents: admins and support engineers read them
#   (deliveries, deliveryCounts) and retry failed ones (retryDelivery); everyone else is denied, provider
#   tokens included. deliveries is filtered to the target customer's messages (like auditLog), with the
#   same answer for own and foreign; deliveryCounts names no object.
# * Webhooks: each side subscribes for itself (createWebhookSubscription names no object: a customer's caller
#   subscribes for its customer, a partner's for its partner, admins and integrators for the provider); a read-only
#   token, a support engineer and a client manager may not. A subscription is seen, with its deliveries, by its
#   own side and by provider staff (admins, support engineers, integrators; not a client manager, who is denied):
#   the target's subscription is customer A's ("own") or B's ("foreign"), so partner P, which only reads its own
#   subscriptions, gets "hidden" for both. Revoking is for the owner's side, admins and integrators. Replaying a
#   delivery is for staff: admins and support engineers, as retryDelivery.
#
#                                  anon cust part unlk supp  cm  admin c_rd c_rw p_rw v_rd v_rw
ROWS: dict[tuple[str, str], tuple[str, ...]] = {
    ("programs", "-"):             (U,   A,   A,   A,   A,   A,   A,   A,   A,   A,   A,   A),
    ("program", "-"):              (U,   A,   A,   A,   A,   A,   A,   A,   A,   A,   A,   A),
    ("customers", "own"):          (U,   A,   A,   H,   A,   A,   A,   A,   A,   A,   A,   A),
    ("customers", "foreign"):      (U,   H,   H,   H,   A,   A,   A,   H,   H,   H,   A,   A),
    ("customer", "own"):           (U,   A,   A,   H,   A,   A,   A,   A,   A,   A,   A,   A),
    ("customer", "foreign"):       (U,   H,   H,   H,   A,   A,   A,   H,   H,   H,   A,   A),
    ("partners", "own"):           (U,   D,   A,   H,   A,   A,   A,   D,   D,   A,   A,   A),
    ("partners", "foreign"):       (U,   D,   H,   H,   A,   A,   A,   D,   D,   H,   A,   A),
    ("contracts", "own"):          (U,   A,   A,   H,   A,   A,   A,   A,   A,   A,   A,   A),
    ("contracts", "foreign"):      (U,   H,   H,   H,   A,   H,   A,   H,   H,   H,   A,   A),
    ("contract", "own"):           (U,   A,   A,   H,   A,   A,   A,   A,   A,   A,   A,   A),
    ("contract", "foreign"):       (U,   H,   H,   H,   A,   H,   A,   H,   H,   H,   A,   A),
    ("me", "-"):                   (U,   A,   A,   A,   A,   A,   A,   A,   A,   A,   A,   A),
    ("users", "-"):                (U,   D,   D,   D,   D,   D,   A,   D,   D,   D,   D,   D),
    ("apiTokens", "-"):            (U,   D,   D,   D,   D,   D,   A,   D,   D,   D,   D,   D),
    ("auditLog", "own"):           (U,   D,   D,   D,   A,   A,   A,   D,   D,   D,   D,   D),
    ("auditLog", "foreign"):       (U,   D,   D,   D,   A,   H,   A,   D,   D,   D,   D,   D),
    ("outOfScope", "own"):         (U,   A,   A,   H,   A,   A,   A,   A,   A,   A,   A,   A),
    ("outOfScope", "foreign"):     (U,   H,   H,   H,   A,   A,   A,   H,   H,   H,   A,   A),
    ("checkFiling", "own"):        (U,   A,   A,   H,   A,   A,   A,   A,   A,   A,   A,   A),
    ("checkFiling", "foreign"):    (U,   H,   H,   H,   A,   A,   A,   H,   H,   H,   A,   A),
    ("ticket", "own"):             (U,   A,   A,   H,   A,   A,   A,   A,   A,   A,   A,   A),
    ("ticket", "foreign"):         (U,   H,   H,   H,   A,   H,   A,   H,   H,   H,   A,   A),
    ("tickets", "own"):            (U,   A,   A,   H,   A,   A,   A,   A,   A,   A,   A,   A),
    ("tickets", "foreign"):        (U,   H,   H,   H,   A,   H,   A,   H,   H,   H,   A,   A),
    ("calendarWindows", "-"):      (U,   A,   A,   A,   A,   A,   A,   A,   A,   A,   A,   A),
    ("createCustomer", "-"):       (U,   D,   D,   D,   D,   A,   A,   D,   D,   D,   D,   A),
    ("createPartner", "-"):        (U,   D,   D,   D,   D,   D,   A,   D,   D,   D,   D,   A),
    ("linkPartner", "own"):        (U,   D,   D,   D,   D,   D,   A,   D,   D,   D,   D,   A),
    ("linkPartner", "foreign"):    (U,   D,   D,   D,   D,   D,   A,   D,   D,   D,   D,   A),
    ("createContract", "own"):     (U,   D,   D,   D,   D,   A,   A,   D,   D,   D,   D,   A),
    ("createContract", "foreign"): (U,   D,   D,   D,   D,   A,   A,   D,   D,   D,   D,   A),
    ("consumeEntitlement", "own"):     (U, D, D, D, A, A, A, D, D, D, D, A),
    ("consumeEntitlement", "foreign"): (U, D, D, D, A, H, A, D, D, D, D, A),
    ("reverseEntry", "own"):       (U,   D,   D,   D,   D,   A,   A,   D,   D,   D,   D,   A),
    ("reverseEntry", "foreign"):   (U,   D,   D,   D,   D,   H,   A,   D,   D,   D,   D,   A),
    ("adjustEntitlement", "own"):     (U, D, D, D, D, D, A, D, D, D, D, D),
    ("adjustEntitlement", "foreign"): (U, D, D, D, D, D, A, D, D, D, D, D),
    ("loadProgram", "-"):          (U,   D,   D,   D,   D,   D,   A,   D,   D,   D,   D,   D),
    ("createUser", "own"):         (U,   D,   D,   D,   D,   D,   A,   D,   D,   D,   D,   D),
    ("createUser", "foreign"):     (U,   D,   D,   D,   D,   D,   A,   D,   D,   D,   D,   D),
    ("createApiToken", "own"):     (U,   D,   D,   D,   D,   D,   A,   D,   D,   D,   D,   D),
    ("createApiToken", "foreign"): (U,   D,   D,   D,   D,   D,   A,   D,   D,   D,   D,   D),
    ("revokeApiToken", "own"):     (U,   D,   D,   D,   D,   D,   A,   D,   D,   D,   D,   D),
    ("revokeApiToken", "foreign"): (U,   D,   D,   D,   D,   D,   A,   D,   D,   D,   D,   D),
    ("fileTicket", "own"):         (U,   A,   A,   H,   A,   A,   A,   D,   A,   A,   D,   A),
    ("fileTicket", "foreign"):     (U,   H,   H,   H,   A,   A,   A,   D,   H,   H,   D,   A),
    ("transitionTicket", "own"):     (U, D, D, H, A, A, A, D, D, D, D, A),
    ("transitionTicket", "foreign"): (U, H, H, H, A, H, A, D, H, H, D, A),
    ("addComment", "own"):         (U,   A,   A,   H,   A,   A,   A,   D,   A,   A,   D,   A),
    ("addComment", "foreign"):     (U,   H,   H,   H,   A,   H,   A,   D,   H,   H,   D,   A),
    ("logTime", "own"):            (U,   D,   D,   D,   A,   A,   A,   D,   D,   D,   D,   A),
    ("logTime", "foreign"):        (U,   D,   D,   D,   A,   H,   A,   D,   D,   D,   D,   A),
    ("activityCatalog", "-"):      (U,   A,   A,   A,   A,   A,   A,   A,   A,   A,   A,   A),
    ("bookings", "own"):           (U,   A,   A,   H,   A,   A,   A,   A,   A,   A,   A,   A),
    ("bookings", "foreign"):       (U,   H,   H,   H,   A,   H,   A,   H,   H,   H,   A,   A),
    ("booking", "own"):            (U,   A,   A,   H,   A,   A,   A,   A,   A,   A,   A,   A),
    ("booking", "foreign"):        (U,   H,   H,   H,   A,   H,   A,   H,   H,   H,   A,   A),
    ("bookActivity", "own"):       (U,   A,   A,   H,   D,   A,   A,   D,   A,   A,   D,   A),
    ("bookActivity", "foreign"):   (U,   H,   H,   H,   D,   H,   A,   D,   H,   H,   D,   A),
    ("scheduleBooking", "own"):    (U,   D,   D,   D,   D,   A,   A,   D,   D,   D,   D,   A),
    ("scheduleBooking", "foreign"): (U,  D,   D,   D,   D,   H,   A,   D,   D,   D,   D,   A),
    ("deliverBooking", "own"):     (U,   D,   D,   D,   D,   A,   A,   D,   D,   D,   D,   A),
    ("deliverBooking", "foreign"): (U,   D,   D,   D,   D,   H,   A,   D,   D,   D,   D,   A),
    ("cancelBooking", "own"):      (U,   A,   A,   H,   D,   A,   A,   D,   A,   A,   D,   A),
    ("cancelBooking", "foreign"):  (U,   H,   H,   H,   D,   H,   A,   D,   H,   H,   D,   A),
    ("createCalendarFeed", "own"):     (U, A, A, H, D, A, A, D, A, A, D, A),
    ("createCalendarFeed", "foreign"): (U, H, H, H, D, H, A, D, H, H, D, A),
    ("revokeCalendarFeed", "own"):     (U, A, A, H, D, A, A, D, A, A, D, A),
    ("revokeCalendarFeed", "foreign"): (U, H, H, H, D, H, A, D, H, H, D, A),
    ("serviceCredit", "own"):      (U,   A,   A,   H,   A,   A,   A,   A,   A,   A,   A,   A),
    ("serviceCredit", "foreign"):  (U,   H,   H,   H,   A,   H,   A,   H,   H,   H,   A,   A),
    ("outages", "own"):            (U,   A,   A,   H,   A,   A,   A,   A,   A,   A,   A,   A),
    ("outages", "foreign"):        (U,   H,   H,   H,   A,   H,   A,   H,   H,   H,   A,   A),
    ("recordOutage", "own"):       (U,   D,   D,   D,   D,   A,   A,   D,   D,   D,   D,   A),
    ("recordOutage", "foreign"):   (U,   D,   D,   D,   D,   H,   A,   D,   D,   D,   D,   A),
    ("reserveOnCall", "own"):      (U,   A,   A,   H,   D,   A,   A,   D,   A,   A,   D,   A),
    ("reserveOnCall", "foreign"):  (U,   H,   H,   H,   D,   H,   A,   D,   H,   H,   D,   A),
    ("cancelOnCall", "own"):       (U,   A,   A,   H,   D,   A,   A,   D,   A,   A,   D,   A),
    ("cancelOnCall", "foreign"):   (U,   H,   H,   H,   D,   H,   A,   D,   H,   H,   D,   A),
    ("consumptionReport", "own"):      (U, A, A, H, A, A, A, A, A, A, A, A),
    ("consumptionReport", "foreign"):  (U, H, H, H, A, H, A, H, H, H, A, A),
    ("setReportContacts", "own"):      (U, D, D, D, D, A, A, D, D, D, D, A),
    ("setReportContacts", "foreign"):  (U, D, D, D, D, H, A, D, D, D, D, A),
    ("deliveries", "own"):         (U,   D,   D,   D,   A,   D,   A,   D,   D,   D,   D,   D),
    ("deliveries", "foreign"):     (U,   D,   D,   D,   A,   D,   A,   D,   D,   D,   D,   D),
    ("deliveryCounts", "-"):       (U,   D,   D,   D,   A,   D,   A,   D,   D,   D,   D,   D),
    ("retryDelivery", "own"):      (U,   D,   D,   D,   A,   D,   A,   D,   D,   D,   D,   D),
    ("retryDelivery", "foreign"):  (U,   D,   D,   D,   A,   D,   A,   D,   D,   D,   D,   D),
    ("webhookSubscriptions", "own"):     (U, A, H, H, A, D, A, A, A, H, A, A),
    ("webhookSubscriptions", "foreign"): (U, H, H, H, A, D, A, H, H, H, A, A),
    ("webhookDeliveries", "own"):        (U, A, H, H, A, D, A, A, A, H, A, A),
    ("webhookDeliveries", "foreign"):    (U, H, H, H, A, D, A, H, H, H, A, A),
    ("createWebhookSubscription", "-"):  (U, A, A, A, D, D, A, D, A, A, D, A),
    ("revokeWebhookSubscription", "own"):     (U, A, H, H, D, D, A, D, A, H, D, A),
    ("revokeWebhookSubscription", "foreign"): (U, H, H, H, D, D, A, D, H, H, D, A),
    ("replayWebhookDelivery", "own"):     (U, D, D, D, A, D, A, D, D, D, D, D),
    ("replayWebhookDelivery", "foreign"): (U, D, D, D, A, D, A, D, D, D, D, D),
}  # fmt: skip

EXPECTED: dict[tuple[str, str, str], str] = {
    (actor, operation, target): outcomes[i]
    for (operation, target), outcomes in ROWS.items()
    for i, actor in enumerate(ACTORS)
}

# The audit action each mutation records when it succeeds.
AUDIT_ACTIONS = {
    "createCustomer": {"customer.create"},
    "createPartner": {"partner.create"},
    "linkPartner": {"partner.link"},
    "createContract": {"contract.create"},
    "consumeEntitlement": {"ledger.consume"},
    "reverseEntry": {"ledger.reverse"},
    "adjustEntitlement": {"ledger.adjust"},
    "loadProgram": {"program.created", "program.updated"},
    "createUser": {"user.create"},
    "createApiToken": {"token.create"},
    "revokeApiToken": {"token.revoke"},
    "fileTicket": {"ticket.create"},
    "transitionTicket": {"ticket.transition"},
    # A public staff reply, or logged time, settles the ticket's support-time deduction.
    "addComment": {"ticket.comment", "ledger.consume", "ledger.overage"},
    "logTime": {"ticket.time_logged", "ledger.consume", "ledger.overage", "ledger.adjust"},
    "bookActivity": {"booking.create", "ledger.consume"},
    "scheduleBooking": {"booking.schedule", "booking.reschedule"},
    "deliverBooking": {"booking.deliver"},
    "cancelBooking": {"booking.cancel", "ledger.reverse"},
    "createCalendarFeed": {"calendar_feed.create"},
    "revokeCalendarFeed": {"calendar_feed.revoke"},
    "recordOutage": {"outage.record"},
    "reserveOnCall": {"on_call.reserve"},
    "cancelOnCall": {"on_call.cancel"},
    "setReportContacts": {"customer.report_contacts"},
    "retryDelivery": {"outbox.retry"},
    "createWebhookSubscription": {"webhook.create"},
    "revokeWebhookSubscription": {"webhook.revoke"},
    "replayWebhookDelivery": {"webhook.replay"},
}

# ---- the world: parties, contracts, credentials --------------------------------------------------


@dataclass
class Caller:
    headers: dict[str, str]
    ref: str | None  # the actor_ref it leaves in the audit log and the ledger
    email: str | None = None


@dataclass
class World:
    ctx: AppContext
    http: httpx.AsyncClient
    callers: dict[str, Caller]
    customers: dict[str, str]  # target -> customer id
    contracts: dict[str, str]  # target -> contract id
    partners: dict[str, str]  # target -> partner id (P linked to A, F linked to B)
    tickets: dict[str, str]  # target -> ticket id
    booking_contracts: dict[str, str]  # target -> a Custom advisory contract with room for every booking
    bookings: dict[str, str]  # target -> a booking on it
    availability_contracts: dict[str, str]  # target -> a premium-availability contract (availability terms)
    outages: dict[str, str]  # target -> an outage of that contract, in February 2026
    on_call_contracts: dict[str, str]  # target -> a tiered-support Premium contract (the on-call add-on)
    deliveries: dict[str, str]  # target -> a failed outbox message of DELIVERY_KIND to that customer
    manager_email: str
    program_source: str
    to_reverse: dict[str, uuid.UUID | None] = field(default_factory=dict)
    on_call_days: itertools.count = field(default_factory=itertools.count)  # a fresh day for each reservation
    webhook_subscriptions: dict[str, str] = field(default_factory=dict)  # target -> that customer's subscription
    webhook_deliveries: dict[str, str] = field(default_factory=dict)  # target -> a failed delivery of it
    to_revoke_webhook: dict[str, uuid.UUID] = field(default_factory=dict)  # target -> an active subscription to revoke


DELIVERY_KIND = "matrix.delivery"  # the kind of the outbox messages the world and the retryDelivery rows queue


async def _failed_delivery(ctx: AppContext, customer_id: uuid.UUID) -> str:
    """A message to the customer, with an address, left failed as the sender leaves one after its last
    attempt. Not through the sender: it would deliver every message due in the run's shared database."""
    key = unique("matrix-delivery")
    recipient = outbox.Recipient("customer", "Matrix IT", f"{key}@matrix.example")
    async with ctx.db.write() as session:
        [queued] = await outbox.queue_all(
            session, ctx, [outbox.Message(DELIVERY_KIND, customer_id, key, f"About {key}", "Matrix text.", recipient)]
        )
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == queued)
            .values(
                status=OutboxStatus.FAILED, attempts=6, failed_at=ctx.now(), last_error="SMTPDataError: (550, 'no')"
            )
        )
    return str(queued)


# The matrix's webhook receivers: a closed port on loopback, so a worker run elsewhere in the suite fails fast.
WEBHOOK_URL = "http://127.0.0.1:9/matrix-hook"


async def _webhook_subscription(ctx: AppContext, customer_id: uuid.UUID) -> str:
    """A subscription of the customer's own, to report events only (rare in the run)."""
    customer = Actor(kind="customer", ref=f"matrix:customer:{customer_id}", name="Matrix IT", customer_id=customer_id)
    made, _ = await webhooks.create_subscription(
        ctx, customer, webhooks.NewSubscription(WEBHOOK_URL, ["report.*"], "matrix")
    )
    return str(made.id)


async def _failed_webhook_delivery(ctx: AppContext, subscription_id: uuid.UUID) -> str:
    """A delivery of the subscription left failed, as the sender leaves one after its last attempt."""
    async with ctx.db.write() as session:
        subscription = await session.get(WebhookSubscription, subscription_id)
        assert subscription is not None and subscription.customer_id is not None
        delivery = WebhookDelivery(
            subscription_id=subscription_id, event_id=uuid.uuid4(), event_type="report.queued",
            customer_id=subscription.customer_id, payload='{"type":"report.queued"}', status=WebhookDeliveryStatus.FAILED,
            created_at=ctx.now(), next_attempt_at=ctx.now(), attempts=12, failed_at=ctx.now(), last_response_code=503,
            last_error="HTTP 503",
        )
        session.add(delivery)
        await session.flush()
        return str(delivery.id)


async def _user(ctx: AppContext, kind: UserKind, **fields: Any) -> Caller:
    email = f"{unique('matrix')}@matrix.example"
    user = await identity.create_user(
        ctx, ADMIN, identity.NewUser(email=email, name=f"Matrix {kind.value}", password=PASSWORD, kind=kind, **fields)
    )
    login = await identity.log_in(ctx, email, PASSWORD)
    headers = {"Cookie": f"{SESSION_COOKIE}={login.session_secret}", CSRF_HEADER: login.csrf_token}
    return Caller(headers, f"user:{user.id}", email)


async def _token(ctx: AppContext, scope: TokenScope, access: TokenAccess, **fields: Any) -> Caller:
    token, secret = await identity.create_token(
        ctx, ADMIN, identity.NewToken(name=unique("matrix-token"), scope=scope, access=access, **fields)
    )
    return Caller({"Authorization": f"Bearer {secret}"}, f"token:{token.id}")


@pytest.fixture(scope="module")
async def world(database: Database, database_url: str, shipped_programs: list[str]) -> AsyncIterator[World]:
    from api.app import create_app

    settings = Settings(database_url=database_url)
    clock = FixedClock(NOW)
    ctx = AppContext(db=database, settings=settings, clock=clock)

    async def customer():  # type: ignore[no-untyped-def]
        code = unique("matrix-customer")
        return await parties.create_customer(ctx, ADMIN, parties.NewCustomer(code=code, name=code))

    async def partner():  # type: ignore[no-untyped-def]
        code = unique("matrix-partner")
        return await parties.create_partner(ctx, ADMIN, parties.NewPartner(code=code, name=code))

    own, foreign = await customer(), await customer()
    linked, other, unlinked = await partner(), await partner(), await partner()
    for p, c in ((linked, own), (other, foreign)):
        await parties.link_partner(
            ctx, ADMIN, partner_id=p.id, customer_id=c.id, managed=True, production_access=False,
            can_file_tickets=True, can_view_entitlements=True, can_book_activities=True,
        )

    manager = await _user(ctx, UserKind.STAFF, staff_role=StaffRole.CLIENT_MANAGER)
    manager_email = manager.email
    assert manager_email is not None

    async def contract(c, manager_email: str | None):  # type: ignore[no-untyped-def]
        return await contracts.create_contract(
            ctx,
            ADMIN,
            contracts.NewContract(
                reference=unique("MATRIX"),
                customer_id=c.id,
                program_code="advisory-assure",
                plan_code="small",
                effective_date=date(2026, 2, 15),
                end_date=date(2027, 2, 14),
                monthly_fee=Decimal("1000.00"),
                currency="EUR",
                client_manager_email=manager_email,
            ),
        )

    own_contract, foreign_contract = await contract(own, manager_email), await contract(foreign, None)

    async def ticket(c, manager_email: str | None):  # type: ignore[no-untyped-def]
        # Tickets need a plan with ticket types: a partner-support contract beside the advisory one.
        await contracts.create_contract(
            ctx,
            ADMIN,
            contracts.NewContract(
                reference=unique("MATRIX-SUPPORT"), customer_id=c.id, program_code="partner-support",
                plan_code="enterprise", effective_date=date(2026, 1, 1), end_date=date(2026, 12, 31),
                monthly_fee=Decimal("500.00"), currency="EUR", custom_allowances={"support-hours": 600},
                client_manager_email=manager_email,
            ),
        )
        return await tickets.open_ticket(ctx, ADMIN, tickets.NewTicket(c.id, "question", "standard", "Matrix ticket"))

    own_ticket, foreign_ticket = await ticket(own, manager_email), await ticket(foreign, None)

    async def booking_contract(c, manager_email: str | None):  # type: ignore[no-untyped-def]
        return await contracts.create_contract(
            ctx,
            ADMIN,
            contracts.NewContract(
                reference=unique("MATRIX-ASSURE"), customer_id=c.id, program_code="advisory-assure",
                plan_code="custom", effective_date=date(2026, 2, 15), end_date=date(2027, 2, 14),
                monthly_fee=Decimal("900.00"), currency="EUR", custom_allowances={"activities": 1000},
                client_manager_email=manager_email,
            ),
        )

    own_booking_contract = await booking_contract(own, manager_email)
    foreign_booking_contract = await booking_contract(foreign, None)
    own_booking, foreign_booking = [
        (await bookings.book_activity(ctx, ADMIN, bookings.NewBooking(c.id, "advisory-call", date(2026, 4, 1)))).booking
        for c in (own_booking_contract, foreign_booking_contract)
    ]
    for c in (own_contract, foreign_contract):
        await ledger.consume_entitlement(
            ctx, ADMIN, ledger.Consumption(c.id, "activities", Decimal(1), date(2026, 3, 1), "matrix setup")
        )

    # Service levels: a contract with availability terms and one with on-call readiness for each customer.
    # Their references sort after MATRIX-SUPPORT: filing takes the first contract (by reference) offering the
    # ticket type, and these plans do not offer the "standard" severity the ticket rows file with.
    async def service_contract(c, manager_email, program: str, plan: str, fee: str, currency: str):  # type: ignore[no-untyped-def]
        return await contracts.create_contract(
            ctx,
            ADMIN,
            contracts.NewContract(
                reference=unique(f"MATRIX-Z-{program.upper()}"), customer_id=c.id, program_code=program,
                plan_code=plan, effective_date=date(2026, 1, 1), end_date=date(2026, 12, 31),
                monthly_fee=Decimal(fee), currency=currency, client_manager_email=manager_email,
            ),
        )

    availability_contracts = {
        target: await service_contract(c, m, "premium-availability", "premium-16", "2500.00", "EUR")
        for target, c, m in (("own", own, manager_email), ("foreign", foreign, None))
    }
    outages = {
        target: await availability.record_outage(
            ctx,
            ADMIN,
            availability.NewOutage(
                datetime(2026, 2, 2, 10, tzinfo=UTC), datetime(2026, 2, 2, 10, 30, tzinfo=UTC), Decimal("0.5"),
                note="matrix setup", contract_id=c.id,
            ),
        )
        for target, c in availability_contracts.items()
    }
    on_call_contracts = {
        target: await service_contract(c, m, "tiered-support", "premium", "18500.00", "DKK")
        for target, c, m in (("own", own, manager_email), ("foreign", foreign, None))
    }

    deliveries = {"own": await _failed_delivery(ctx, own.id), "foreign": await _failed_delivery(ctx, foreign.id)}
    webhook_subscriptions = {"own": await _webhook_subscription(ctx, own.id), "foreign": await _webhook_subscription(ctx, foreign.id)}
    webhook_deliveries = {t: await _failed_webhook_delivery(ctx, uuid.UUID(s)) for t, s in webhook_subscriptions.items()}

    callers = {
        "anonymous": Caller({}, None),
        "customer": await _user(ctx, UserKind.CUSTOMER, customer_id=own.id),
        "partner": await _user(ctx, UserKind.PARTNER, partner_id=linked.id),
        "partner_unlinked": await _user(ctx, UserKind.PARTNER, partner_id=unlinked.id),
        "support_engineer": await _user(ctx, UserKind.STAFF, staff_role=StaffRole.SUPPORT_ENGINEER),
        "client_manager": manager,
        "admin": await _user(ctx, UserKind.STAFF, staff_role=StaffRole.ADMIN),
        "customer_read_token": await _token(ctx, TokenScope.CUSTOMER, TokenAccess.READ, customer_id=own.id),
        "customer_rw_token": await _token(ctx, TokenScope.CUSTOMER, TokenAccess.READ_WRITE, customer_id=own.id),
        "partner_rw_token": await _token(ctx, TokenScope.PARTNER, TokenAccess.READ_WRITE, partner_id=linked.id),
        "provider_read_token": await _token(ctx, TokenScope.PROVIDER, TokenAccess.READ),
        "provider_rw_token": await _token(ctx, TokenScope.PROVIDER, TokenAccess.READ_WRITE),
    }
    assert set(callers) == set(ACTORS)

    app = create_app(settings, database=database, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield World(
            ctx=ctx,
            http=http,
            callers=callers,
            customers={"own": str(own.id), "foreign": str(foreign.id)},
            contracts={"own": str(own_contract.id), "foreign": str(foreign_contract.id)},
            tickets={"own": str(own_ticket.id), "foreign": str(foreign_ticket.id)},
            partners={"own": str(linked.id), "foreign": str(other.id)},
            booking_contracts={"own": str(own_booking_contract.id), "foreign": str(foreign_booking_contract.id)},
            bookings={"own": str(own_booking.id), "foreign": str(foreign_booking.id)},
            availability_contracts={t: str(c.id) for t, c in availability_contracts.items()},
            outages={t: str(o.id) for t, o in outages.items()},
            on_call_contracts={t: str(c.id) for t, c in on_call_contracts.items()},
            deliveries=deliveries,
            webhook_subscriptions=webhook_subscriptions,
            webhook_deliveries=webhook_deliveries,
            manager_email=manager_email,
            program_source=(PROJECT_ROOT / "programs" / "advisory-assure.toml").read_text(encoding="utf-8"),
        )


# ---- the requests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    document: str
    variables: dict[str, Any]
    ids: tuple[str, ...] = ()  # the objects named: ids[0] is the one a list answer is searched for

    def with_id(self, ident: str) -> Request:
        return Request(self.document, {**self.variables, "id": ident}, (ident,))


def _pick(values: dict[str, str], target: str) -> str:
    """The own or foreign object's id; a random one for "missing" (an object that does not exist)."""
    return str(uuid.uuid4()) if target == "missing" else values[target]


ERROR_FIELDS = "__typename ... on UserError { code message field }"


def _mutation(name: str, input_type: str, success: str) -> str:
    return (
        f"mutation Run($input: {input_type}!) {{ {name}(input: $input) {{ {ERROR_FIELDS} ... on {success} }} }}"
    )


LEDGER_SUCCESS = "LedgerEntrySuccess { entry { id contractId quantity kind } period { consumed } }"


async def q_programs(w: World, t: str) -> Request:
    return Request("{ programs { code plans { code } } }", {}, ("advisory-assure",))


async def q_program(w: World, t: str) -> Request:
    return Request("query Run($code: String!) { program(code: $code) { code name } }", {"code": "advisory-assure"})


async def q_customers(w: World, t: str) -> Request:
    ident = _pick(w.customers, t)
    async with w.ctx.db.read() as session:  # the customer's own code: found on the first page, whatever else exists
        code = await session.scalar(select(Customer.code).where(Customer.id == uuid.UUID(ident)))
    document = "query Run($s: String) { customers(search: $s) { edges { node { id code } } } }"
    return Request(document, {"s": code or "no-such-code"}, (ident,))


async def q_customer(w: World, t: str) -> Request:
    ident = _pick(w.customers, t)
    document = "query Run($id: ID!) { customer(id: $id) { id code correspondent { kind name partnerId } } }"
    return Request(document, {"id": ident}, (ident,))


async def q_partners(w: World, t: str) -> Request:
    return Request("{ partners { id code } }", {}, (_pick(w.partners, t),))


async def q_contracts(w: World, t: str) -> Request:
    ident = _pick(w.customers, t)
    document = "query Run($c: ID) { contracts(customerId: $c) { edges { node { id reference customer { id } } } } }"
    return Request(document, {"c": ident}, (ident,))


async def q_contract(w: World, t: str) -> Request:
    ident = _pick(w.contracts, t)
    document = """
    query Run($id: ID!) {
      contract(id: $id) {
        id reference isActive customer { id } clientManager { email } plan { code }
        entitlements { bucket consumed remaining }
        periods(bucket: "activities") { periodStart consumed }
        ledger(first: 5) { edges { node { id quantity } } }
        onCallReservations { id status }
      }
    }"""
    return Request(document, {"id": ident}, (ident,))


async def q_me(w: World, t: str) -> Request:
    return Request("{ me { kind roles customerId partnerId readOnly } }", {})


async def q_users(w: World, t: str) -> Request:
    return Request("{ users { edges { node { id email } } } }", {})


async def q_api_tokens(w: World, t: str) -> Request:
    return Request("{ apiTokens { id name } }", {})


async def q_audit_log(w: World, t: str) -> Request:
    ident = _pick(w.customers, t)
    document = "query Run($c: ID) { auditLog(first: 5, customerId: $c) { edges { node { id action } } } }"
    return Request(document, {"c": ident}, (ident,))


async def q_out_of_scope(w: World, t: str) -> Request:
    ident = _pick(w.customers, t)
    return Request("query Run($c: ID!) { outOfScope(customerId: $c) { code source } }", {"c": ident}, (ident,))


async def q_ticket(w: World, t: str) -> Request:
    ident = _pick(w.tickets, t)
    return Request("query Run($t: ID!) { ticket(id: $t) { id status sla { target dueAt } } }", {"t": ident}, (ident,))


async def q_tickets(w: World, t: str) -> Request:
    # Filtered to the target's customer, so tickets filed elsewhere in the run never push it off the page.
    ident, customer = _pick(w.tickets, t), _pick(w.customers, t)
    document = """
    query Run($c: ID!) {
      tickets(filter: {customerId: $c}) { edges { cursor node { id status filedBy lastComment { body } } } pageInfo { hasNextPage endCursor } }
    }
    """
    return Request(document, {"c": customer}, (ident, customer))


async def q_calendar_windows(w: World, t: str) -> Request:
    document = """
    query { calendarWindows(programCode: "partner-support", calendar: "business-hours-es",
                            fromDate: "2026-03-09", toDate: "2026-03-10") { start end } }
    """
    return Request(document, {}, ())


async def q_check_filing(w: World, t: str) -> Request:
    ident = _pick(w.customers, t)
    document = """
    query Run($c: ID!) { checkFiling(customerId: $c, ticketType: "issue-report") { allowed code reason contractId } }
    """
    return Request(document, {"c": ident}, (ident,))


async def m_create_customer(w: World, t: str) -> Request:
    document = _mutation("createCustomer", "CreateCustomerInput", "CreateCustomerSuccess { customer { id } }")
    return Request(document, {"input": {"code": unique("mx-customer"), "name": "Matrix customer"}})


async def m_create_partner(w: World, t: str) -> Request:
    document = _mutation("createPartner", "CreatePartnerInput", "CreatePartnerSuccess { partner { id } }")
    return Request(document, {"input": {"code": unique("mx-partner"), "name": "Matrix partner"}})


async def m_link_partner(w: World, t: str) -> Request:
    # Links again exactly as the world set them up (P to A, F to B), so nothing changes but the audit log.
    partner, customer = _pick(w.partners, t), _pick(w.customers, t)
    document = _mutation("linkPartner", "LinkPartnerInput", "LinkPartnerSuccess { partnerId customerId }")
    variables = {
        "partnerId": partner,
        "customerId": customer,
        "managed": True,
        "productionAccess": False,
        "canFileTickets": True,
        "canViewEntitlements": True,
        "canBookActivities": True,
    }
    return Request(document, {"input": variables}, (partner, customer))


async def m_create_contract(w: World, t: str) -> Request:
    customer = _pick(w.customers, t)
    document = _mutation("createContract", "CreateContractInput", "CreateContractSuccess { contract { id } }")
    variables = {
        "reference": unique("MX"),
        "customerId": customer,
        "programCode": "advisory-assure",
        "planCode": "small",
        "effectiveDate": "2026-02-15",
        "endDate": "2027-02-14",
        "monthlyFee": "100.00",
        "currency": "EUR",
        "clientManagerEmail": w.manager_email if t == "own" else None,
    }
    return Request(document, {"input": variables}, (customer,))


async def m_consume(w: World, t: str) -> Request:
    # Quarter 3 (2026-08-15 .. 2026-11-14): at most four callers consume one each of the five.
    contract = _pick(w.contracts, t)
    document = _mutation("consumeEntitlement", "ConsumeEntitlementInput", LEDGER_SUCCESS)
    variables = {"contractId": contract, "bucket": "activities", "quantity": "1", "on": "2026-09-01", "reason": "mx"}
    return Request(document, {"input": variables}, (contract,))


async def _entry_to_reverse(w: World, target: str) -> uuid.UUID:
    """An unreversed entry of the target's contract, in quarter 2; a refused call leaves it for the next."""
    current = w.to_reverse.get(target)
    if current is not None:
        async with w.ctx.db.read() as session:
            reversed_by = await session.scalar(select(LedgerEntry.id).where(LedgerEntry.reverses_entry_id == current))
        if reversed_by is None:
            return current
    outcome = await ledger.consume_entitlement(
        w.ctx,
        ADMIN,
        ledger.Consumption(uuid.UUID(w.contracts[target]), "activities", Decimal(1), date(2026, 6, 1), "to reverse"),
    )
    w.to_reverse[target] = outcome.entry.id
    return outcome.entry.id


async def m_reverse(w: World, t: str) -> Request:
    entry = str(uuid.uuid4()) if t == "missing" else str(await _entry_to_reverse(w, t))
    document = _mutation("reverseEntry", "ReverseEntryInput", LEDGER_SUCCESS)
    return Request(document, {"input": {"entryId": entry, "reason": "matrix"}}, (entry,))


async def m_adjust(w: World, t: str) -> Request:
    # Quarter 4 (2026-11-15 .. 2027-02-14): only admins adjust.
    contract = _pick(w.contracts, t)
    document = _mutation("adjustEntitlement", "AdjustEntitlementInput", LEDGER_SUCCESS)
    variables = {"contractId": contract, "bucket": "activities", "quantity": "1", "on": "2026-12-01", "reason": "mx"}
    return Request(document, {"input": variables}, (contract,))


async def m_load_program(w: World, t: str) -> Request:
    source = w.program_source.replace('code = "advisory-assure"', f'code = "{unique("mx-program")}"', 1)
    document = _mutation("loadProgram", "LoadProgramInput", "LoadProgramSuccess { status program { code } }")
    return Request(document, {"input": {"source": source, "fileName": "matrix.toml"}})


async def m_create_user(w: World, t: str) -> Request:
    customer = _pick(w.customers, t)
    document = _mutation("createUser", "CreateUserInput", "CreateUserSuccess { user { id customerId } }")
    variables = {
        "email": f"{unique('mx-user')}@matrix.example",
        "name": "Matrix user",
        "password": PASSWORD,
        "kind": "CUSTOMER",
        "customerId": customer,
    }
    return Request(document, {"input": variables}, (customer,))


async def m_create_api_token(w: World, t: str) -> Request:
    customer = _pick(w.customers, t)
    document = _mutation("createApiToken", "CreateApiTokenInput", "CreateApiTokenSuccess { token { id } }")
    variables = {"name": unique("mx-token"), "scope": "CUSTOMER", "access": "READ", "customerId": customer}
    return Request(document, {"input": variables}, (customer,))


async def m_revoke_api_token(w: World, t: str) -> Request:
    if t == "missing":
        ident = str(uuid.uuid4())
    else:
        token, _ = await identity.create_token(
            w.ctx,
            ADMIN,
            identity.NewToken(
                name=unique("mx-revoke"),
                scope=TokenScope.CUSTOMER,
                access=TokenAccess.READ,
                customer_id=uuid.UUID(w.customers[t]),
            ),
        )
        ident = str(token.id)
    document = (
        "mutation Run($id: ID!) { revokeApiToken(id: $id) { "
        f"{ERROR_FIELDS} ... on RevokeApiTokenSuccess {{ token {{ id revokedAt }} }} }} }}"
    )
    return Request(document, {"id": ident}, (ident,))


TICKET_SUCCESS = "{ ticket { id status } }"


async def m_file_ticket(w: World, t: str) -> Request:
    customer = _pick(w.customers, t)
    document = _mutation("fileTicket", "FileTicketInput", "FileTicketSuccess { ticketId ticket { id status } }")
    variables = {"customerId": customer, "ticketType": "question", "severity": "standard", "subject": "Matrix filing"}
    return Request(document, {"input": variables}, (customer,))


async def m_transition_ticket(w: World, t: str) -> Request:
    # A fresh ticket each time, taken up (new -> in_progress): a move only the support team makes.
    if t == "missing":
        ident = str(uuid.uuid4())
    else:
        filed = await tickets.open_ticket(
            w.ctx, ADMIN, tickets.NewTicket(uuid.UUID(w.customers[t]), "question", "standard", "Matrix transition")
        )
        ident = str(filed.id)
    document = _mutation("transitionTicket", "TransitionTicketInput", f"TransitionTicketSuccess {TICKET_SUCCESS}")
    return Request(document, {"input": {"ticketId": ident, "to": "in_progress"}}, (ident,))


async def m_add_comment(w: World, t: str) -> Request:
    ident = _pick(w.tickets, t)
    document = _mutation("addComment", "AddCommentInput", "AddCommentSuccess { commentId ticket { id status } }")
    return Request(document, {"input": {"ticketId": ident, "body": "Matrix comment"}}, (ident,))


async def m_log_time(w: World, t: str) -> Request:
    ident = _pick(w.tickets, t)
    document = _mutation(
        "logTime", "LogTimeInput", "LogTimeSuccess { timeEntryId ticket { id } deductions { id quantity } }"
    )
    return Request(document, {"input": {"ticketId": ident, "minutes": 5, "note": "matrix work"}}, (ident,))


async def q_activity_catalog(w: World, t: str) -> Request:
    document = '{ activityCatalog(programCode: "advisory-assure", planCode: "small") { code cost } }'
    return Request(document, {}, ())


async def q_bookings(w: World, t: str) -> Request:
    ident, contract = _pick(w.bookings, t), _pick(w.booking_contracts, t)
    document = """
    query Run($c: ID!) {
      bookings(filter: {contractId: $c}) { edges { cursor node { id status partners { id } ledgerEntries { id } } } }
    }"""
    return Request(document, {"c": contract}, (ident, contract))


async def q_booking(w: World, t: str) -> Request:
    ident = _pick(w.bookings, t)
    document = "query Run($b: ID!) { booking(id: $b) { id status contract { id } staff { name } } }"
    return Request(document, {"b": ident}, (ident,))


BOOKING_SUCCESS = "{ booking { id status } }"


async def _booking(w: World, target: str, day: date) -> str:
    """A fresh booking on the target's booking contract, or a random id for "missing"."""
    if target == "missing":
        return str(uuid.uuid4())
    contract = uuid.UUID(w.booking_contracts[target])
    outcome = await bookings.book_activity(w.ctx, ADMIN, bookings.NewBooking(contract, "advisory-call", day))
    return str(outcome.booking.id)


async def m_book_activity(w: World, t: str) -> Request:
    contract = _pick(w.booking_contracts, t)
    document = _mutation("bookActivity", "BookActivityInput", f"BookingSuccess {BOOKING_SUCCESS}")
    variables = {"contractId": contract, "activity": "code-review", "on": "2026-04-02"}
    return Request(document, {"input": variables}, (contract,))


async def m_schedule_booking(w: World, t: str) -> Request:
    ident = await _booking(w, t, date(2026, 4, 3))
    document = _mutation("scheduleBooking", "ScheduleBookingInput", f"ScheduleBookingSuccess {BOOKING_SUCCESS}")
    variables = {"bookingId": ident, "startsAt": "2026-04-03T09:00:00+00:00", "staffEmail": w.manager_email}
    return Request(document, {"input": variables}, (ident,))


async def m_deliver_booking(w: World, t: str) -> Request:
    # Scheduled to start now, so it may be marked delivered at once.
    ident = await _booking(w, t, NOW.date())
    if t != "missing":
        await bookings.schedule_booking(
            w.ctx, ADMIN, bookings.Schedule(uuid.UUID(ident), NOW, staff_email=w.manager_email)
        )
    document = _mutation("deliverBooking", "DeliverBookingInput", f"DeliverBookingSuccess {BOOKING_SUCCESS}")
    return Request(document, {"input": {"bookingId": ident, "note": "matrix"}}, (ident,))


async def m_cancel_booking(w: World, t: str) -> Request:
    ident = await _booking(w, t, date(2026, 4, 4))
    document = _mutation("cancelBooking", "CancelBookingInput", f"BookingSuccess {BOOKING_SUCCESS}")
    return Request(document, {"input": {"bookingId": ident, "reason": "matrix"}}, (ident,))


async def m_create_calendar_feed(w: World, t: str) -> Request:
    contract = _pick(w.contracts, t)
    document = _mutation("createCalendarFeed", "CreateCalendarFeedInput", "CreateCalendarFeedSuccess { url feed { id } }")
    return Request(document, {"input": {"contractId": contract, "name": "matrix"}}, (contract,))


async def m_revoke_calendar_feed(w: World, t: str) -> Request:
    if t == "missing":
        ident = str(uuid.uuid4())
    else:
        feed, _ = await calendar_feeds.create_feed(w.ctx, ADMIN, uuid.UUID(w.contracts[t]), "to revoke")
        ident = str(feed.id)
    document = (
        "mutation Run($id: ID!) { revokeCalendarFeed(id: $id) { "
        f"{ERROR_FIELDS} ... on RevokeCalendarFeedSuccess {{ feed {{ id active }} }} }} }}"
    )
    return Request(document, {"id": ident}, (ident,))


async def q_service_credit(w: World, t: str) -> Request:
    ident = _pick(w.availability_contracts, t)
    document = """
    query Run($c: ID!) {
      serviceCredit(contractId: $c, month: "2026-02") { month downtimeMinutes creditPercent amount currency }
    }"""
    return Request(document, {"c": ident}, (ident,))


async def q_outages(w: World, t: str) -> Request:
    ident, contract = _pick(w.outages, t), _pick(w.availability_contracts, t)
    document = 'query Run($c: ID!) { outages(contractId: $c, month: "2026-02") { id contractId startedAt } }'
    return Request(document, {"c": contract}, (ident, contract))


async def m_record_outage(w: World, t: str) -> Request:
    # On one contract, in February (over by NOW); every allowed caller adds one more outage there.
    contract = _pick(w.availability_contracts, t)
    document = _mutation("recordOutage", "RecordOutageInput", "RecordOutageSuccess { outage { id contractId } }")
    variables = {
        "contractId": contract,
        "startedAt": "2026-02-03T09:00:00+00:00",
        "endedAt": "2026-02-03T09:05:00+00:00",
        "impactedPortion": "0.5",
        "note": "matrix",
    }
    return Request(document, {"input": variables}, (contract,))


def _on_call_day(w: World) -> date:
    """A day no request of the run has named yet (an allowed reservation takes its day, a refused one may
    leave it reserved), from three weeks after NOW: a reservation on it is cancelled before its day."""
    return date(2026, 4, 1) + timedelta(days=next(w.on_call_days))


async def m_reserve_on_call(w: World, t: str) -> Request:
    contract = _pick(w.on_call_contracts, t)
    document = _mutation("reserveOnCall", "ReserveOnCallInput", "ReserveOnCallSuccess { reservations { id status } }")
    variables = {"contractId": contract, "dates": [_on_call_day(w).isoformat()], "consultants": 1, "dayRate": "4200.00"}
    return Request(document, {"input": variables}, (contract,))


async def m_cancel_on_call(w: World, t: str) -> Request:
    # A fresh reservation each time, on a day weeks after NOW: cancelled before its day.
    if t == "missing":
        ident = str(uuid.uuid4())
    else:
        [made] = await on_call.reserve_on_call(
            w.ctx,
            ADMIN,
            on_call.NewReservation(uuid.UUID(w.on_call_contracts[t]), [_on_call_day(w)], 1, Decimal("4200.00")),
        )
        ident = str(made.id)
    document = (
        "mutation Run($id: ID!) { cancelOnCall(id: $id) { "
        f"{ERROR_FIELDS} ... on CancelOnCallSuccess {{ reservation {{ id status amount }} }} }} }}"
    )
    return Request(document, {"id": ident}, (ident,))


async def q_consumption_report(w: World, t: str) -> Request:
    # March 2026: within the terms of both contracts (from 2026-02-15), and under way at NOW.
    ident = _pick(w.contracts, t)
    document = """
    query Run($c: ID!) {
      consumptionReport(contractId: $c, month: "2026-03") {
        contractId customerId month complete buckets { bucket consumedInMonth } activities { requested } csvPath
      }
    }"""
    return Request(document, {"c": ident}, (ident,))


async def m_set_report_contacts(w: World, t: str) -> Request:
    ident = _pick(w.customers, t)
    document = _mutation(
        "setReportContacts", "SetReportContactsInput", "SetReportContactsSuccess { customer { id reportContacts } }"
    )
    variables = {"customerId": ident, "emails": [f"{unique('reports')}@matrix.example"]}
    return Request(document, {"input": variables}, (ident,))


async def q_deliveries(w: World, t: str) -> Request:
    # The target customer's messages of the matrix's own kind: the world's failed one is on the first page.
    ident, customer = _pick(w.deliveries, t), _pick(w.customers, t)
    document = """
    query Run($c: ID!, $k: String!) {
      deliveries(filter: {customerId: $c, kind: $k}, first: 50) {
        edges { node { id customerId status recipientEmail lastError } } pageInfo { hasNextPage }
      }
    }"""
    return Request(document, {"c": customer, "k": DELIVERY_KIND}, (ident, customer))


async def q_delivery_counts(w: World, t: str) -> Request:
    return Request("{ deliveryCounts { status count } }", {})


async def m_retry_delivery(w: World, t: str) -> Request:
    # A fresh failed message each time: an allowed retry puts it back in the queue, where a second retry
    # would be refused (WRONG_STATUS).
    ident = str(uuid.uuid4()) if t == "missing" else await _failed_delivery(w.ctx, uuid.UUID(w.customers[t]))
    document = (
        "mutation Run($id: ID!) { retryDelivery(id: $id) { "
        f"{ERROR_FIELDS} ... on RetryDeliverySuccess {{ delivery {{ id status attempts }} }} }} }}"
    )
    return Request(document, {"id": ident}, (ident,))


async def q_webhook_subscriptions(w: World, t: str) -> Request:
    ident = _pick(w.webhook_subscriptions, t)
    document = """
    query { webhookSubscriptions(first: 200) { edges { node { id ownerKind customerId url eventTypes active } } } }
    """
    return Request(document, {}, (ident,))


async def q_webhook_deliveries(w: World, t: str) -> Request:
    ident, subscription = _pick(w.webhook_deliveries, t), _pick(w.webhook_subscriptions, t)
    document = """
    query Run($s: ID!) {
      webhookDeliveries(filter: {subscriptionId: $s}, first: 200) {
        edges { node { id eventType status attempts lastResponseCode attemptLog { number outcome } } }
      }
    }"""
    return Request(document, {"s": subscription}, (ident, subscription))


async def m_create_webhook_subscription(w: World, t: str) -> Request:
    document = _mutation(
        "createWebhookSubscription", "CreateWebhookSubscriptionInput",
        "CreateWebhookSubscriptionSuccess { secret subscription { id ownerKind } }",
    )
    return Request(document, {"input": {"url": WEBHOOK_URL, "eventTypes": ["report.queued"], "description": "mx"}})


async def m_revoke_webhook_subscription(w: World, t: str) -> Request:
    # The target customer's subscription to revoke: the one a refused call left active, or a fresh one.
    if t == "missing":
        ident = str(uuid.uuid4())
    else:
        current = w.to_revoke_webhook.get(t)
        async with w.ctx.db.read() as session:
            active = current is not None and bool(
                await session.scalar(
                    select(WebhookSubscription.active).where(WebhookSubscription.id == current)
                )
            )
        if not active:
            w.to_revoke_webhook[t] = uuid.UUID(await _webhook_subscription(w.ctx, uuid.UUID(w.customers[t])))
        ident = str(w.to_revoke_webhook[t])
    document = (
        "mutation Run($id: ID!) { revokeWebhookSubscription(id: $id) { "
        f"{ERROR_FIELDS} ... on RevokeWebhookSubscriptionSuccess {{ subscription {{ id active revokedAt }} }} }} }}"
    )
    return Request(document, {"id": ident}, (ident,))


async def m_replay_webhook_delivery(w: World, t: str) -> Request:
    # A fresh failed delivery each time: an allowed replay puts it back in the queue, where a second replay
    # would be refused (WRONG_STATUS).
    if t == "missing":
        ident = str(uuid.uuid4())
    else:
        ident = await _failed_webhook_delivery(w.ctx, uuid.UUID(w.webhook_subscriptions[t]))
    document = (
        "mutation Run($id: ID!) { replayWebhookDelivery(id: $id) { "
        f"{ERROR_FIELDS} ... on ReplayWebhookDeliverySuccess {{ delivery {{ id status replays }} }} }} }}"
    )
    return Request(document, {"id": ident}, (ident,))


Builder = Callable[[World, str], Awaitable[Request]]

QUERIES: dict[str, Builder] = {
    "programs": q_programs,
    "program": q_program,
    "customers": q_customers,
    "customer": q_customer,
    "partners": q_partners,
    "contracts": q_contracts,
    "contract": q_contract,
    "me": q_me,
    "users": q_users,
    "apiTokens": q_api_tokens,
    "auditLog": q_audit_log,
    "outOfScope": q_out_of_scope,
    "checkFiling": q_check_filing,
    "ticket": q_ticket,
    "tickets": q_tickets,
    "calendarWindows": q_calendar_windows,
    "activityCatalog": q_activity_catalog,
    "bookings": q_bookings,
    "booking": q_booking,
    "serviceCredit": q_service_credit,
    "outages": q_outages,
    "consumptionReport": q_consumption_report,
    "deliveries": q_deliveries,
    "deliveryCounts": q_delivery_counts,
    "webhookSubscriptions": q_webhook_subscriptions,
    "webhookDeliveries": q_webhook_deliveries,
}

MUTATIONS: dict[str, Builder] = {
    "createCustomer": m_create_customer,
    "createPartner": m_create_partner,
    "linkPartner": m_link_partner,
    "createContract": m_create_contract,
    "consumeEntitlement": m_consume,
    "reverseEntry": m_reverse,
    "adjustEntitlement": m_adjust,
    "loadProgram": m_load_program,
    "createUser": m_create_user,
    "createApiToken": m_create_api_token,
    "revokeApiToken": m_revoke_api_token,
    "fileTicket": m_file_ticket,
    "transitionTicket": m_transition_ticket,
    "addComment": m_add_comment,
    "logTime": m_log_time,
    "bookActivity": m_book_activity,
    "scheduleBooking": m_schedule_booking,
    "deliverBooking": m_deliver_booking,
    "cancelBooking": m_cancel_booking,
    "createCalendarFeed": m_create_calendar_feed,
    "revokeCalendarFeed": m_revoke_calendar_feed,
    "recordOutage": m_record_outage,
    "reserveOnCall": m_reserve_on_call,
    "cancelOnCall": m_cancel_on_call,
    "setReportContacts": m_set_report_contacts,
    "retryDelivery": m_retry_delivery,
    "createWebhookSubscription": m_create_webhook_subscription,
    "revokeWebhookSubscription": m_revoke_webhook_subscription,
    "replayWebhookDelivery": m_replay_webhook_delivery,
}

BUILDERS = {**QUERIES, **MUTATIONS}


# ---- running and classifying -----------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    body: dict[str, Any]


async def run(w: World, actor: str, request: Request) -> Response:
    response = await w.http.post(
        "/graphql",
        json={"query": request.document, "variables": request.variables},
        headers=w.callers[actor].headers,
    )
    assert response.status_code in (200, 401), response.text
    return Response(response.status_code, response.json())


def classify(operation: str, request: Request, response: Response) -> str:
    """One of allow / deny / hidden / unauthenticated; anything else comes back as a description."""
    if response.status == 401:
        return U
    body = response.body
    if body.get("errors"):
        messages = [e["message"] for e in body["errors"]]
        if all(" may not " in m for m in messages):
            return D
        return f"errors: {messages}"
    value = body["data"][operation]
    if operation in MUTATIONS:
        typename = value["__typename"]
        if typename.endswith("Success"):
            return A
        if typename == "PermissionDeniedError":
            return D
        if typename in ("NotFoundError", "OutOfScopeError"):
            return H  # the out-of-scope answer names no object: the same for a nonexistent one (checked)
        return f"{typename}: {value.get('message')}"
    if value is None:
        return H
    if operation == "customers":
        return A if request.ids[0] in {edge["node"]["id"] for edge in value["edges"]} else H
    if operation == "partners":
        return A if request.ids[0] in {item["id"] for item in value} else H
    if operation == "programs":
        return A if request.ids[0] in {item["code"] for item in value} else H
    if operation == "contracts":
        return A if value["edges"] else H
    if operation == "auditLog":
        return A if value["edges"] else H
    if operation in ("tickets", "bookings", "deliveries", "webhookSubscriptions", "webhookDeliveries"):
        return A if request.ids[0] in {edge["node"]["id"] for edge in value["edges"]} else H
    if operation == "outages":
        return A if request.ids[0] in {item["id"] for item in value} else H
    if operation == "checkFiling":
        if value["allowed"] or value["code"] in ("INVALID", "PARTNER_NOT_ELIGIBLE"):
            return A  # past the access check: the answer is the program's
        return {"PERMISSION_DENIED": D, "OUT_OF_SCOPE": H, "NOT_FOUND": H}.get(value["code"], f"checkFiling: {value}")
    return A


async def counts(w: World) -> tuple[int, ...]:
    """Rows in the audit log (first), the ledger and outages, and on-call reservations still reserved."""
    async with w.ctx.db.read() as session:
        audit_rows = await session.scalar(select(func.count()).select_from(AuditEntry))
        ledger_rows = await session.scalar(select(func.count()).select_from(LedgerEntry))
        outage_rows = await session.scalar(select(func.count()).select_from(Outage))
        reserved = await session.scalar(
            select(func.count()).select_from(OnCallReservation).where(OnCallReservation.status == OnCallStatus.RESERVED)
        )
    return int(audit_rows or 0), int(ledger_rows or 0), int(outage_rows or 0), int(reserved or 0)


def normalised(response: Response, ids: tuple[str, ...]) -> tuple[int, str]:
    text = json.dumps(response.body, sort_keys=True)
    for ident in ids:
        text = text.replace(ident, "<ID>")
    return response.status, text


CASES = sorted(EXPECTED, key=lambda key: (list(BUILDERS).index(key[1]) if key[1] in BUILDERS else -1, key))


@pytest.mark.parametrize(("actor", "operation", "target"), CASES, ids=["-".join(case) for case in CASES])
async def test_permission_matrix(world: World, actor: str, operation: str, target: str) -> None:
    expected = EXPECTED[(actor, operation, target)]
    request = await BUILDERS[operation](world, target)
    before = await counts(world)
    response = await run(world, actor, request)
    after = await counts(world)

    outcome = classify(operation, request, response)
    assert outcome == expected, f"{actor} {operation} ({target}): {outcome}, expected {expected}\n{response.body}"

    if operation in MUTATIONS:
        if outcome == A:
            assert after[0] > before[0], f"{operation} by {actor} succeeded without an audit entry"
        else:
            assert after == before, (
                f"refused {operation} by {actor} wrote (audit, ledger, outages, reserved) {before} -> {after}"
            )

    if target == "foreign" and outcome != A:
        # Out of reach must read exactly as nonexistent: the same request for a random id.
        missing_request = await BUILDERS[operation](world, "missing")
        missing = await run(world, actor, missing_request)
        assert normalised(response, request.ids) == normalised(missing, missing_request.ids), (
            f"{actor} {operation}: a foreign object answers differently from a nonexistent one"
        )


def test_every_schema_operation_has_rows() -> None:
    schema = graphql.build_schema(build_schema(Settings()).as_str())
    fields = {
        **{name: "Query" for name in schema.query_type.fields},
        **{name: "Mutation" for name in schema.mutation_type.fields},
    }
    covered = {operation for _, operation, _ in EXPECTED}
    missing = sorted(f"{kind}.{name}" for name, kind in fields.items() if name not in covered)
    assert not missing, f"operations without rows in EXPECTED: {', '.join(missing)}"
    unknown = sorted(covered - set(fields))
    assert not unknown, f"EXPECTED has rows for operations not in the schema: {', '.join(unknown)}"
    assert set(BUILDERS) == set(fields), f"request builders differ from the schema: {set(BUILDERS) ^ set(fields)}"
    for (_, operation, target), _outcome in EXPECTED.items():
        assert (target == "-") == ((operation, "own") not in ROWS and (operation, "foreign") not in ROWS)
    for operation in fields:
        assert {t for _, op, t in EXPECTED if op == operation} in ({"-"}, {"own", "foreign"}), operation
        assert {a for a, op, _ in EXPECTED if op == operation} == set(ACTORS), operation


async def test_refused_calls_left_no_trace(world: World) -> None:
    """After the matrix: every audit entry left by a matrix caller is for a change its rows allow, and
    the foreign contract's ledger holds entries only from callers allowed to write it."""
    allowed_actions = {
        actor: set().union(
            *(AUDIT_ACTIONS[op] for (a, op, _t), outcome in EXPECTED.items() if a == actor and op in MUTATIONS and outcome == A)
        )
        for actor in ACTORS
    }
    ledger_writers = {
        world.callers[a].ref
        for (a, op, t), outcome in EXPECTED.items()
        if t == "foreign"
        and op in ("consumeEntitlement", "reverseEntry", "adjustEntitlement", "bookActivity", "cancelBooking")
        and outcome == A
    } | {ADMIN.ref}
    async with world.ctx.db.read() as session:
        for actor in ACTORS:
            ref = world.callers[actor].ref
            if ref is None:
                continue
            actions = set(await session.scalars(select(AuditEntry.action).where(AuditEntry.actor_ref == ref)))
            actions.discard("session.login")
            assert actions <= allowed_actions[actor], f"{actor} left audit entries {actions - allowed_actions[actor]}"
        foreign = [uuid.UUID(world.contracts["foreign"]), uuid.UUID(world.booking_contracts["foreign"])]
        refs = set(await session.scalars(select(LedgerEntry.actor_ref).where(LedgerEntry.contract_id.in_(foreign))))
    assert refs <= ledger_writers, f"foreign ledger written by {refs - ledger_writers}"


# ---- a partner that works with customer A without managing it -------------------------------------------
#
# Its link lets it see A's entitlements but not book. Calendar feeds: it may create feeds of its own on A's
# contracts and revoke those, never A's own feeds (policy `feed.revoke_others`); it may not book.
NON_MANAGING = [
    ("createCalendarFeed", "own", A),
    ("revokeCalendarFeed", "customer's feed", D),
    ("revokeCalendarFeed", "its own feed", A),
    ("revokeCalendarFeed", "foreign", H),
    ("bookActivity", "own", D),
]


@pytest.mark.parametrize(("operation", "target", "expected"), NON_MANAGING, ids=[f"{o}-{t}" for o, t, _ in NON_MANAGING])
async def test_a_partner_that_does_not_manage_the_customer(world: World, operation: str, target: str, expected: str) -> None:
    if "partner_nonmanaging" not in world.callers:
        code = unique("matrix-partner-nm")
        partner = await parties.create_partner(world.ctx, ADMIN, parties.NewPartner(code=code, name=code))
        await parties.link_partner(
            world.ctx, ADMIN, partner_id=partner.id, customer_id=uuid.UUID(world.customers["own"]), managed=False,
            production_access=False, can_file_tickets=True, can_view_entitlements=True, can_book_activities=False,
        )
        world.callers["partner_nonmanaging"] = await _user(world.ctx, UserKind.PARTNER, partner_id=partner.id)
    caller = "partner_nonmanaging"
    if operation == "revokeCalendarFeed" and target == "its own feed":
        created = await run(world, caller, await m_create_calendar_feed(world, "own"))
        ident = created.body["data"]["createCalendarFeed"]["feed"]["id"]
        request = (await m_revoke_calendar_feed(world, "missing")).with_id(ident)
    elif operation == "revokeCalendarFeed":
        request = await m_revoke_calendar_feed(world, "own" if target == "customer's feed" else "foreign")
    else:
        request = await BUILDERS[operation](world, target)
    response = await run(world, caller, request)
    assert classify(operation, request, response) == expected, response.body
    if expected == H:
        missing = await BUILDERS[operation](world, "missing")
        assert normalised(response, request.ids) == normalised(await run(world, caller, missing), missing.ids)
