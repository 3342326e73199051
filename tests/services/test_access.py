"""Intermediated access (seed 003, "Partners and support hours"), at service level: partner links and
their permissions, who the provider writes to, integration-support eligibility, out-of-scope answers
that leak nothing, and the out-of-scope lists with their sources. Every refusal writes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from api.config import PROJECT_ROOT
from api.models import AuditEntry, LedgerEntry, PartnerCustomer
from api.programs.loader import parse_program, read_program_file
from api.services import access, ledger, parties, policy, programs
from api.services.context import Actor, AppContext
from api.services.errors import DomainError, ErrorCode, NotFound, OutOfScope, PermissionDenied, ValidationFailed
from tests.conftest import ADMIN, NOW, unique

TODAY = NOW.date()  # 2026-03-10, in UTC and in Europe/Madrid alike at noon UTC
PARTNER_SUPPORT = read_program_file(PROJECT_ROOT / "programs" / "partner-support.toml").program
REFUSAL = PARTNER_SUPPORT.partners.integration_support_refusal.strip()
INTEGRATION = "integration-support"
SUPPORT_ENGINEER = Actor(
    kind="staff", ref="user:engineer", name="Sam Support", roles=frozenset({"support_engineer"}), interface="graphql"
)


# ---- helpers -------------------------------------------------------------------------------------


async def make_partner(ctx: AppContext, certified_until: date | None = None, **fields):  # type: ignore[no-untyped-def]
    code = fields.pop("code", unique("partner"))
    return await parties.create_partner(
        ctx,
        ADMIN,
        parties.NewPartner(
            code=code, name=fields.pop("name", f"Partner {code}"), email=fields.pop("email", f"{code}@partner.example"),
            certified_until_date=certified_until,
        ),
    )


async def link(ctx: AppContext, partner, customer, **flags: bool):  # type: ignore[no-untyped-def]
    values = {"managed": True, "production_access": False, **flags}
    return await parties.link_partner(ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, **values)


def partner_actor(partner) -> Actor:  # type: ignore[no-untyped-def]
    return Actor(kind="partner", ref=f"user:{uuid.uuid4()}", name=f"User of {partner.name}", partner_id=partner.id)


def customer_actor(customer_id: uuid.UUID) -> Actor:
    return Actor(kind="customer", ref=f"user:{uuid.uuid4()}", name="A customer user", customer_id=customer_id)


async def support_contract(make_contract, customer, plan: str = "enterprise", **fields):  # type: ignore[no-untyped-def]
    """A partner-support contract (2026-02-15 for a year) with 10 support hours."""
    return await make_contract(
        program="partner-support", plan=plan, customer=customer, custom_allowances={"support-hours": 600}, **fields
    )


async def counts(ctx: AppContext) -> dict[str, int]:
    """Rows in the tables a refused action must not touch."""
    from api.models import ApiToken, User

    async with ctx.db.read() as session:
        return {
            model.__tablename__: await session.scalar(select(func.count()).select_from(model))
            for model in (AuditEntry, LedgerEntry, PartnerCustomer, User, ApiToken)
        }


async def link_row(ctx: AppContext, partner_id: uuid.UUID, customer_id: uuid.UUID) -> PartnerCustomer | None:
    async with ctx.db.read() as session:
        return await session.get(PartnerCustomer, (partner_id, customer_id))


async def refusal(coroutine) -> DomainError:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as refused:
        await coroutine
    return refused.value


# ---- 1. partner-customer links and their permissions ---------------------------------------------


async def test_a_link_carries_managed_production_access_and_permissions(ctx, make_customer):
    customer, partner = await make_customer(), await make_partner(ctx)
    before = await counts(ctx)
    created = await parties.link_partner(
        ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=True,
        can_file_tickets=False, can_view_entitlements=False, can_book_activities=True,
    )
    row = await link_row(ctx, partner.id, customer.id)
    flags = ("managed", "production_access", "can_file_tickets", "can_view_entitlements", "can_book_activities")
    assert [getattr(row, f) for f in flags] == [getattr(created, f) for f in flags] == [True, True, False, False, True]

    # Linking again updates the one link; each link writes one audit row with the permissions.
    await parties.link_partner(ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=False,
                               production_access=False)
    row = await link_row(ctx, partner.id, customer.id)
    assert [getattr(row, f) for f in flags] == [False, False, True, True, False]  # the defaults again
    after = await counts(ctx)
    assert after["partner_customers"] == before["partner_customers"] + 1
    assert after["audit_log"] == before["audit_log"] + 2
    async with ctx.db.read() as session:
        entries = list(await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "partner.link", AuditEntry.on_behalf_of_customer_id == customer.id)
        ))
    assert [e.target_id for e in entries] == [str(partner.id)] * 2
    assert {e.detail["managed"] for e in entries} == {True, False}


@pytest.mark.parametrize(
    "actor",
    [
        Actor(kind="staff", ref="user:cm", name="Carl Manager", roles=frozenset({"client_manager"})),
        SUPPORT_ENGINEER,
        Actor(kind="staff", ref="user:none", name="Staff without a role"),
        Actor(kind="staff", ref="token:ro", name="read-only integrator", roles=frozenset({"integrator"}), read_only=True),
    ],
    ids=["client_manager", "support_engineer", "no_role", "read_only_integrator"],
)
async def test_only_admins_and_integrators_link_partners(ctx, make_customer, actor):
    customer, partner = await make_customer(), await make_partner(ctx)
    before = await counts(ctx)
    refused = await refusal(parties.link_partner(
        ctx, actor, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=True
    ))
    assert type(refused) is PermissionDenied
    expected = "has read-only access and may not" if actor.read_only else "may not"
    assert refused.message == f"{actor.name} {expected} link partners to customers"
    assert await counts(ctx) == before


async def test_customers_and_partners_cannot_link_themselves(ctx, make_customer):
    customer, partner = await make_customer(), await make_partner(ctx, TODAY + timedelta(days=300))
    before = await counts(ctx)
    for actor in (customer_actor(customer.id), partner_actor(partner)):
        refused = await refusal(parties.link_partner(
            ctx, actor, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=True
        ))
        assert refused.code == ErrorCode.PERMISSION_DENIED
        assert refused.message == f"{actor.name} may not link partners to customers"
    assert await counts(ctx) == before


async def test_linking_an_unknown_party_writes_nothing(ctx, make_customer):
    customer, partner = await make_customer(), await make_partner(ctx)
    missing = uuid.uuid4()
    before = await counts(ctx)
    refused = await refusal(parties.link_partner(
        ctx, ADMIN, partner_id=missing, customer_id=customer.id, managed=True, production_access=False
    ))
    assert (type(refused), refused.message, refused.field) == (NotFound, f"partner {missing} does not exist", "partnerId")
    refused = await refusal(parties.link_partner(
        ctx, ADMIN, partner_id=partner.id, customer_id=missing, managed=True, production_access=False
    ))
    assert (type(refused), refused.message, refused.field) == (NotFound, f"customer {missing} does not exist", "customerId")
    assert await counts(ctx) == before


async def test_can_view_entitlements_decides_whether_a_partner_sees_the_contracts(ctx, make_customer, make_contract):
    from api.services import contracts

    customer, partner = await make_customer(), await make_partner(ctx)
    contract = await make_contract(customer=customer)
    actor = partner_actor(partner)
    await link(ctx, partner, customer, can_view_entitlements=False)
    # The customer itself is visible to a linked partner; its contracts are not.
    assert [c.id for c in (await parties.page_customers(ctx, actor)).items] == [customer.id]
    assert (await contracts.page_contracts(ctx, actor)).items == []
    assert await contracts.get_contracts_by_ids(ctx, actor, [contract.id]) == {}

    await link(ctx, partner, customer, can_view_entitlements=True)
    assert [c.id for c in (await contracts.page_contracts(ctx, actor)).items] == [contract.id]
    [period] = await contracts.entitlements(ctx, actor, contract.id)
    assert period.allowance == 5


async def test_no_partner_may_consume_even_with_can_book_activities(ctx, make_customer, make_contract):
    customer, partner = await make_customer(), await make_partner(ctx, TODAY + timedelta(days=300))
    contract = await make_contract(customer=customer)
    await link(ctx, partner, customer, can_book_activities=True, production_access=True)
    actor = partner_actor(partner)
    before = await counts(ctx)
    refused = await refusal(
        ledger.consume_entitlement(ctx, actor, ledger.Consumption(contract.id, "activities", Decimal(1)))
    )
    assert refused.code == ErrorCode.PERMISSION_DENIED
    assert refused.message == f"{actor.name} may not consume entitlements"
    assert await counts(ctx) == before


# ---- 2. the correspondent: a managed customer is never written to ----------------------------


async def correspondents(ctx: AppContext, customer_id: uuid.UUID) -> tuple[access.Correspondent, access.Correspondent]:
    async with ctx.db.read() as session:
        inner = await access.correspondent_in(session, customer_id)
    return inner, await access.correspondent(ctx, ADMIN, customer_id)


async def test_a_direct_customer_is_its_own_correspondent(ctx, make_customer):
    customer = await make_customer(name="Direct Ltd", email="it@direct.example")
    for found in await correspondents(ctx, customer.id):
        assert found == access.Correspondent("customer", "Direct Ltd", "it@direct.example", customer.id, None)


async def test_a_partner_that_works_with_a_customer_without_managing_it_changes_nothing(ctx, make_customer):
    customer = await make_customer(email="it@direct.example")
    await link(ctx, await make_partner(ctx), customer, managed=False, production_access=True)
    for found in await correspondents(ctx, customer.id):
        assert (found.kind, found.email, found.partner_id) == ("customer", "it@direct.example", None)


async def test_linking_a_managing_partner_switches_the_correspondent_to_it(ctx, make_customer):
    customer = await make_customer(email="it@managed.example")
    partner = await make_partner(ctx, name="Northwind Solutions", email="support@northwind.example")
    await link(ctx, partner, customer, managed=True)
    for found in await correspondents(ctx, customer.id):
        assert found == access.Correspondent(
            "partner", "Northwind Solutions", "support@northwind.example", customer.id, partner.id
        )
        assert found.email != customer.email  # never the customer

    # The customer's own users see the same answer; no longer managed: back to the customer.
    assert (await access.correspondent(ctx, customer_actor(customer.id), customer.id)).partner_id == partner.id
    await link(ctx, partner, customer, managed=False)
    for found in await correspondents(ctx, customer.id):
        assert (found.kind, found.email, found.partner_id) == ("customer", "it@managed.example", None)


async def test_the_correspondent_of_a_foreign_customer_is_answered_as_nonexistent(ctx, make_customer):
    mine, other = await make_customer(), await make_customer()
    missing = uuid.uuid4()
    actor = customer_actor(mine.id)
    answers = []
    for customer_id in (other.id, missing):
        refused = await refusal(access.correspondent(ctx, actor, customer_id))
        answers.append((type(refused), refused.code, refused.field, refused.message.replace(str(customer_id), "<id>")))
    assert answers[0] == answers[1] == (NotFound, ErrorCode.NOT_FOUND, "customerId", "customer <id> does not exist")
    async with ctx.db.read() as session:
        with pytest.raises(NotFound):
            await access.correspondent_in(session, missing)


# ---- 3. integration support: certified partner with production access ----------------------------


@pytest.fixture(params=["enterprise", "premium"])
def plan(request) -> str:  # type: ignore[no-untyped-def]
    return request.param


async def integration_setup(ctx, make_customer, make_contract, plan: str, *, certified_until, production_access=True):  # type: ignore[no-untyped-def]
    customer = await make_customer()
    contract = await support_contract(make_contract, customer, plan)
    partner = await make_partner(ctx, certified_until, name="Northwind")
    await link(ctx, partner, customer, production_access=production_access)
    return customer, contract, partner


async def test_a_certified_partner_with_production_access_gets_integration_support(ctx, make_customer, make_contract, plan):
    customer, contract, partner = await integration_setup(
        ctx, make_customer, make_contract, plan, certified_until=TODAY + timedelta(days=200)
    )
    before = await counts(ctx)
    decision = await access.check_filing(ctx, partner_actor(partner), customer.id, INTEGRATION)
    assert (decision.contract_id, decision.partner_id, decision.plan.record.code) == (contract.id, partner.id, plan)
    assert decision.ticket_type.requires_certified_partner and decision.ticket_type.requires_production_access
    assert await counts(ctx) == before  # a check writes nothing


async def test_certification_until_today_is_enough_until_yesterday_is_not(ctx, make_customer, make_contract, plan):
    customer, contract, partner = await integration_setup(ctx, make_customer, make_contract, plan, certified_until=TODAY)
    assert (await access.check_filing(ctx, partner_actor(partner), customer.id, INTEGRATION)).contract_id == contract.id

    customer, _, partner = await integration_setup(
        ctx, make_customer, make_contract, plan, certified_until=TODAY - timedelta(days=1)
    )
    refused = await refusal(access.check_filing(ctx, partner_actor(partner), customer.id, INTEGRATION))
    assert refused.code == ErrorCode.PARTNER_NOT_ELIGIBLE
    assert refused.field == "ticketType"
    assert refused.message == f"{REFUSAL} (Northwind's certification expired on {TODAY - timedelta(days=1)})"


async def test_certification_is_judged_on_the_filing_date(ctx, clock, make_customer, make_contract):
    until = date(2026, 3, 20)
    customer, _, partner = await integration_setup(ctx, make_customer, make_contract, "enterprise", certified_until=until)
    actor = partner_actor(partner)
    await access.check_filing(ctx, actor, customer.id, INTEGRATION, on=until)
    refused = await refusal(access.check_filing(ctx, actor, customer.id, INTEGRATION, on=until + timedelta(days=1)))
    assert refused.code == ErrorCode.PARTNER_NOT_ELIGIBLE
    # Today is the filing date when none is given: the clock moves past the certification.
    clock.instant = datetime(2026, 3, 21, 12, 0, tzinfo=UTC)
    refused = await refusal(access.check_filing(ctx, actor, customer.id, INTEGRATION))
    assert refused.message.endswith(f"(Northwind's certification expired on {until})")


@pytest.mark.parametrize(
    ("certified_days", "production_access", "problem"),
    [
        (None, True, "Northwind is not certified"),
        (-30, True, "Northwind's certification expired on 2026-02-08"),
        (200, False, "Northwind has no access to the customer's production account"),
        (None, False, "Northwind is not certified"),  # the first missing condition is named
    ],
    ids=["uncertified", "expired", "no_production_access", "neither"],
)
async def test_integration_support_refusals(ctx, make_customer, make_contract, plan, certified_days, production_access, problem):
    until = None if certified_days is None else TODAY + timedelta(days=certified_days)
    customer, _, partner = await integration_setup(
        ctx, make_customer, make_contract, plan, certified_until=until, production_access=production_access
    )
    before = await counts(ctx)
    refused = await refusal(access.check_filing(ctx, partner_actor(partner), customer.id, INTEGRATION))
    assert type(refused) is DomainError
    assert (refused.code, refused.field) == (ErrorCode.PARTNER_NOT_ELIGIBLE, "ticketType")
    assert refused.message == f"{REFUSAL} ({problem})"
    assert "production" in REFUSAL and "certification" in REFUSAL  # the program's own words
    assert await counts(ctx) == before

    # The other ticket types need neither condition.
    await access.check_filing(ctx, partner_actor(partner), customer.id, "question")


async def test_integration_support_filed_by_the_customer_itself_is_refused(ctx, make_customer, make_contract, plan):
    customer, _, _ = await integration_setup(
        ctx, make_customer, make_contract, plan, certified_until=TODAY + timedelta(days=200)
    )
    actor = customer_actor(customer.id)
    refused = await refusal(access.check_filing(ctx, actor, customer.id, INTEGRATION))
    assert refused.code == ErrorCode.PARTNER_NOT_ELIGIBLE
    assert refused.message == f"{REFUSAL} (it was requested by the customer, not by a partner)"
    assert (await access.check_filing(ctx, actor, customer.id, "incident")).ticket_type_code == "incident"


async def test_provider_staff_may_always_file_integration_support(ctx, make_customer, make_contract, plan):
    customer = await make_customer()  # no partner at all
    contract = await support_contract(make_contract, customer, plan)
    for actor in (ADMIN, SUPPORT_ENGINEER):
        decision = await access.check_filing(ctx, actor, customer.id, INTEGRATION)
        assert (decision.contract_id, decision.partner_id) == (contract.id, None)


async def test_integration_support_needs_a_contract_in_force_on_the_filing_date(ctx, make_customer, make_contract):
    customer = await make_customer()
    await support_contract(make_contract, customer, effective=date(2026, 2, 15), end=date(2026, 6, 30))
    partner = await make_partner(ctx, date(2027, 1, 1))
    await link(ctx, partner, customer, production_access=True)
    actor = partner_actor(partner)
    await access.check_filing(ctx, actor, customer.id, INTEGRATION, on=date(2026, 6, 30))
    for day in (date(2026, 2, 14), date(2026, 7, 1)):
        refused = await refusal(access.check_filing(ctx, actor, customer.id, INTEGRATION, on=day))
        assert type(refused) is ValidationFailed
        assert refused.message == (
            f"no contract of this customer in force on {day} offers ticket type 'integration-support' (no contract in force)"
        )
    # A contract that does not offer the type says which types it does.
    other = await make_customer()
    await make_contract(customer=other)  # advisory-assure: no ticket types
    await link(ctx, partner, other, production_access=True)
    refused = await refusal(access.check_filing(ctx, actor, other.id, INTEGRATION))
    assert (type(refused), refused.field) == (ValidationFailed, "ticketType")
    assert refused.message == (
        f"no contract of this customer in force on {TODAY} offers ticket type 'integration-support' "
        "(its contracts offer no ticket types)"
    )


async def test_the_filing_date_is_the_programs_own_today(ctx, clock, make_customer, make_contract):
    """partner-support runs on Europe/Madrid: at 23:30 UTC on 10 March it is already 11 March there, so a
    contract that ended on 10 March is no longer in force, and a certification until 10 March has expired."""
    clock.instant = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)
    customer = await make_customer()
    await support_contract(make_contract, customer, effective=date(2025, 3, 11), end=date(2026, 3, 10))
    partner = await make_partner(ctx, date(2027, 1, 1))
    await link(ctx, partner, customer, production_access=True)
    refused = await refusal(access.check_filing(ctx, partner_actor(partner), customer.id, INTEGRATION))
    assert type(refused) is ValidationFailed
    assert refused.message.endswith("(no contract in force)")
    await access.check_filing(ctx, partner_actor(partner), customer.id, INTEGRATION, on=date(2026, 3, 10))
    assert await access.out_of_scope(ctx, ADMIN, customer.id) == []

    customer = await make_customer()
    await support_contract(make_contract, customer)
    partner = await make_partner(ctx, date(2026, 3, 10), name="Northwind")
    await link(ctx, partner, customer, production_access=True)
    refused = await refusal(access.check_filing(ctx, partner_actor(partner), customer.id, INTEGRATION))
    assert refused.message.endswith("(Northwind's certification expired on 2026-03-10)")


# ---- 4. out of scope: nothing leaks -------------------------------------------------------------


async def test_an_unlinked_partner_is_out_of_scope_whether_or_not_the_customer_exists(ctx, make_customer, make_contract):
    customer = await make_customer()
    await support_contract(make_contract, customer)
    partner = await make_partner(ctx, TODAY + timedelta(days=200))
    await link(ctx, partner, await make_customer(), production_access=True)  # linked, but to someone else
    actor = partner_actor(partner)
    answers = []
    for customer_id in (customer.id, uuid.uuid4()):
        for ticket_type in (INTEGRATION, "question", "no-such-type"):
            refused = await refusal(access.check_filing(ctx, actor, customer_id, ticket_type))
            answers.append((type(refused), refused.code, refused.field, refused.message))
    assert set(answers) == {(OutOfScope, ErrorCode.OUT_OF_SCOPE, "customerId", policy.OUT_OF_SCOPE_MESSAGE)}


async def test_a_customer_naming_another_customer_is_out_of_scope(ctx, make_customer, make_contract):
    mine, other = await make_customer(), await make_customer()
    await support_contract(make_contract, other)
    actor = customer_actor(mine.id)
    answers = set()
    for customer_id in (other.id, uuid.uuid4()):
        refused = await refusal(access.check_filing(ctx, actor, customer_id, "question"))
        answers.add((type(refused), refused.code, refused.field, refused.message))
    assert answers == {(OutOfScope, ErrorCode.OUT_OF_SCOPE, "customerId", policy.OUT_OF_SCOPE_MESSAGE)}
    assert "official partners" in policy.OUT_OF_SCOPE_MESSAGE


async def test_a_linked_partner_without_can_file_tickets_is_denied(ctx, make_customer, make_contract):
    customer = await make_customer()
    await support_contract(make_contract, customer)
    partner = await make_partner(ctx, TODAY + timedelta(days=200))
    await link(ctx, partner, customer, production_access=True, can_file_tickets=False)
    actor = partner_actor(partner)
    for ticket_type in (INTEGRATION, "question"):
        refused = await refusal(access.check_filing(ctx, actor, customer.id, ticket_type))
        assert type(refused) is PermissionDenied
        assert (refused.code, refused.field) == (ErrorCode.PERMISSION_DENIED, "customerId")
        assert refused.message == f"{actor.name} may not file tickets for this customer: the customer has not allowed it"
    await link(ctx, partner, customer, production_access=True, can_file_tickets=True)
    await access.check_filing(ctx, actor, customer.id, INTEGRATION)


async def test_staff_without_a_role_may_do_nothing(ctx, make_customer, make_contract):
    customer = await make_customer()
    contract = await support_contract(make_contract, customer)
    nobody = Actor(kind="staff", ref="user:nobody", name="Staff without a role")
    assert (await parties.page_customers(ctx, nobody)).items == []
    assert await parties.get_customers_by_ids(ctx, nobody, [customer.id]) == {}
    from api.services import contracts

    assert await contracts.get_contracts_by_ids(ctx, nobody, [contract.id]) == {}
    for call in (
        access.check_filing(ctx, nobody, customer.id, INTEGRATION),
        access.out_of_scope(ctx, nobody, customer.id),
        access.correspondent(ctx, nobody, customer.id),
    ):
        assert type(await refusal(call)) is NotFound
    with pytest.raises(PermissionDenied):
        await parties.list_partners(ctx, nobody)


# ---- 6. out of scope, with sources -------------------------------------------------------------


def scope(entries: list[access.ScopeEntry]) -> list[tuple[str, str, str, str, str]]:
    return [(e.source, e.source_name, e.list, e.code, e.program_code) for e in entries]


async def test_out_of_scope_of_an_advisory_customer(ctx, make_customer, make_contract):
    customer = await make_customer()
    await make_contract(customer=customer)
    entries = await access.out_of_scope(ctx, ADMIN, customer.id)
    assert scope(entries) == [
        ("program", "Assure Advisory Packages", "out_of_scope", code, "advisory-assure")
        for code in ("product-support", "production-support", "hands-on-implementation", "other-vendors")
    ]
    assert entries[0].text.startswith("Everyday product help")


async def test_out_of_scope_of_a_partner_support_customer(ctx, make_customer, make_contract):
    customer = await make_customer()
    await support_contract(make_contract, customer)
    entries = await access.out_of_scope(ctx, ADMIN, customer.id)
    assert scope(entries) == [
        ("program", "Partner Support Program", "out_of_scope", code, "partner-support")
        for code in ("managed-services", "channel-setup", "platform-customisation", "third-party-developers")
    ] + [
        ("program", "Partner Support Program", "out_of_support", code, "partner-support")
        for code in ("custom-formulas", "third-party-integrations", "customer-network-performance", "custom-modifications")
    ]
    # Nothing is in force before the contract starts.
    assert await access.out_of_scope(ctx, ADMIN, customer.id, date(2026, 2, 14)) == []


def program_with_every_source(code: str) -> str:
    """partner-support under another code, with plan-level and partner-program lists added."""
    text = (PROJECT_ROOT / "programs" / "partner-support.toml").read_text()
    text = text.replace('code = "partner-support"', f'code = "{code}"', 1)
    text = text.replace('name = "Partner Support Program"', 'name = "Every Source Program"', 1)
    text = text.replace(
        "# ---------------------------------------------------------------------------------------------\n"
        "# Premium:",
        '[[plans.enterprise.out_of_scope]]\ncode = "on-site-visits"\ntext = "Visits to the customer\'s premises."\n\n'
        '[[plans.enterprise.out_of_support]]\ncode = "legacy-versions"\ntext = "Versions older than two releases."\n\n'
        "# ---------------------------------------------------------------------------------------------\n"
        "# Premium:",
        1,
    )
    return text + '\n[[partners.out_of_scope]]\ncode = "partner-billing"\ntext = "Billing between partner and customer."\n'


async def test_out_of_scope_lists_the_plan_the_program_and_the_partner_program(ctx, make_customer, make_contract):
    code = unique("every-source")
    await programs.load_programs(ctx, ADMIN, [parse_program(program_with_every_source(code), file="every.toml")])
    customer = await make_customer()
    await make_contract(program=code, plan="enterprise", customer=customer, custom_allowances={"support-hours": 600})
    await make_contract(program="advisory-assure", plan="small", customer=customer)
    entries = await access.out_of_scope(ctx, ADMIN, customer.id)
    by_source = {(e.source, e.source_name, e.program_code) for e in entries}
    assert by_source == {
        ("plan", "Enterprise", code),
        ("program", "Every Source Program", code),
        ("partner_program", "Solution partners", code),
        ("program", "Assure Advisory Packages", "advisory-assure"),
    }
    assert [(e.list, e.code) for e in entries if e.source == "plan"] == [
        ("out_of_scope", "on-site-visits"), ("out_of_support", "legacy-versions")
    ]
    assert [(e.list, e.code, e.text) for e in entries if e.source == "partner_program"] == [
        ("out_of_scope", "partner-billing", "Billing between partner and customer.")
    ]
    # Each program's own list once, however many of its plans the customer holds.
    assert len([e for e in entries if e.code == "managed-services"]) == 1


async def test_a_partner_sees_out_of_scope_for_a_linked_customer_only(ctx, make_customer, make_contract):
    customer = await make_customer()
    await support_contract(make_contract, customer)
    partner = await make_partner(ctx)  # not certified: reading the list needs no certification
    actor = partner_actor(partner)
    for customer_id in (customer.id, uuid.uuid4()):
        refused = await refusal(access.out_of_scope(ctx, actor, customer_id))
        assert (type(refused), refused.message.replace(str(customer_id), "<id>")) == (
            NotFound, "customer <id> does not exist"
        )
    await link(ctx, partner, customer, can_file_tickets=False, can_view_entitlements=False)
    assert scope(await access.out_of_scope(ctx, actor, customer.id)) == scope(
        await access.out_of_scope(ctx, ADMIN, customer.id)
    )
