"""The access policy, as data: which actor may take which action, and which rows each actor sees.

Every service function asks here; nothing else in the code base decides who may do what. An object
outside an actor's rows is answered exactly as one that does not exist.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Select, and_, or_, select

from api.models import (
    AuditEntry,
    Booking,
    Contract,
    Customer,
    Partner,
    PartnerCustomer,
    Ticket,
    WebhookDelivery,
    WebhookOwner,
    WebhookSubscription,
)
from api.services.context import Actor
from api.services.errors import PermissionDenied

__all__ = [
    "ACTIONS",
    "LINK_RULES",
    "OUT_OF_SCOPE_MESSAGE",
    "Rule",
    "allows",
    "managed_customers",
    "may",
    "may_revoke_feed",
    "partner_link",
    "principals",
    "require",
    "visible_contracts",
    "visible_customers",
    "visible_audit",
    "visible_bookings",
    "visible_contract_ids",
    "visible_partners",
    "visible_tickets",
    "visible_webhook_deliveries",
    "visible_webhook_subscriptions",
    "WEBHOOK_EVENT_LINKS",
    "webhook_candidates",
    "webhook_owner",
    "webhook_receives",
]

ANYONE = "*"
STAFF = frozenset({"admin", "client_manager", "support_engineer"})
PROVIDER_WRITERS = frozenset({"admin", "client_manager", "integrator"})
OUT_OF_SCOPE_MESSAGE = (
    "The provider acts for a customer only at the request of that customer or of one of its official "
    "partners; requests from anyone else are out of scope."
)


class Rule:
    """Who may take an action: principals are actor kinds ('customer', 'partner') and staff roles
    ('admin', 'client_manager', 'support_engineer', 'integrator' for provider tokens)."""

    def __init__(self, description: str, *allowed: str, writes: bool):
        self.description = description
        self.allowed = frozenset(allowed)
        self.writes = writes

    def allows(self, actor: Actor) -> bool:
        return ANYONE in self.allowed or bool(self.allowed & principals(actor))


# Reads marked ANYONE are still limited to the rows the visible_* queries below give each actor.
ACTIONS: dict[str, Rule] = {
    "program.read": Rule("read programs", ANYONE, writes=False),
    "program.load": Rule("load programs", "admin", writes=True),
    "customer.read": Rule("read customers", ANYONE, writes=False),
    "customer.create": Rule("create customers", *PROVIDER_WRITERS, writes=True),
    # A client manager only for the customers of the contracts assigned to them (managed_customers).
    "customer.report_contacts": Rule("set customers' report contacts", *PROVIDER_WRITERS, writes=True),
    "partner.read": Rule("read partners", *STAFF, "integrator", "partner", writes=False),
    "partner.create": Rule("create partners", "admin", "integrator", writes=True),
    # A link hands the partner the customer's data (all its contracts, not just one client manager's):
    # granting that is for admins and integrators, not for a client manager.
    "partner.link": Rule("link partners to customers", "admin", "integrator", writes=True),
    "contract.read": Rule("read contracts", ANYONE, writes=False),
    "contract.create": Rule("create contracts", *PROVIDER_WRITERS, writes=True),
    "entitlement.consume": Rule("consume entitlements", *PROVIDER_WRITERS, "support_engineer", writes=True),
    "ledger.reverse": Rule("reverse ledger entries", *PROVIDER_WRITERS, writes=True),
    "ledger.adjust": Rule("adjust entitlements", "admin", writes=True),
    "scope.read": Rule("read what is out of scope", ANYONE, writes=False),
    "ticket.check": Rule("check whether a ticket may be filed", ANYONE, writes=False),
    "ticket.read": Rule("read tickets", ANYONE, writes=False),
    "ticket.create": Rule("file tickets", "customer", "partner", *PROVIDER_WRITERS, "support_engineer", writes=True),
    "ticket.update": Rule("work on tickets", *PROVIDER_WRITERS, "support_engineer", writes=True),
    "ticket.participate": Rule("take part in their tickets", "customer", "partner", writes=True),
    "calendar.read": Rule("read support calendars", ANYONE, writes=False),
    # Booking is the customer's side's (a partner only where it manages the customer and the link allows
    # it) or the contract's client manager's; scheduling and delivering are the provider's.
    "booking.read": Rule("read bookings", ANYONE, writes=False),
    "booking.create": Rule("book activities", "customer", "partner", *PROVIDER_WRITERS, writes=True),
    "booking.cancel": Rule("cancel booked activities", "customer", "partner", *PROVIDER_WRITERS, writes=True),
    "booking.manage": Rule("schedule and deliver booked activities", *PROVIDER_WRITERS, writes=True),
    "feed.manage": Rule("create and revoke calendar feeds", "customer", "partner", *PROVIDER_WRITERS, writes=True),
    # A feed someone else created (the customer's own, say) is revoked only by the customer's side: the
    # customer, a partner that manages it, and the provider's writers. A partner that works with the
    # customer without managing it subscribes feeds of its own and revokes only those (LINK_RULES).
    "feed.revoke_others": Rule(
        "revoke calendar feeds created by someone else", "customer", "partner", *PROVIDER_WRITERS, writes=True
    ),
    # Outages are the provider's record (a client manager only on the contracts assigned to them, and never
    # program-wide); availability and credits are read by whoever reads the contract.
    "outage.record": Rule("record outages", *PROVIDER_WRITERS, writes=True),
    "outage.record_program": Rule("record outages for every contract of a program", "admin", "integrator", writes=True),
    "availability.read": Rule("read outages, availability and service credits", ANYONE, writes=False),
    # On-call days follow the booking rules: the customer, a partner that manages it where the link allows
    # booking, the contract's client manager, admins and integrators.
    "on_call.read": Rule("read on-call reservations", ANYONE, writes=False),
    "on_call.reserve": Rule("reserve on-call days", "customer", "partner", *PROVIDER_WRITERS, writes=True),
    "on_call.cancel": Rule("cancel on-call days", "customer", "partner", *PROVIDER_WRITERS, writes=True),
    # E-mail deliveries name every customer's correspondents: admins and support engineers only.
    "outbox.read": Rule("read e-mail deliveries", "admin", "support_engineer", writes=False),
    "outbox.retry": Rule("retry failed e-mail deliveries", "admin", "support_engineer", writes=True),
    "audit.read": Rule("read the audit log", *STAFF, writes=False),
    "user.read": Rule("read users", "admin", writes=False),
    "user.manage": Rule("manage users", "admin", writes=True),
    "token.manage": Rule("manage API tokens", "admin", writes=True),
    # Webhooks: each side subscribes for itself (a customer to its own events, a partner to those of the
    # customers linked to it, admins and integrators for the provider); staff read every subscription and
    # delivery, and replay deliveries. What a subscription receives is `webhook_receives`.
    "webhook.read": Rule(
        "read webhook subscriptions and deliveries", "customer", "partner", "admin", "support_engineer", "integrator",
        writes=False,
    ),
    "webhook.manage": Rule("create and revoke webhook subscriptions", "customer", "partner", "admin", "integrator", writes=True),
    "webhook.replay": Rule("replay webhook deliveries", "admin", "support_engineer", writes=True),
}


# A partner acts for a customer only through its link: per action, the link's flag the action needs (None:
# any link) and whether the partner must manage the customer. Actions not listed ask nothing of the link.
LINK_RULES: dict[str, tuple[str | None, bool]] = {
    "ticket.check": ("can_file_tickets", False),
    "ticket.create": ("can_file_tickets", False),
    "ticket.participate": ("can_file_tickets", False),
    "contract.read": ("can_view_entitlements", False),
    "booking.create": ("can_book_activities", True),
    "booking.cancel": ("can_book_activities", True),
    "on_call.reserve": ("can_book_activities", True),
    "on_call.cancel": ("can_book_activities", True),
    "feed.manage": ("can_view_entitlements", False),
    "feed.revoke_others": (None, True),
}


def principals(actor: Actor) -> frozenset[str]:
    return frozenset({actor.kind}) | actor.roles


def may(actor: Actor, action: str) -> bool:
    """Whether the actor may take the action at all (interfaces use it to offer only what may work)."""
    rule = ACTIONS[action]
    return rule.allows(actor) and not (rule.writes and actor.read_only)


def allows(actor: Actor, action: str, *, link: PartnerCustomer | None = None) -> bool:
    """Whether the actor may take the action for one customer: the table above and, for a partner, the link
    it acts for that customer through (`partner_link`; None: it has none). Interfaces ask it to offer only
    what will work; services ask it (or `require_for`) before the change."""
    if not may(actor, action):
        return False
    if actor.kind != "partner" or action not in LINK_RULES:
        return True
    if link is None or link.partner_id != actor.partner_id:
        return False
    flag, must_manage = LINK_RULES[action]
    return (flag is None or bool(getattr(link, flag))) and (link.managed or not must_manage)


def may_revoke_feed(actor: Actor, created_by_ref: str, *, link: PartnerCustomer | None = None) -> bool:
    """A feed is revoked by whoever created it (if it may manage feeds at all), or by one who may revoke
    others' feeds: a partner that works with a customer without managing it never revokes the customer's."""
    if created_by_ref == actor.ref and allows(actor, "feed.manage", link=link):
        return True
    return allows(actor, "feed.revoke_others", link=link)


def require(actor: Actor, action: str) -> None:
    rule = ACTIONS[action]
    if rule.writes and actor.read_only:
        raise PermissionDenied(f"{actor.name} has read-only access and may not {rule.description}")
    if not rule.allows(actor):
        raise PermissionDenied(f"{actor.name} may not {rule.description}")


def _sees_everything(actor: Actor) -> bool:
    return actor.kind == "system" or bool(actor.roles & {"admin", "support_engineer", "integrator"})


def _linked_customers(partner_id: uuid.UUID | None, *conditions) -> Select[tuple[uuid.UUID]]:  # type: ignore[no-untyped-def]
    return select(PartnerCustomer.customer_id).where(PartnerCustomer.partner_id == partner_id, *conditions)


def visible_contracts(actor: Actor) -> Select[tuple[Contract]]:
    """The one query every contract read starts from."""
    query = select(Contract)
    if _sees_everything(actor):
        return query
    if "client_manager" in actor.roles:
        return query.where(Contract.client_manager_id == actor.user_id)
    if actor.kind == "customer":
        return query.where(Contract.customer_id == actor.customer_id)
    if actor.kind == "partner":
        return query.where(
            Contract.customer_id.in_(_linked_customers(actor.partner_id, PartnerCustomer.can_view_entitlements))
        )
    return query.where(False)


def visible_contract_ids(actor: Actor) -> Select[tuple[uuid.UUID]]:
    """The ids of the contracts the actor sees, for rows that belong to a contract (entries, bookings, feeds)."""
    return visible_contracts(actor).with_only_columns(Contract.id)


def visible_tickets(actor: Actor) -> Select[tuple[Ticket]]:
    """A customer sees its own tickets; a partner those of the customers it may file for; a client
    manager those on the contracts assigned to them; other staff all."""
    query = select(Ticket)
    if _sees_everything(actor):
        return query
    if "client_manager" in actor.roles:
        assigned = select(Contract.id).where(Contract.client_manager_id == actor.user_id)
        return query.where(Ticket.contract_id.in_(assigned))
    if actor.kind == "customer":
        return query.where(Ticket.customer_id == actor.customer_id)
    if actor.kind == "partner":
        return query.where(Ticket.customer_id.in_(_linked_customers(actor.partner_id, PartnerCustomer.can_file_tickets)))
    return query.where(False)


def visible_bookings(actor: Actor) -> Select[tuple[Booking]]:
    """The bookings of the contracts the actor sees."""
    query = select(Booking)
    if _sees_everything(actor):
        return query
    return query.where(Booking.contract_id.in_(visible_contract_ids(actor)))


def visible_customers(actor: Actor) -> Select[tuple[Customer]]:
    query = select(Customer)
    if actor.is_provider:
        return query
    if actor.kind == "customer":
        return query.where(Customer.id == actor.customer_id)
    if actor.kind == "partner":
        return query.where(Customer.id.in_(_linked_customers(actor.partner_id)))
    return query.where(False)


def managed_customers(actor: Actor) -> Select[tuple[Customer]]:
    """The customers whose details a provider actor may change: all of them, or for a client manager
    those of the contracts assigned to them."""
    query = select(Customer)
    if actor.kind == "system" or actor.roles & {"admin", "integrator"}:
        return query
    if "client_manager" in actor.roles:
        return query.where(Customer.id.in_(select(Contract.customer_id).where(Contract.client_manager_id == actor.user_id)))
    return query.where(False)


def visible_partners(actor: Actor) -> Select[tuple[Partner]]:
    query = select(Partner)
    if actor.is_provider:
        return query
    if actor.kind == "partner":
        return query.where(Partner.id == actor.partner_id)
    return query.where(False)


def visible_audit(actor: Actor) -> Select[tuple[AuditEntry]]:
    """Admins and support engineers read the whole log; a client manager reads what concerns the
    customers of the contracts assigned to them, and their own actions."""
    query = select(AuditEntry)
    if actor.kind == "system" or actor.roles & {"admin", "support_engineer"}:
        return query
    if "client_manager" in actor.roles:
        assigned = select(Contract.customer_id).where(Contract.client_manager_id == actor.user_id)
        return query.where(or_(AuditEntry.on_behalf_of_customer_id.in_(assigned), AuditEntry.actor_ref == actor.ref))
    return query.where(False)


def partner_link(actor: Actor, customer_id: uuid.UUID) -> Select[tuple[PartnerCustomer]]:
    """The link through which a partner actor acts for a customer (no row: it does not)."""
    return select(PartnerCustomer).where(
        and_(PartnerCustomer.partner_id == actor.partner_id, PartnerCustomer.customer_id == customer_id)
    )


# ---- webhooks -----------------------------------------------------------------------------------------

# The link flag a partner's subscription needs to receive an event of each family: the one through which the
# partner reads what such an event is about (visible_tickets, visible_contracts, visible_bookings).
WEBHOOK_EVENT_LINKS: dict[str, str] = {
    "ticket": "can_file_tickets",
    "entitlement": "can_view_entitlements",
    "booking": "can_view_entitlements",
    "report": "can_view_entitlements",
}


def webhook_owner(actor: Actor) -> tuple[WebhookOwner, uuid.UUID | None, uuid.UUID | None]:
    """Whom a subscription the actor creates belongs to: its customer, its partner, or the provider."""
    if actor.kind == "customer":
        return WebhookOwner.CUSTOMER, actor.customer_id, None
    if actor.kind == "partner":
        return WebhookOwner.PARTNER, None, actor.partner_id
    return WebhookOwner.PROVIDER, None, None


def webhook_candidates(customer_ids: set[uuid.UUID], *, provider_only: bool = False) -> Select[tuple[WebhookSubscription]]:
    """The active subscriptions that might receive events about these customers: the provider's, the
    customers' own and those of the partners linked to them (`webhook_receives` decides per event and link).
    Events for the provider alone (internal comments) have only the provider's."""
    owners = [WebhookSubscription.owner_kind == WebhookOwner.PROVIDER]
    if not provider_only:
        owners += [
            and_(WebhookSubscription.owner_kind == WebhookOwner.CUSTOMER, WebhookSubscription.customer_id.in_(customer_ids)),
            and_(
                WebhookSubscription.owner_kind == WebhookOwner.PARTNER,
                WebhookSubscription.partner_id.in_(
                    select(PartnerCustomer.partner_id).where(PartnerCustomer.customer_id.in_(customer_ids))
                ),
            ),
        ]
    return select(WebhookSubscription).where(WebhookSubscription.active.is_(True), or_(*owners))


def webhook_receives(
    subscription: WebhookSubscription,
    customer_id: uuid.UUID,
    family: str,
    link: PartnerCustomer | None,
    *,
    provider_only: bool = False,
) -> bool:
    """Whether an active subscription receives an event of `family` about the customer: the provider's every
    event; the customer's its own (never one for the provider alone); a partner's those of a customer it is
    linked to (`link`: that partner's link to that customer, None if there is none) where the link grants
    what reading such an event needs (WEBHOOK_EVENT_LINKS)."""
    if not subscription.active:
        return False
    if subscription.owner_kind == WebhookOwner.PROVIDER:
        return True
    if provider_only:
        return False
    if subscription.owner_kind == WebhookOwner.CUSTOMER:
        return subscription.customer_id == customer_id
    if subscription.owner_kind == WebhookOwner.PARTNER:
        return (
            link is not None
            and link.partner_id == subscription.partner_id
            and link.customer_id == customer_id
            and bool(getattr(link, WEBHOOK_EVENT_LINKS[family]))
        )
    return False


def visible_webhook_subscriptions(actor: Actor) -> Select[tuple[WebhookSubscription]]:
    """Admins, support engineers and integrators see every subscription; a customer or a partner its own."""
    query = select(WebhookSubscription)
    if _sees_everything(actor):
        return query
    if actor.kind == "customer":
        return query.where(
            WebhookSubscription.owner_kind == WebhookOwner.CUSTOMER, WebhookSubscription.customer_id == actor.customer_id
        )
    if actor.kind == "partner":
        return query.where(
            WebhookSubscription.owner_kind == WebhookOwner.PARTNER, WebhookSubscription.partner_id == actor.partner_id
        )
    return query.where(False)


def visible_webhook_deliveries(actor: Actor) -> Select[tuple[WebhookDelivery]]:
    """The deliveries of the subscriptions the actor sees."""
    query = select(WebhookDelivery)
    if _sees_everything(actor):
        return query
    return query.where(
        WebhookDelivery.subscription_id.in_(visible_webhook_subscriptions(actor).with_only_columns(WebhookSubscription.id))
    )
