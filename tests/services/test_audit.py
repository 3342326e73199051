"""The audit log at service level: every change writes exactly one row (who, for whom, through which
interface, what, on which object) in the change's own transaction; a refusal or a replay writes none;
only staff read it; and the database refuses to edit or delete it."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from api.config import PROJECT_ROOT
from api.models import AuditEntry, StaffRole, TokenAccess, TokenScope, UserKind
from api.programs.loader import parse_program
from api.services import audit, contracts, identity, ledger, parties, programs
from api.services.context import Actor, AppContext
from api.services.errors import DomainError, PermissionDenied, ValidationFailed
from tests.conftest import ADMIN, NOW, unique

PASSWORD = "audit password, long enough"
ADA = Actor(
    kind="staff", ref=f"user:{uuid.uuid4()}", name="Ada Admin <ada@provider.example>", roles=frozenset({"admin"}),
    interface="graphql",
)


async def audit_ids(ctx: AppContext) -> set[uuid.UUID]:
    async with ctx.db.read() as session:
        return set(await session.scalars(select(AuditEntry.id)))


async def audited(ctx: AppContext, coroutine) -> tuple[Any, list[AuditEntry]]:  # type: ignore[no-untyped-def]
    """Run a service call; its result and the audit rows it wrote."""
    before = await audit_ids(ctx)
    result = await coroutine
    async with ctx.db.read() as session:
        rows = [row for row in await session.scalars(select(AuditEntry)) if row.id not in before]
    return result, rows


def row_of(entry: AuditEntry) -> dict[str, Any]:
    return {
        "occurred_at": entry.occurred_at,
        "actor_kind": entry.actor_kind,
        "actor_ref": entry.actor_ref,
        "actor_name": entry.actor_name,
        "partner_id": entry.partner_id,
        "on_behalf_of_customer_id": entry.on_behalf_of_customer_id,
        "interface": entry.interface,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
    }


def by_ada(action: str, target_type: str, target_id: object, customer_id: uuid.UUID | None = None) -> dict[str, Any]:
    return {
        "occurred_at": NOW,
        "actor_kind": "staff",
        "actor_ref": ADA.ref,
        "actor_name": ADA.name,
        "partner_id": None,
        "on_behalf_of_customer_id": customer_id,
        "interface": "graphql",
        "action": action,
        "target_type": target_type,
        "target_id": str(target_id),
    }


async def test_every_change_writes_one_row(ctx, shipped_programs):
    code = unique("cust")
    customer, [row] = await audited(ctx, parties.create_customer(ctx, ADA, parties.NewCustomer(code=code, name="Audited")))
    assert row_of(row) == by_ada("customer.create", "customer", customer.id, customer.id)
    assert row.detail == {"code": code}

    partner, [row] = await audited(ctx, parties.create_partner(ctx, ADA, parties.NewPartner(code=unique("p"), name="P")))
    assert row_of(row) == by_ada("partner.create", "partner", partner.id)

    _, [row] = await audited(ctx, parties.link_partner(
        ctx, ADA, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=True
    ))
    assert row_of(row) == by_ada("partner.link", "partner", partner.id, customer.id)
    assert row.detail["production_access"] is True

    contract, [row] = await audited(ctx, contracts.create_contract(ctx, ADA, contracts.NewContract(
        reference=unique("ORD"), customer_id=customer.id, program_code="advisory-assure", plan_code="small",
        effective_date=date(2026, 2, 15), end_date=date(2027, 2, 14), monthly_fee=Decimal("10.00"), currency="EUR",
    )))
    assert row_of(row) == by_ada("contract.create", "contract", contract.id, customer.id)
    assert row.detail == {"reference": contract.reference, "plan": "advisory-assure/small"}

    consumed, [row] = await audited(ctx, ledger.consume_entitlement(
        ctx, ADA, ledger.Consumption(contract.id, "activities", Decimal(2), idempotency_key="k1")
    ))
    assert row_of(row) == by_ada("ledger.consume", "ledger_entry", consumed.entry.id, customer.id)
    assert row.detail == {"contract": contract.reference, "bucket": "activities", "quantity": 2}

    reversed_, [row] = await audited(ctx, ledger.reverse_entry(ctx, ADA, consumed.entry.id, reason="booked twice"))
    assert row_of(row) == by_ada("ledger.reverse", "ledger_entry", reversed_.entry.id, customer.id)
    assert row.detail["quantity"] == -2

    adjusted, [row] = await audited(ctx, ledger.adjust_entitlement(
        ctx, ADA, ledger.Adjustment(contract.id, "activities", Decimal(1), date(2026, 3, 1), reason="fix")
    ))
    assert row_of(row) == by_ada("ledger.adjust", "ledger_entry", adjusted.entry.id, customer.id)

    user, [row] = await audited(ctx, identity.create_user(ctx, ADA, identity.NewUser(
        email=f"{unique('u')}@audit.example", name="U", password=PASSWORD, kind=UserKind.CUSTOMER,
        customer_id=customer.id,
    )))
    assert row_of(row) == by_ada("user.create", "user", user.id, customer.id)
    assert row.detail == {"email": user.email, "kind": "customer"}
    assert PASSWORD not in str(row.detail)

    (token, secret), [row] = await audited(ctx, identity.create_token(
        ctx, ADA, identity.NewToken("audited", TokenScope.CUSTOMER, TokenAccess.READ, customer_id=customer.id)
    ))
    assert row_of(row) == by_ada("token.create", "api_token", token.id, customer.id)
    assert secret not in str(row.detail) and secret.split("_")[-1] not in str(row.detail)

    _, [row] = await audited(ctx, identity.revoke_token(ctx, ADA, token.id))
    assert row_of(row) == by_ada("token.revoke", "api_token", token.id)


async def test_loading_a_program_is_audited_unless_nothing_changed(ctx):
    source = (PROJECT_ROOT / "programs" / "advisory-assure.toml").read_text()
    code = unique("audited-program")
    parsed = parse_program(source.replace('code = "advisory-assure"', f'code = "{code}"', 1))
    [outcome], [row] = await audited(ctx, programs.load_programs(ctx, ADA, [parsed]))
    assert outcome.status == "created"
    assert row_of(row) == by_ada("program.created", "program", outcome.program.id)
    assert row.detail == {"code": code, "version": "1"}
    _, rows = await audited(ctx, programs.load_programs(ctx, ADA, [parsed]))
    assert rows == []
    changed = parse_program(source.replace('code = "advisory-assure"', f'code = "{code}"', 1).replace(
        'name = "Assure Advisory Packages"', 'name = "Assure, renamed"', 1
    ))
    [outcome], [row] = await audited(ctx, programs.load_programs(ctx, ADA, [changed]))
    assert (outcome.status, row.action) == ("updated", "program.updated")


async def test_a_partner_users_login_names_its_partner_and_the_portal(ctx):
    partner = await parties.create_partner(ctx, ADMIN, parties.NewPartner(code=unique("p"), name="Northwind"))
    user = await identity.create_user(ctx, ADMIN, identity.NewUser(
        email=f"{unique('nora')}@northwind.example", name="Nora", password=PASSWORD, kind=UserKind.PARTNER,
        partner_id=partner.id,
    ))
    _, [row] = await audited(ctx, identity.log_in(ctx, user.email, PASSWORD))
    assert row_of(row) == {
        "occurred_at": NOW,
        "actor_kind": "partner",
        "actor_ref": f"user:{user.id}",
        "actor_name": f"Nora <{user.email}>",
        "partner_id": partner.id,
        "on_behalf_of_customer_id": None,
        "interface": "portal",
        "action": "session.login",
        "target_type": "user",
        "target_id": str(user.id),
    }


async def test_the_command_line_is_audited_as_cli(ctx):
    from api.cli import CLI_ACTOR

    customer, [row] = await audited(ctx, parties.create_customer(ctx, CLI_ACTOR, parties.NewCustomer(code=unique("c"), name="C")))
    assert (row.actor_kind, row.actor_ref, row.actor_name, row.interface) == ("system", "system:cli", "cli", "cli")
    assert row.on_behalf_of_customer_id == customer.id


async def test_consumption_on_behalf_of_a_customer_records_that_customer(ctx, make_contract, make_customer):
    contract = await make_contract()
    outcome, [row] = await audited(ctx, ledger.consume_entitlement(
        ctx, ADA, ledger.Consumption(contract.id, "activities", Decimal(1), on_behalf_of_customer_id=contract.customer_id)
    ))
    assert (row.on_behalf_of_customer_id, row.target_id) == (contract.customer_id, str(outcome.entry.id))
    # Work on a contract is only ever for its own customer: naming another writes nothing.
    other = await make_customer()
    before = await audit_ids(ctx)
    with pytest.raises(ValidationFailed) as refused:
        await ledger.consume_entitlement(
            ctx, ADA, ledger.Consumption(contract.id, "activities", Decimal(1), on_behalf_of_customer_id=other.id)
        )
    assert refused.value.field == "onBehalfOfCustomerId"
    assert await audit_ids(ctx) == before


async def test_a_replayed_consumption_writes_no_second_row(ctx, make_contract):
    contract = await make_contract()
    request = ledger.Consumption(contract.id, "activities", Decimal(1), idempotency_key=unique("key"))
    first, rows = await audited(ctx, ledger.consume_entitlement(ctx, ADA, request))
    assert len(rows) == 1
    again, rows = await audited(ctx, ledger.consume_entitlement(ctx, ADA, request))
    assert (again.replayed, again.entry.id, rows) == (True, first.entry.id, [])


async def test_refused_changes_write_no_row(ctx, make_contract, make_customer):
    contract = await make_contract()  # 5 activities a quarter
    customer_actor = Actor(kind="customer", ref="user:c", name="C", customer_id=contract.customer_id)
    refusals = [
        ledger.consume_entitlement(ctx, ADA, ledger.Consumption(contract.id, "activities", Decimal(6))),
        ledger.consume_entitlement(ctx, customer_actor, ledger.Consumption(contract.id, "activities", Decimal(1))),
        ledger.consume_entitlement(ctx, ADA, ledger.Consumption(uuid.uuid4(), "activities", Decimal(1))),
        ledger.adjust_entitlement(ctx, ADA, ledger.Adjustment(contract.id, "activities", Decimal(-1), date(2026, 3, 1), "x")),
        parties.create_customer(ctx, ADA, parties.NewCustomer(code="Not A Code", name="x")),
        parties.create_customer(ctx, customer_actor, parties.NewCustomer(code=unique("c"), name="x")),
        parties.link_partner(ctx, ADA, partner_id=uuid.uuid4(), customer_id=contract.customer_id, managed=True,
                             production_access=False),
        identity.create_user(ctx, ADA, identity.NewUser(email="x@y.example", name="x", password="short", kind=UserKind.STAFF,
                                                        staff_role=StaffRole.ADMIN)),
        identity.create_token(ctx, customer_actor, identity.NewToken("t", TokenScope.PROVIDER, TokenAccess.READ)),
        identity.revoke_token(ctx, ADA, uuid.uuid4()),
        identity.log_in(ctx, f"{unique('nobody')}@audit.example", PASSWORD),
    ]
    before = await audit_ids(ctx)
    for call in refusals:
        with pytest.raises(DomainError):
            await call
    assert await audit_ids(ctx) == before


# ---- reading the log ---------------------------------------------------------------------------


async def test_the_log_is_newest_first_pages_and_filters(ctx, clock, make_customer):
    customer = await make_customer()
    contract_customer = customer.id
    for minutes in (1, 2, 3):
        clock.instant = NOW + timedelta(minutes=minutes)
        await parties.link_partner(
            ctx, ADA,
            partner_id=(await parties.create_partner(ctx, ADMIN, parties.NewPartner(code=unique("p"), name="P"))).id,
            customer_id=contract_customer, managed=False, production_access=False,
        )
    first = await audit.audit_page(ctx, ADA, first=2, customer_id=customer.id)
    assert [e.action for e in first.entries] == ["partner.link", "partner.link"]
    assert [e.occurred_at for e in first.entries] == [NOW + timedelta(minutes=3), NOW + timedelta(minutes=2)]
    assert first.has_next_page
    rest = await audit.audit_page(ctx, ADA, first=2, customer_id=customer.id, after=first.end_cursor)
    assert [(e.action, e.occurred_at) for e in rest.entries] == [
        ("partner.link", NOW + timedelta(minutes=1)), ("customer.create", NOW)
    ]
    assert not rest.has_next_page
    only = await audit.audit_page(ctx, ADA, customer_id=customer.id, action="customer.create")
    assert [e.target_id for e in only.entries] == [str(customer.id)]
    with pytest.raises(ValidationFailed):
        await audit.audit_page(ctx, ADA, first=0)
    with pytest.raises(ValidationFailed):
        await audit.audit_page(ctx, ADA, after="not a cursor")


@pytest.mark.parametrize(
    "actor",
    [
        Actor(kind="customer", ref="user:c", name="C", customer_id=uuid.uuid4()),
        Actor(kind="partner", ref="user:p", name="P", partner_id=uuid.uuid4()),
        Actor(kind="staff", ref="token:i", name="integrator", roles=frozenset({"integrator"})),
        Actor(kind="staff", ref="user:none", name="no role"),
    ],
    ids=["customer", "partner", "integrator", "no_role"],
)
async def test_only_staff_read_the_log(ctx, actor):
    with pytest.raises(PermissionDenied) as refused:
        await audit.audit_page(ctx, actor)
    assert refused.value.message == f"{actor.name} may not read the audit log"


@pytest.mark.parametrize("role", ["admin", "client_manager", "support_engineer"])
async def test_staff_read_the_log(ctx, role):
    actor = Actor(kind="staff", ref="user:s", name="S", roles=frozenset({role}))
    page = await audit.audit_page(ctx, actor, first=1)
    assert len(page.entries) <= 1


# ---- append-only -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        lambda entry: update(AuditEntry).where(AuditEntry.id == entry.id).values(action="tampered"),
        lambda entry: text("UPDATE audit_log SET actor_ref = 'someone else'"),
        lambda entry: delete(AuditEntry).where(AuditEntry.id == entry.id),
        lambda entry: text("DELETE FROM audit_log"),
    ],
    ids=["update_one", "update_all", "delete_one", "delete_all"],
)
async def test_the_database_refuses_to_change_the_log(ctx, make_customer, statement):
    customer = await make_customer()
    async with ctx.db.read() as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.on_behalf_of_customer_id == customer.id))
    before = await audit_ids(ctx)
    with pytest.raises(DBAPIError, match="the audit log is append-only"):
        async with ctx.db.write() as session:
            await session.execute(statement(entry))
    assert await audit_ids(ctx) == before
    async with ctx.db.read() as session:
        assert (await session.get(AuditEntry, entry.id)).action == "customer.create"
