"""GraphQL: fileTicket, transitionTicket, addComment and logTime over HTTP with real credentials (a customer
user, a partner user of a managed customer, a support engineer): what each returns, its typed refusals,
and that a refusal writes nothing (no ticket, event, comment, time entry, ledger entry, audit row or e-mail)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select

from api.models import (
    AuditEntry,
    LedgerEntry,
    OutboxMessage,
    StaffRole,
    Ticket,
    TicketComment,
    TicketEventRecord,
    TimeEntry,
    TokenAccess,
    TokenScope,
    UserKind,
)
from api.services import parties
from api.services.context import AppContext
from tests.conftest import ADMIN, unique
from tests.graphql.conftest import Caller, Connect

ERROR = "__typename ... on UserError { code message field }"
TICKET = "ticket { id customerId contractId ticketType severity status subject filedByKind viaPartnerId events { kind actorKind automatic } }"

FILE = f"""
mutation($input: FileTicketInput!) {{
  fileTicket(input: $input) {{ {ERROR} ... on FileTicketSuccess {{ ticketId {TICKET} }} }}
}}
"""
TRANSITION = f"""
mutation($input: TransitionTicketInput!) {{
  transitionTicket(input: $input) {{ {ERROR} ... on TransitionTicketSuccess {{ {TICKET} }} }}
}}
"""
COMMENT = f"""
mutation($input: AddCommentInput!) {{
  addComment(input: $input) {{
    {ERROR}
    ... on AddCommentSuccess {{ commentId {TICKET} }}
    ... on InsufficientBalanceError {{ requested remaining }}
  }}
}}
"""
LOG_TIME = f"""
mutation($input: LogTimeInput!) {{
  logTime(input: $input) {{
    {ERROR}
    ... on LogTimeSuccess {{ timeEntryId {TICKET} deductions {{ id contractId bucket quantity kind reason }} }}
    ... on InsufficientBalanceError {{ requested remaining }}
  }}
}}
"""
HOURS = """
query($id: ID!) { contract(id: $id) { entitlements { bucket allowance consumed remaining } } }
"""


async def written(ctx: AppContext) -> dict[str, int]:
    """Rows of everything a ticket mutation may write."""
    async with ctx.db.read() as session:
        return {
            m.__tablename__: int(await session.scalar(select(func.count()).select_from(m)) or 0)
            for m in (Ticket, TicketEventRecord, TicketComment, TimeEntry, LedgerEntry, AuditEntry, OutboxMessage)
        }


async def refused(ctx: AppContext, caller: Caller, document: str, variables: dict[str, Any], typename: str,
                  code: str, field: str | None) -> dict[str, Any]:
    """Run a mutation expected to be refused; check the typed error and that nothing was written."""
    before = await written(ctx)
    data = await caller.data(document, {"input": variables})
    [result] = data.values()
    assert (result["__typename"], result["code"], result["field"]) == (typename, code, field), result
    assert result["message"]
    assert await written(ctx) == before, f"a refused {typename} wrote something"
    return result


class Setup:
    def __init__(self, connect: Connect, customer: Any, contract: Any, partner: Any,
                 customer_user: Caller, partner_user: Caller, engineer: Caller):
        self.connect, self.customer, self.contract, self.partner = connect, customer, contract, partner
        self.customer_user, self.partner_user, self.engineer = customer_user, partner_user, engineer

    def ticket(self, **fields: Any) -> dict[str, Any]:
        values = {"customerId": str(self.customer.id), "ticketType": "question", "severity": "standard",
                  "subject": "How do price lists work?", "description": "We would like to understand price lists."}
        values.update(fields)
        return values

    async def file(self, caller: Caller | None = None, **fields: Any) -> dict[str, Any]:
        result = (await (caller or self.customer_user).data(FILE, {"input": self.ticket(**fields)}))["fileTicket"]
        assert result["__typename"] == "FileTicketSuccess", result
        return result["ticket"]

    async def hours(self, caller: Caller | None = None) -> dict[str, Any]:
        data = await (caller or self.customer_user).data(HOURS, {"id": str(self.contract.id)})
        [found] = [p for p in data["contract"]["entitlements"] if p["bucket"] == "support-hours"]
        return found


@pytest.fixture
async def setup(connect: Connect, ctx, make_customer, make_contract) -> Setup:  # type: ignore[no-untyped-def]
    return await make_setup(connect, make_customer, make_contract, 600)


async def make_setup(connect: Connect, make_customer, make_contract, minutes: int) -> Setup:  # type: ignore[no-untyped-def]
    customer = await make_customer()
    contract = await make_contract(
        program="partner-support", plan="enterprise", customer=customer, effective=date(2026, 1, 1),
        custom_allowances={"support-hours": minutes},
    )
    code = unique("partner")
    partner = await parties.create_partner(connect.ctx, ADMIN, parties.NewPartner(code=code, name=f"Partner {code}"))
    await parties.link_partner(
        connect.ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=False,
        can_file_tickets=True, can_view_entitlements=True,
    )
    customer_user, _, _ = await connect.user(UserKind.CUSTOMER, customer_id=customer.id, name="Carla Customer")
    partner_user, _, _ = await connect.user(UserKind.PARTNER, partner_id=partner.id, name="Pat Partner")
    engineer, _, _ = await connect.user(UserKind.STAFF, staff_role=StaffRole.SUPPORT_ENGINEER, name="Sam Support")
    return Setup(connect, customer, contract, partner, customer_user, partner_user, engineer)


# ---- fileTicket ----------------------------------------------------------------------------------


async def test_a_customer_user_files_a_ticket(setup: Setup, ctx):
    before = await written(ctx)
    result = (await setup.customer_user.data(FILE, {"input": setup.ticket()}))["fileTicket"]
    assert result["__typename"] == "FileTicketSuccess"
    ticket = result["ticket"]
    assert result["ticketId"] == ticket["id"]
    assert {k: ticket[k] for k in ("customerId", "contractId", "ticketType", "severity", "status", "filedByKind")} == {
        "customerId": str(setup.customer.id), "contractId": str(setup.contract.id), "ticketType": "question",
        "severity": "standard", "status": "new", "filedByKind": "customer",
    }
    assert ticket["viaPartnerId"] is None
    assert [(e["kind"], e["actorKind"], e["automatic"]) for e in ticket["events"]] == [
        ("created", "customer", False), ("acknowledged", "system", True),
    ]
    after = await written(ctx)
    assert after["tickets"] == before["tickets"] + 1
    assert after["ledger_entries"] == before["ledger_entries"]  # filing costs nothing


async def test_a_partner_user_files_for_the_customer_it_manages(setup: Setup):
    ticket = await setup.file(setup.partner_user)
    assert (ticket["filedByKind"], ticket["viaPartnerId"]) == ("partner", str(setup.partner.id))
    # The customer sees what its partner filed.
    data = await setup.customer_user.data("query($id: ID!) { ticket(id: $id) { id } }", {"id": ticket["id"]})
    assert data["ticket"]["id"] == ticket["id"]


async def test_filing_refusals_are_typed_and_write_nothing(setup: Setup, ctx, make_customer, make_contract):
    other = await make_customer()
    await make_contract(program="partner-support", plan="enterprise", customer=other, effective=date(2026, 1, 1),
                        custom_allowances={"support-hours": 600})
    customer, partner, engineer = setup.customer_user, setup.partner_user, setup.engineer
    # Someone else's customer: the out-of-scope answer, whether or not the customer exists.
    for caller in (customer, partner):
        for ident in (str(other.id), str(uuid.uuid4())):
            await refused(ctx, caller, FILE, setup.ticket(customerId=ident), "OutOfScopeError", "OUT_OF_SCOPE", "customerId")
    await refused(ctx, engineer, FILE, setup.ticket(customerId="not-an-id"), "NotFoundError", "NOT_FOUND", "customerId")
    await refused(ctx, engineer, FILE, setup.ticket(customerId=str(uuid.uuid4())), "NotFoundError", "NOT_FOUND", "customerId")
    # The plan's rules.
    await refused(ctx, customer, FILE, setup.ticket(severity="critical"), "ValidationError", "INVALID", "severity")
    await refused(ctx, customer, FILE, setup.ticket(severity=""), "ValidationError", "INVALID", "severity")
    await refused(ctx, customer, FILE, setup.ticket(ticketType="feature-wish"), "ValidationError", "INVALID", "ticketType")
    await refused(ctx, customer, FILE, setup.ticket(subject="  "), "ValidationError", "INVALID", "subject")
    missing = await refused(
        ctx, customer, FILE, setup.ticket(ticketType="behaviour-check", affectedAccount="acme-prod"),
        "ValidationError", "INVALID", "stepsFollowed",
    )
    assert "expectedResult" in missing["message"]
    out = await refused(ctx, partner, FILE, setup.ticket(scopeItem="managed-services"), "OutOfScopeError", "OUT_OF_SCOPE", "scopeItem")
    assert "out of scope" in out["message"]
    # Integration support: only for a certified partner with production access.
    integration = setup.ticket(
        ticketType="integration-support", affectedAccount="acme-prod", stepsFollowed="Connected the ERP",
        expectedResult="Orders flow in",
    )
    for caller in (customer, partner):
        await refused(ctx, caller, FILE, integration, "PartnerNotEligibleError", "PARTNER_NOT_ELIGIBLE", "ticketType")
    # Read-only credentials.
    reader, _, _ = await setup.connect.token(TokenScope.CUSTOMER, TokenAccess.READ, customer_id=setup.customer.id)
    await refused(ctx, reader, FILE, setup.ticket(), "PermissionDeniedError", "PERMISSION_DENIED", None)


async def test_a_certified_partner_with_production_access_files_integration_support(setup: Setup, ctx):
    await parties.link_partner(
        ctx, ADMIN, partner_id=setup.partner.id, customer_id=setup.customer.id, managed=True, production_access=True,
        can_file_tickets=True, can_view_entitlements=True,
    )
    code = unique("certified")
    certified = await parties.create_partner(
        ctx, ADMIN, parties.NewPartner(code=code, name=code, certified_until_date=date(2027, 1, 1))
    )
    await parties.link_partner(
        ctx, ADMIN, partner_id=certified.id, customer_id=setup.customer.id, managed=False, production_access=True,
        can_file_tickets=True, can_view_entitlements=True,
    )
    caller, _, _ = await setup.connect.user(UserKind.PARTNER, partner_id=certified.id)
    integration = setup.ticket(
        ticketType="integration-support", affectedAccount="acme-prod", stepsFollowed="Connected the ERP",
        expectedResult="Orders flow in",
    )
    ticket = await setup.file(caller, **integration)
    assert (ticket["ticketType"], ticket["viaPartnerId"]) == ("integration-support", str(certified.id))
    # The uncertified partner, now with production access, is still refused.
    await refused(ctx, setup.partner_user, FILE, integration, "PartnerNotEligibleError", "PARTNER_NOT_ELIGIBLE", "ticketType")


# ---- transitionTicket ----------------------------------------------------------------------------


async def test_staff_move_a_ticket_and_the_customer_closes_it(setup: Setup, ctx):
    ticket = await setup.file()
    for to in ("in_progress", "resolved"):
        result = (await setup.engineer.data(TRANSITION, {"input": {"ticketId": ticket["id"], "to": to}}))
        assert result["transitionTicket"]["ticket"]["status"] == to
    events = [e["kind"] for e in result["transitionTicket"]["ticket"]["events"]]
    assert events[-1] == "resolved"
    closed = await setup.customer_user.data(TRANSITION, {"input": {"ticketId": ticket["id"], "to": "closed", "reason": "Thanks"}})
    assert closed["transitionTicket"]["ticket"]["status"] == "closed"
    await refused(
        ctx, setup.engineer, TRANSITION, {"ticketId": ticket["id"], "to": "in_progress"}, "ValidationError", "INVALID", "to"
    )


async def test_transition_refusals_are_typed_and_write_nothing(setup: Setup, ctx, make_customer, make_contract):
    ticket = await setup.file()
    move = {"ticketId": ticket["id"], "to": "in_progress"}
    # The customer's side may only close or reopen a resolved ticket.
    for caller in (setup.customer_user, setup.partner_user):
        await refused(ctx, caller, TRANSITION, move, "PermissionDeniedError", "PERMISSION_DENIED", "to")
    await refused(ctx, setup.engineer, TRANSITION, {**move, "to": "resolved"}, "ValidationError", "INVALID", "to")
    await refused(ctx, setup.engineer, TRANSITION, {**move, "to": "on_hold"}, "ValidationError", "INVALID", "to")
    await refused(
        ctx, setup.engineer, TRANSITION, {**move, "to": "waiting_on_customer", "nextUpdateAt": "2026-03-11T10:00:00"},
        "ValidationError", "INVALID", "nextUpdateAt",
    )
    await refused(ctx, setup.engineer, TRANSITION, {**move, "ticketId": str(uuid.uuid4())}, "NotFoundError", "NOT_FOUND", "ticketId")
    # Another customer's ticket reads as a nonexistent one.
    stranger = await make_setup(setup.connect, make_customer, make_contract, 600)
    await refused(ctx, stranger.customer_user, TRANSITION, {**move, "to": "closed"}, "NotFoundError", "NOT_FOUND", "ticketId")


# ---- addComment ----------------------------------------------------------------------------------


async def test_a_staff_reply_opens_the_conversation_and_deducts_the_minimum(setup: Setup, ctx):
    ticket = await setup.file(setup.partner_user)
    before = await setup.hours()
    asked = await setup.partner_user.data(COMMENT, {"input": {"ticketId": ticket["id"], "body": "Any news?"}})
    assert asked["addComment"]["__typename"] == "AddCommentSuccess"
    assert (await setup.hours())["consumed"] == before["consumed"]  # the customer's side costs nothing
    internal = await setup.engineer.data(COMMENT, {"input": {"ticketId": ticket["id"], "body": "Checking", "internal": True}})
    assert internal["addComment"]["ticket"]["status"] == "new"
    reply = (await setup.engineer.data(
        COMMENT,
        {"input": {"ticketId": ticket["id"], "body": "Price lists apply per channel.", "nextUpdateAt": "2026-03-11T10:00:00+01:00"}},
    ))["addComment"]
    assert reply["__typename"] == "AddCommentSuccess"
    assert reply["commentId"]
    assert reply["ticket"]["status"] == "in_progress"
    assert reply["ticket"]["events"][-1]["kind"] == "responded"
    after = await setup.hours()
    assert (after["consumed"], after["remaining"]) == (before["consumed"] + 15, before["remaining"] - 15)
    async with ctx.db.read() as session:
        comments = list(await session.scalars(
            select(TicketComment.body).where(TicketComment.ticket_id == uuid.UUID(ticket["id"]), TicketComment.automatic.is_(False))
            .order_by(TicketComment.created_at, TicketComment.id)
        ))
    assert sorted(comments) == sorted(["Any news?", "Checking", "Price lists apply per channel."])


async def test_comment_refusals_are_typed_and_write_nothing(setup: Setup, ctx, make_customer, make_contract):
    ticket = await setup.file()
    comment = {"ticketId": ticket["id"], "body": "Hello"}
    await refused(ctx, setup.customer_user, COMMENT, {**comment, "internal": True}, "PermissionDeniedError", "PERMISSION_DENIED", "internal")
    await refused(ctx, setup.customer_user, COMMENT, {**comment, "body": "   "}, "ValidationError", "INVALID", "body")
    await refused(
        ctx, setup.customer_user, COMMENT, {**comment, "nextUpdateAt": "2026-03-11T10:00:00+01:00"},
        "ValidationError", "INVALID", "nextUpdateAt",
    )
    await refused(ctx, setup.engineer, COMMENT, {**comment, "ticketId": "nope"}, "NotFoundError", "NOT_FOUND", "ticketId")
    stranger = await make_setup(setup.connect, make_customer, make_contract, 600)
    await refused(ctx, stranger.partner_user, COMMENT, comment, "NotFoundError", "NOT_FOUND", "ticketId")
    reader, _, _ = await setup.connect.token(TokenScope.CUSTOMER, TokenAccess.READ, customer_id=setup.customer.id)
    await refused(ctx, reader, COMMENT, comment, "PermissionDeniedError", "PERMISSION_DENIED", None)


async def test_a_reply_the_hours_cannot_cover_is_refused_whole(connect: Connect, ctx, make_customer, make_contract):
    setup = await make_setup(connect, make_customer, make_contract, 10)
    ticket = await setup.file()
    result = await refused(
        ctx, setup.engineer, COMMENT, {"ticketId": ticket["id"], "body": "Here is the answer"},
        "InsufficientBalanceError", "INSUFFICIENT_BALANCE", None,
    )
    assert (result["requested"], result["remaining"]) == (15, 10)
    assert (await setup.hours())["consumed"] == 0


# ---- logTime -------------------------------------------------------------------------------------


async def test_logged_time_is_deducted_and_a_correction_gives_it_back(setup: Setup, ctx):
    ticket = await setup.file()
    logged = (await setup.engineer.data(
        LOG_TIME, {"input": {"ticketId": ticket["id"], "minutes": 40, "note": "Reproduced the setup"}}
    ))["logTime"]
    assert logged["__typename"] == "LogTimeSuccess"
    assert logged["ticket"]["id"] == ticket["id"]
    [entry] = logged["deductions"]
    assert (entry["contractId"], entry["bucket"], entry["quantity"], entry["kind"]) == (
        str(setup.contract.id), "support-hours", 40, "CONSUME",
    )
    assert ticket["id"] in entry["reason"]
    assert (await setup.hours())["consumed"] == 40
    correction = (await setup.engineer.data(
        LOG_TIME,
        {"input": {"ticketId": ticket["id"], "minutes": -30, "note": "Booked twice", "correctsEntryId": logged["timeEntryId"]}},
    ))["logTime"]
    assert [d["quantity"] for d in correction["deductions"]] == [-30]
    assert (await setup.hours())["consumed"] == 10
    async with ctx.db.read() as session:
        linked = list(await session.scalars(select(LedgerEntry.ticket_id).where(LedgerEntry.id == uuid.UUID(entry["id"]))))
    assert linked == [uuid.UUID(ticket["id"])]


async def test_log_time_refusals_are_typed_and_write_nothing(connect: Connect, setup: Setup, ctx, make_customer, make_contract):
    ticket = await setup.file()
    work = {"ticketId": ticket["id"], "minutes": 20, "note": "Investigated"}
    for caller in (setup.customer_user, setup.partner_user):
        await refused(ctx, caller, LOG_TIME, work, "PermissionDeniedError", "PERMISSION_DENIED", None)
    engineer = setup.engineer
    await refused(ctx, engineer, LOG_TIME, {**work, "minutes": 0}, "ValidationError", "INVALID", "minutes")
    await refused(ctx, engineer, LOG_TIME, {**work, "note": " "}, "ValidationError", "INVALID", "note")
    await refused(ctx, engineer, LOG_TIME, {**work, "minutes": -5}, "ValidationError", "INVALID", "correctsEntryId")
    await refused(ctx, engineer, LOG_TIME, {**work, "workDate": "2026-04-01"}, "ValidationError", "INVALID", "workDate")
    await refused(
        ctx, engineer, LOG_TIME, {**work, "minutes": -5, "correctsEntryId": str(uuid.uuid4())},
        "NotFoundError", "NOT_FOUND", "correctsEntryId",
    )
    await refused(ctx, engineer, LOG_TIME, {**work, "ticketId": str(uuid.uuid4())}, "NotFoundError", "NOT_FOUND", "ticketId")
    # Past the hours left: refused whole, the time entry too.
    small = await make_setup(connect, make_customer, make_contract, 30)
    small_ticket = await small.file()
    result = await refused(
        ctx, small.engineer, LOG_TIME, {**work, "ticketId": small_ticket["id"], "minutes": 45},
        "InsufficientBalanceError", "INSUFFICIENT_BALANCE", "minutes",
    )
    assert (result["requested"], result["remaining"]) == (45, 30)
