"""GraphQL: `tickets(filter, first, after)`: each filter, stable keyset paging, who sees which tickets
and their last comment, and the N+1 guard (the statement count does not grow with the page)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from api.models import TokenAccess, TokenScope
from api.services import parties, tickets
from api.services.context import Actor
from api.services.tickets import NewTicket
from tests.conftest import ADMIN, NOW, unique
from tests.graphql.conftest import Connect

LIST = """
query($filter: TicketFilter, $first: Int, $after: String) {
  tickets(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id customerId status severity ticketType subject filedBy } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
FULL = """
query($filter: TicketFilter, $first: Int) {
  tickets(filter: $filter, first: $first) {
    edges { node {
      id subject filedBy
      customer { id code }
      contract { id reference }
      plan { code name }
      lastComment { body createdAt internal authorKind }
      sla { target dueAt breached atRisk }
    } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def support_customer(make_customer, make_contract):  # type: ignore[no-untyped-def]
    customer = await make_customer()
    contract = await make_contract(
        program="partner-support", plan="enterprise", customer=customer, custom_allowances={"support-hours": 600}
    )
    return customer, contract


async def open_at(ctx, clock, customer, at, subject="Question", *, actor: Actor = ADMIN, ticket_type="question",
                  severity="standard", description=""):  # type: ignore[no-untyped-def]
    clock.instant = at
    diagnosis: dict[str, Any] = {}
    if ticket_type == "incident":
        diagnosis = {"affected_account": "acme-prod", "steps_followed": "Ran it", "expected_result": "It works"}
    ticket = await tickets.open_ticket(
        ctx, actor, NewTicket(customer.id, ticket_type, severity, subject, description=description, **diagnosis)
    )
    clock.instant = NOW
    return ticket


def ids(data: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in data["tickets"]["edges"]]


async def test_each_filter(gql, ctx, clock, make_customer, make_contract):
    customer, _ = await support_customer(make_customer, make_contract)
    other, _ = await support_customer(make_customer, make_contract)
    engineer = Actor(kind="staff", ref=f"user:{unique('engineer')}", name="Sam", roles=frozenset({"support_engineer"}))
    # First response is due within 2 business hours (Madrid, 08-18); NOW is Tuesday 13:00 in Madrid.
    breached = await open_at(ctx, clock, customer, NOW - timedelta(hours=3), "Old question")
    at_risk = await open_at(ctx, clock, customer, NOW - timedelta(minutes=105), "Risky question")
    crash = await open_at(
        ctx, clock, customer, NOW - timedelta(minutes=30), "Checkout CRASHES", ticket_type="incident",
        severity="critical", description="The Payment Gateway times out",
    )
    resolved = await open_at(ctx, clock, customer, NOW - timedelta(minutes=20), "Solved question")
    await tickets.record_event(ctx, engineer, resolved.id, "resolved")
    by_engineer = await open_at(
        ctx, clock, customer, NOW - timedelta(minutes=10), "Engineer's incident", actor=engineer,
        ticket_type="incident", severity="minor",
    )
    elsewhere = await open_at(ctx, clock, other, NOW - timedelta(hours=3), "Old question")

    async def listed(**conditions: Any) -> list[str]:
        return ids(await gql(LIST, {"filter": {"customerId": str(customer.id), **conditions}}))

    every = [by_engineer, resolved, crash, at_risk, breached]
    assert await listed() == [str(t.id) for t in every]  # newest first
    assert ids(await gql(LIST, {"filter": {"customerId": str(other.id)}})) == [str(elsewhere.id)]
    assert await listed(status="resolved") == [str(resolved.id)]
    assert await listed(status="closed") == []
    assert await listed(severity="critical") == [str(crash.id)]
    assert await listed(ticketType="incident") == [str(by_engineer.id), str(crash.id)]
    assert await listed(filedBy=engineer.ref) == [str(by_engineer.id)]
    assert ids(await gql(LIST, {"filter": {"filedBy": engineer.ref}})) == [str(by_engineer.id)]
    assert await listed(text="crashes") == [str(crash.id)]  # subject, any case
    assert await listed(text="payment GATEWAY") == [str(crash.id)]  # description
    assert await listed(text="100%") == []  # LIKE wildcards are literal
    assert await listed(atRisk=True) == [str(at_risk.id)]
    assert await listed(breached=True) == [str(breached.id)]
    assert await listed(breached=False, atRisk=False) == [str(by_engineer.id), str(resolved.id), str(crash.id)]
    assert await listed(breached=True, ticketType="incident") == []
    # A malformed customer id reads as a customer without tickets.
    assert ids(await gql(LIST, {"filter": {"customerId": "not-an-id"}})) == []


@pytest.mark.parametrize("scan_limit", [None, 2])
async def test_sla_filters_scan_past_non_matching_batches(  # type: ignore[no-untyped-def]
    gql, ctx, clock, make_customer, make_contract, monkeypatch, scan_limit
):
    customer, _ = await support_customer(make_customer, make_contract)
    old = [await open_at(ctx, clock, customer, NOW - timedelta(hours=4, minutes=i)) for i in range(3)]
    for i in range(5):
        await open_at(ctx, clock, customer, NOW - timedelta(minutes=i))  # newer, on time: scanned past
    monkeypatch.setattr(tickets, "_SLA_SCAN_BATCH", 1)
    if scan_limit is not None:  # a request examines at most this many: pages end early, some empty
        monkeypatch.setattr(tickets, "_SLA_SCAN_LIMIT", scan_limit)
    seen, after, pages = [], None, []
    while True:
        data = await gql(LIST, {"filter": {"customerId": str(customer.id), "breached": True}, "first": 1, "after": after})
        seen += ids(data)
        pages.append(len(ids(data)))
        if not data["tickets"]["pageInfo"]["hasNextPage"]:
            break
        after = data["tickets"]["pageInfo"]["endCursor"]
    assert seen == [str(t.id) for t in old]
    if scan_limit is not None:
        assert 0 in pages  # the five newer ones took pages of their own, without a match


async def test_paging_is_stable_without_duplicates(gql, ctx, clock, make_customer, make_contract):
    customer, _ = await support_customer(make_customer, make_contract)
    # Seven tickets filed at the same instant: the id breaks the tie.
    filed = [await open_at(ctx, clock, customer, NOW - timedelta(minutes=5)) for _ in range(7)]
    filed.append(await open_at(ctx, clock, customer, NOW))
    everything = ids(await gql(LIST, {"filter": {"customerId": str(customer.id)}}))
    assert sorted(everything) == sorted(str(t.id) for t in filed)
    assert everything[0] == str(filed[-1].id)
    pages, after = [], None
    while True:
        data = await gql(LIST, {"filter": {"customerId": str(customer.id)}, "first": 3, "after": after})
        pages.append(ids(data))
        info = data["tickets"]["pageInfo"]
        if not info["hasNextPage"]:
            break
        assert info["endCursor"] == data["tickets"]["edges"][-1]["cursor"]
        after = info["endCursor"]
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [i for p in pages for i in p] == everything
    body = await gql(LIST, {"first": 0}, allow_errors=True)
    assert body["errors"]
    body = await gql(LIST, {"after": "garbage"}, allow_errors=True)
    assert body["errors"]


async def test_customers_and_partners_see_their_own_tickets_only(
    connect: Connect, ctx, clock, make_customer, make_contract
):
    own, _ = await support_customer(make_customer, make_contract)
    other, _ = await support_customer(make_customer, make_contract)
    mine = await open_at(ctx, clock, own, NOW - timedelta(minutes=30), "Mine")
    theirs = await open_at(ctx, clock, other, NOW - timedelta(minutes=30), "Theirs")
    staff = Actor(kind="staff", ref="user:staff", name="Sam Support", roles=frozenset({"support_engineer"}))
    clock.instant = NOW - timedelta(minutes=20)
    await tickets.add_comment(ctx, staff, mine.id, "Public answer")
    clock.instant = NOW - timedelta(minutes=10)
    await tickets.add_comment(ctx, staff, mine.id, "Internal note", internal=True)
    clock.instant = NOW

    code = unique("partner")
    partner = await parties.create_partner(ctx, ADMIN, parties.NewPartner(code=code, name=f"Partner {code}"))
    await parties.link_partner(
        ctx, ADMIN, partner_id=partner.id, customer_id=own.id, managed=True, production_access=False,
        can_file_tickets=True,
    )
    customer_caller, _, _ = await connect.token(TokenScope.CUSTOMER, TokenAccess.READ, customer_id=own.id)
    partner_caller, _, _ = await connect.token(TokenScope.PARTNER, TokenAccess.READ, partner_id=partner.id)
    staff_caller, _, _ = await connect.token()

    for caller in (customer_caller, partner_caller):
        data = await caller.data(FULL, {"first": 200})
        assert ids(data) == [str(mine.id)]
        node = data["tickets"]["edges"][0]["node"]
        assert node["customer"]["id"] == str(own.id)
        assert (node["lastComment"]["body"], node["lastComment"]["internal"]) == ("Public answer", False)
        assert ids(await caller.data(FULL, {"filter": {"customerId": str(other.id)}})) == []
    data = await staff_caller.data(FULL, {"filter": {"customerId": str(own.id)}})
    assert data["tickets"]["edges"][0]["node"]["lastComment"] == {
        "body": "Internal note", "createdAt": (NOW - timedelta(minutes=10)).isoformat(), "internal": True,
        "authorKind": "staff",
    }
    assert ids(await staff_caller.data(FULL, {"filter": {"customerId": str(other.id)}})) == [str(theirs.id)]


async def test_statement_count_does_not_grow_with_the_page(connect: Connect, ctx, clock, make_customer, make_contract):
    marker = unique("nplus1")
    staff = Actor(kind="staff", ref="user:staff", name="Sam Support", roles=frozenset({"support_engineer"}))
    filed = []
    for c in range(10):  # ten customers, each on its own contract, ten tickets each
        customer, _ = await support_customer(make_customer, make_contract)
        for t in range(10):
            ticket = await open_at(ctx, clock, customer, NOW - timedelta(minutes=c * 10 + t), f"{marker} {c}/{t}")
            filed.append(ticket)
            if t % 3 == 0:
                await tickets.add_comment(ctx, staff, ticket.id, "Internal note", internal=True)
    caller, _, _ = await connect.token(TokenScope.PROVIDER, TokenAccess.READ)
    await caller.data("{ me { kind } }")  # the token's first use records last_used_at: keep it out of the count

    statements: list[str] = []
    transactions: list[object] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    def began(conn):  # type: ignore[no-untyped-def]
        transactions.append(conn)

    engine = ctx.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    event.listen(engine, "begin", began)
    try:
        small = await caller.data(FULL, {"filter": {"text": marker}, "first": 10})
        small_count, small_transactions = len(statements), len(transactions)
        statements.clear()
        transactions.clear()
        large = await caller.data(FULL, {"filter": {"text": marker}, "first": 100})
        large_count, large_transactions = len(statements), len(transactions)
    finally:
        event.remove(engine, "before_cursor_execute", count)
        event.remove(engine, "begin", began)

    assert len(small["tickets"]["edges"]) == 10 and small["tickets"]["pageInfo"]["hasNextPage"]
    assert len(large["tickets"]["edges"]) == 100 and not large["tickets"]["pageInfo"]["hasNextPage"]
    node = large["tickets"]["edges"][-1]["node"]
    assert node["customer"] and node["contract"] and node["plan"]["code"] == "enterprise"
    assert node["lastComment"]["internal"] is True and [c["target"] for c in node["sla"]] == ["first_response"]
    # One read transaction for the whole request (api.db.SharedReads), and for 10 tickets as for 100 the same
    # statements: token check, tickets with their plans and programs (documents parsed once per process),
    # events, customers, contracts, last comments; plans and SLA clocks come from what the list read. SQLite
    # adds its BEGIN. Measured: 6 on PostgreSQL, 7 on SQLite.
    assert small_transactions == large_transactions == 1, (small_transactions, large_transactions)
    assert small_count == large_count, (small_count, large_count)
    assert large_count <= 8, statements


async def test_a_ticket_filed_ahead_of_the_clock_lists_without_clocks(gql, ctx, clock, make_customer, make_contract):
    """Another web process whose clock runs a little ahead files a ticket: it is listed, with no SLA clock yet,
    rather than failing the whole list."""
    customer, _ = await support_customer(make_customer, make_contract)
    ahead = await open_at(ctx, clock, customer, NOW + timedelta(seconds=2), "Filed by a clock ahead")
    data = await gql(FULL, {"filter": {"customerId": str(customer.id)}, "first": 5})
    [node] = [edge["node"] for edge in data["tickets"]["edges"]]
    assert node["id"] == str(ahead.id) and node["sla"] == []
    clock.instant = NOW + timedelta(minutes=1)
    try:  # once the clock has passed it, its clocks run
        data = await gql(FULL, {"filter": {"customerId": str(customer.id)}, "first": 5})
        assert [c["target"] for c in data["tickets"]["edges"][0]["node"]["sla"]] == ["first_response"]
    finally:
        clock.instant = NOW
