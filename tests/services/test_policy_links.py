"""What a partner may do for one customer depends on its link (policy.LINK_RULES): booking only where it
manages the customer and the link allows it; calendar feeds of its own where it does not manage the
customer, never revoking the customer's."""

from __future__ import annotations

import uuid

import pytest

from api.models import PartnerCustomer
from api.services import calendar_feeds, parties, policy
from api.services.context import Actor
from api.services.errors import PermissionDenied
from tests.conftest import ADMIN, unique

PARTNER_ID = uuid.uuid4()
PARTNER = Actor(kind="partner", ref="user:nora", name="Nora", partner_id=PARTNER_ID)
CUSTOMER = Actor(kind="customer", ref="user:cora", name="Cora", customer_id=uuid.uuid4())


def link(**flags: bool) -> PartnerCustomer:
    return PartnerCustomer(partner_id=PARTNER_ID, customer_id=uuid.uuid4(), **flags)


@pytest.mark.parametrize(
    ("flags", "book", "revoke_others", "feeds"),
    [
        ({"managed": True, "can_book_activities": True, "can_view_entitlements": True}, True, True, True),
        ({"managed": True, "can_book_activities": False, "can_view_entitlements": True}, False, True, True),
        ({"managed": False, "can_book_activities": True, "can_view_entitlements": True}, False, False, True),
        ({"managed": False, "can_book_activities": False, "can_view_entitlements": False}, False, False, False),
    ],
)
def test_what_a_partner_may_do_follows_its_link(flags, book, revoke_others, feeds):
    found = link(**flags)
    assert policy.allows(PARTNER, "booking.create", link=found) is book
    assert policy.allows(PARTNER, "feed.revoke_others", link=found) is revoke_others
    assert policy.allows(PARTNER, "feed.manage", link=found) is feeds
    assert policy.may_revoke_feed(PARTNER, "someone else", link=found) is revoke_others
    assert policy.may_revoke_feed(PARTNER, PARTNER.ref, link=found) is feeds


def test_without_a_link_a_partner_may_nothing_for_the_customer():
    assert not policy.allows(PARTNER, "booking.create")
    assert not policy.allows(PARTNER, "ticket.create")
    other = PartnerCustomer(partner_id=uuid.uuid4(), customer_id=uuid.uuid4(), managed=True, can_book_activities=True)
    assert not policy.allows(PARTNER, "booking.create", link=other)  # another partner's link


def test_customers_and_staff_are_not_asked_about_links():
    assert policy.allows(CUSTOMER, "booking.create") and policy.may_revoke_feed(CUSTOMER, "someone else")
    engineer = Actor(kind="staff", ref="user:sam", name="Sam", roles=frozenset({"support_engineer"}))
    assert not policy.allows(engineer, "booking.create") and not policy.may_revoke_feed(engineer, engineer.ref)


async def test_a_non_managing_partner_revokes_only_its_own_feeds(ctx, make_customer, make_contract):
    customer = await make_customer()
    contract = await make_contract(customer=customer)
    partner = await parties.create_partner(ctx, ADMIN, parties.NewPartner(code=unique("helper"), name="Helper"))
    await parties.link_partner(
        ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=False, production_access=False,
        can_book_activities=True,
    )
    actor = Actor(kind="partner", ref=f"user:{uuid.uuid4()}", name="Helper user", partner_id=partner.id)
    customers, _ = await calendar_feeds.create_feed(ctx, ADMIN, contract.id, "The customer's")
    own, _ = await calendar_feeds.create_feed(ctx, actor, contract.id, "Ours")
    with pytest.raises(PermissionDenied, match="revokes only the feeds it created"):
        await calendar_feeds.revoke_feed(ctx, actor, customers.id)
    assert (await calendar_feeds.revoke_feed(ctx, actor, own.id)).revoked_at is not None
