"""Customers and partners: creating them, linking a partner to the customers it manages, reading them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.models import Customer, Partner, PartnerCustomer
from api.services import audit, inputs, policy
from api.services.context import Actor, AppContext
from api.services.errors import Conflict, NotFound, ValidationFailed, check_email
from api.services.paging import MAX_PAGE, Page, by_key, cut_page, encode_key_cursor

__all__ = [
    "NewCustomer",
    "NewPartner",
    "create_customer",
    "create_partner",
    "customer_cursor",
    "customer_options",
    "get_customers_by_ids",
    "link_partner",
    "list_partners",
    "MAX_REPORT_CONTACTS",
    "page_customers",
    "set_report_contacts",
]

_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class NewCustomer:
    code: str
    name: str
    email: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class NewPartner:
    code: str
    name: str
    email: str | None = None
    certified_until_date: date | None = None


def _check_party(ctx: AppContext, code: str, name: str, email: str | None) -> None:
    if not _CODE.fullmatch(code):
        raise ValidationFailed(
            f"code {code[:64]!r} must be 1-63 lower-case letters, digits or dashes, starting with a letter or digit",
            field="code",
        )
    if not name.strip():
        raise ValidationFailed("name must not be empty", field="name")
    if len(name.strip()) > 200:
        raise ValidationFailed("name must be at most 200 characters", field="name")
    inputs.text(ctx, name.strip(), "name")
    check_email(email, field="email")


async def create_customer(ctx: AppContext, actor: Actor, new: NewCustomer) -> Customer:
    policy.require(actor, "customer.create")
    _check_party(ctx, new.code, new.name, new.email)
    if new.country is not None and not re.fullmatch(r"[A-Z]{2}", new.country):
        raise ValidationFailed(f"country {new.country!r} must be an ISO 3166 alpha-2 code such as DK", field="country")
    async with ctx.db.write() as session:
        if await session.scalar(select(Customer.id).where(Customer.code == new.code)):
            raise Conflict(f"a customer with code {new.code!r} already exists", field="code")
        customer = Customer(
            code=new.code, name=new.name.strip(), email=new.email, country=new.country, created_at=ctx.now()
        )
        session.add(customer)
        await session.flush()
        await audit.record(
            session, ctx, actor, "customer.create", target_type="customer", target_id=customer.id,
            on_behalf_of_customer_id=customer.id, detail={"code": customer.code},
        )
        return customer


async def create_partner(ctx: AppContext, actor: Actor, new: NewPartner) -> Partner:
    policy.require(actor, "partner.create")
    _check_party(ctx, new.code, new.name, new.email)
    inputs.optional_day(ctx, new.certified_until_date, "certifiedUntilDate")
    async with ctx.db.write() as session:
        if await session.scalar(select(Partner.id).where(Partner.code == new.code)):
            raise Conflict(f"a partner with code {new.code!r} already exists", field="code")
        partner = Partner(
            code=new.code,
            name=new.name.strip(),
            email=new.email,
            certified_until_date=new.certified_until_date,
            created_at=ctx.now(),
        )
        session.add(partner)
        await session.flush()
        await audit.record(
            session, ctx, actor, "partner.create", target_type="partner", target_id=partner.id,
            detail={"code": partner.code},
        )
        return partner


async def link_partner(
    ctx: AppContext,
    actor: Actor,
    *,
    partner_id: uuid.UUID,
    customer_id: uuid.UUID,
    managed: bool,
    production_access: bool,
    can_file_tickets: bool = True,
    can_view_entitlements: bool = True,
    can_book_activities: bool = False,
) -> PartnerCustomer:
    """Say that a partner manages (or just works with) a customer; linking again updates the link."""
    policy.require(actor, "partner.link")
    async with ctx.db.write() as session:
        await _existing(session, Partner, partner_id, "partner", "partnerId")
        await _existing(session, Customer, customer_id, "customer", "customerId")
        link = await session.get(PartnerCustomer, (partner_id, customer_id))
        if link is None:
            link = PartnerCustomer(partner_id=partner_id, customer_id=customer_id, created_at=ctx.now())
            session.add(link)
        link.managed = managed
        link.production_access = production_access
        link.can_file_tickets = can_file_tickets
        link.can_view_entitlements = can_view_entitlements
        link.can_book_activities = can_book_activities
        await session.flush()
        await audit.record(
            session, ctx, actor, "partner.link", target_type="partner", target_id=partner_id,
            on_behalf_of_customer_id=customer_id,
            detail={
                "managed": managed,
                "production_access": production_access,
                "can_file_tickets": can_file_tickets,
                "can_view_entitlements": can_view_entitlements,
                "can_book_activities": can_book_activities,
            },
        )
        return link


async def _existing(session: AsyncSession, model: type, ident: uuid.UUID, what: str, field: str) -> object:
    row = await session.get(model, ident)
    if row is None:
        raise NotFound(what, ident, field=field)
    return row


def customer_cursor(customer: Customer) -> str:
    return encode_key_cursor(customer.code)


async def page_customers(
    ctx: AppContext, actor: Actor, *, search: str | None = None, first: int = 50, after: str | None = None
) -> Page[Customer]:
    """The customers the actor sees, by code, paged by keyset on it (codes are unique); optionally those whose
    code starts with `search`, or whose name contains it (either case)."""
    policy.require(actor, "customer.read")
    query = by_key(policy.visible_customers(actor), Customer.code, first=first, after=after)
    needle = (inputs.optional_text(ctx, search, "search") or "").strip()
    if needle:
        query = query.where(
            or_(Customer.code.startswith(needle, autoescape=True), func.lower(Customer.name).contains(needle.lower(), autoescape=True))
        )
    async with ctx.db.read() as session:
        found = list(await session.scalars(query))
    return Page(*cut_page(found, first, customer_cursor))


async def customer_options(ctx: AppContext, actor: Actor, chosen: uuid.UUID | None = None) -> list[Customer]:
    """The customers a filter offers, by name: the first page of those the actor sees (by code), and the
    chosen one wherever it sorts. Bounded, however many customers there are."""
    found = (await page_customers(ctx, actor, first=MAX_PAGE)).items
    if chosen is not None and chosen not in {c.id for c in found}:
        found += (await get_customers_by_ids(ctx, actor, [chosen])).values()
    return sorted(found, key=lambda c: (c.name.casefold(), c.code))


async def get_customers_by_ids(ctx: AppContext, actor: Actor, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Customer]:
    policy.require(actor, "customer.read")
    async with ctx.db.read() as session:
        rows = await session.scalars(policy.visible_customers(actor).where(Customer.id.in_(set(ids))))
        return {row.id: row for row in rows}


async def list_partners(ctx: AppContext, actor: Actor) -> list[Partner]:
    policy.require(actor, "partner.read")
    async with ctx.db.read() as session:
        return list(await session.scalars(policy.visible_partners(actor).order_by(Partner.code)))


MAX_REPORT_CONTACTS = 20


async def set_report_contacts(ctx: AppContext, actor: Actor, customer_id: uuid.UUID, emails: Sequence[str]) -> Customer:
    """Replace who receives a customer's monthly reports: e-mail addresses, trimmed, lower-cased and each
    kept once in the order given, at most MAX_REPORT_CONTACTS; an empty list falls back to the customer's
    own address. A managed customer's reports still go to its partner, never to these addresses."""
    policy.require(actor, "customer.report_contacts")
    contacts: list[str] = []
    # Bounded before reading: repeats and blanks count, so a list cannot be long only in what it repeats.
    emails = inputs.items(emails, "reportContacts", most=10 * MAX_REPORT_CONTACTS)
    for raw in emails:
        email = raw.strip().lower()
        if not email:
            continue
        check_email(email, field="reportContacts")
        if email not in contacts:
            contacts.append(email)
    if len(contacts) > MAX_REPORT_CONTACTS:
        raise ValidationFailed(
            f"at most {MAX_REPORT_CONTACTS} report contacts, not {len(contacts)}", field="reportContacts"
        )
    async with ctx.db.write() as session:
        # A customer the caller may not change is answered as one that does not exist.
        customer = await session.scalar(policy.managed_customers(actor).where(Customer.id == customer_id))
        if customer is None:
            raise NotFound("customer", customer_id, field="customerId")
        before = list(customer.report_contacts or [])
        customer.report_contacts = contacts
        await session.flush()
        await audit.record(
            session, ctx, actor, "customer.report_contacts", target_type="customer", target_id=customer.id,
            on_behalf_of_customer_id=customer.id, detail={"before": before, "after": contacts},
        )
        return customer
