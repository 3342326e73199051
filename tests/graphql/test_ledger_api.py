"""GraphQL: consuming, reversing and adjusting entitlements; idempotency; the paged ledger."""

from __future__ import annotations

import base64
import uuid
from datetime import date, timedelta

import pytest

from tests.graphql.helpers import ADJUST, LEDGER, REVERSE, consume, ledger_entries, period

Q1_DAY = "2026-03-01"  # Assure Small from 2026-02-15: quarter 1 is 2026-02-15 .. 2026-05-14
Q2_DAY = "2026-06-01"  # quarter 2 is 2026-05-15 .. 2026-08-14


async def assert_untouched(  # type: ignore[no-untyped-def]
    gql, contract_id, *, consumed: int = 0, entries: int = 0, on: str = Q1_DAY, bucket: str = "activities"
):
    """The period's consumption and the contract's ledger are as they were."""
    assert (await period(gql, contract_id, on, bucket))["consumed"] == consumed
    assert len(await ledger_entries(gql, contract_id)) == entries


# ---- consumeEntitlement ------------------------------------------------------------------------


async def test_consume(gql, make_contract, admin_login):
    contract = await make_contract()
    result = await consume(gql, contract.id, 2, on=Q1_DAY, reason="  code review ")
    assert result["__typename"] == "LedgerEntrySuccess"
    assert result["replayed"] is False
    entry = result["entry"]
    assert uuid.UUID(entry["id"])
    assert entry == {
        "id": entry["id"],
        "contractId": str(contract.id),
        "bucket": "activities",
        "periodStart": "2026-02-15",
        "periodEnd": "2026-05-14",
        "quantity": 2,
        "kind": "CONSUME",
        "reason": "code review",
        "actorKind": "staff",
        "actorRef": f"user:{admin_login.user.id}",  # the admin whose session the client uses
        "onBehalfOfCustomerId": None,
        "idempotencyKey": None,
        "reversesEntryId": None,
        "createdAt": "2026-03-10T12:00:00+00:00",
    }
    assert result["period"] == {
        "bucket": "activities",
        "bucketName": "Small activities",
        "unit": "ACTIVITIES",
        "ledgerUnit": "ACTIVITIES",
        "periodStart": "2026-02-15",
        "periodEnd": "2026-05-14",
        "allowance": 5,
        "consumed": 2,
        "remaining": 3,
        "ended": False,
        "expired": 0,
        "expiresInDays": 65,
    }
    assert await period(gql, contract.id, Q1_DAY) == result["period"]
    assert await ledger_entries(gql, contract.id) == [entry]


async def test_consume_defaults_to_today_and_may_book_a_later_period(gql, make_contract):
    contract = await make_contract()
    today = await consume(gql, contract.id, 1)
    later = await consume(gql, contract.id, 4, on=Q2_DAY)
    assert today["period"]["periodStart"] == "2026-02-15"
    assert (later["period"]["periodStart"], later["period"]["consumed"]) == ("2026-05-15", 4)
    assert (await period(gql, contract.id, Q1_DAY))["remaining"] == 4
    assert (await period(gql, contract.id, Q2_DAY))["remaining"] == 1


async def test_consume_the_whole_allowance(gql, make_contract):
    contract = await make_contract()
    result = await consume(gql, contract.id, 5)
    assert (result["period"]["consumed"], result["period"]["remaining"]) == (5, 0)
    refused = await consume(gql, contract.id, 1)
    assert (refused["__typename"], refused["requested"], refused["remaining"]) == ("InsufficientBalanceError", 1, 0)


@pytest.mark.parametrize(
    ("quantity", "code", "message"),
    [
        ("0", "NON_POSITIVE_QUANTITY", "quantity must be greater than 0, got 0"),
        ("-1", "NON_POSITIVE_QUANTITY", "quantity must be greater than 0, got -1"),
        ("1.5", "NOT_WHOLE_UNIT", "quantity 1.5 is not a whole number of activities"),
        ("NaN", "INVALID", "quantity NaN is not a number"),
        ("Infinity", "INVALID", "quantity Infinity is not a number"),
        ("1e30", "INVALID", "quantity 1E+30 is too large"),
        ("3000000000", "INVALID", "quantity 3000000000 is too large"),
    ],
)
async def test_consume_refuses_bad_quantities(gql, make_contract, quantity, code, message):
    contract = await make_contract()
    await consume(gql, contract.id, 1, on=Q1_DAY)
    result = await consume(gql, contract.id, quantity, on=Q1_DAY)
    assert result == {"__typename": "ValidationError", "code": code, "message": message, "field": "quantity"}
    await assert_untouched(gql, contract.id, consumed=1, entries=1)


@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        ("90.5", "quantity 90.5 is not a whole number of minutes"),
        ("10", "quantity 10 is not a multiple of 15 minutes"),
    ],
)
async def test_consume_refuses_part_units_on_an_hours_bucket(gql, make_contract, quantity, message):
    contract = await make_contract(program="premium-availability", plan="premium-16")
    result = await consume(gql, contract.id, quantity, bucket="expert-hours")
    assert result["__typename"] == "ValidationError"
    assert (result["code"], result["field"]) == ("NOT_WHOLE_UNIT", "quantity")
    assert result["message"].startswith(message)
    await assert_untouched(gql, contract.id, bucket="expert-hours", on="2026-03-10")

    ok = await consume(gql, contract.id, "90", bucket="expert-hours")
    assert (ok["entry"]["quantity"], ok["period"]["remaining"]) == (90, 870)


async def test_consume_more_than_remains(gql, make_contract):
    contract = await make_contract()
    await consume(gql, contract.id, 3, on=Q1_DAY)
    result = await consume(gql, contract.id, 3, on=Q1_DAY)
    assert result == {
        "__typename": "InsufficientBalanceError",
        "code": "INSUFFICIENT_BALANCE",
        "message": "only 2 activities remain in bucket 'activities' for 2026-02-15 to 2026-05-14; 3 requested",
        "field": "quantity",
        "requested": 3,
        "remaining": 2,
    }
    await assert_untouched(gql, contract.id, consumed=3, entries=1)


async def test_consume_in_an_ended_period(gql, make_contract):
    contract = await make_contract(effective=date(2025, 10, 1))  # quarter 1 ended on 2025-12-31
    result = await consume(gql, contract.id, 1, on="2025-11-01")
    assert result == {
        "__typename": "PeriodEndedError",
        "code": "PERIOD_ENDED",
        "message": "the period 2025-10-01 to 2025-12-31 of bucket 'activities' has ended; unused units expired with it",
        "field": "on",
    }
    await assert_untouched(gql, contract.id, on="2025-11-01")


@pytest.mark.parametrize("day", ["2026-02-14", "2027-02-15"])
async def test_consume_outside_the_term(gql, make_contract, day):
    contract = await make_contract()
    result = await consume(gql, contract.id, 1, on=day)
    assert result == {
        "__typename": "ContractInactiveError",
        "code": "CONTRACT_INACTIVE",
        "message": f"contract {contract.reference} is not active on {day} (its term is 2026-02-15 to 2027-02-14)",
        "field": "on",
    }
    await assert_untouched(gql, contract.id)


async def test_consume_from_an_unknown_bucket(gql, make_contract):
    contract = await make_contract()
    result = await consume(gql, contract.id, 1, bucket="expert-hours")
    assert result == {
        "__typename": "ValidationError",
        "code": "UNKNOWN_BUCKET",
        "message": "plan 'small' has no bucket 'expert-hours' (it has: activities)",
        "field": "bucket",
    }
    await assert_untouched(gql, contract.id)


@pytest.mark.parametrize("contract_id", [str(uuid.uuid4()), "not-an-id"])
async def test_consume_on_an_unknown_contract(gql, shipped_programs, contract_id):
    result = await consume(gql, contract_id, 1)
    assert result == {
        "__typename": "NotFoundError",
        "code": "NOT_FOUND",
        "message": f"contract {contract_id} does not exist",
        "field": "contractId",
    }


async def test_consume_on_behalf_of_the_contracts_customer(gql, make_contract):
    contract = await make_contract()
    result = await consume(gql, contract.id, 1, onBehalfOfCustomerId=str(contract.customer_id))
    assert result["entry"]["onBehalfOfCustomerId"] == str(contract.customer_id)


@pytest.mark.parametrize("key", [None, "with-key"])
async def test_consume_on_behalf_of_another_customer_is_refused(gql, make_contract, make_customer, key):
    contract = await make_contract()
    for customer_id in (str((await make_customer()).id), str(uuid.uuid4())):
        result = await consume(gql, contract.id, 1, on=Q1_DAY, onBehalfOfCustomerId=customer_id, idempotencyKey=key)
        assert result == {
            "__typename": "ValidationError",
            "code": "INVALID",
            "message": f"onBehalfOfCustomerId must be the contract's customer ({contract.customer_id})",
            "field": "onBehalfOfCustomerId",
        }
    result = await consume(gql, contract.id, 1, on=Q1_DAY, onBehalfOfCustomerId="not-an-id", idempotencyKey=key)
    assert result == {
        "__typename": "NotFoundError",
        "code": "NOT_FOUND",
        "message": "customer not-an-id does not exist",
        "field": "onBehalfOfCustomerId",
    }
    await assert_untouched(gql, contract.id)


# ---- idempotency -------------------------------------------------------------------------------


async def test_the_same_key_and_request_replays_the_first_result(gql, make_contract):
    contract = await make_contract()
    first = await consume(gql, contract.id, 2, on=Q1_DAY, reason="review", idempotencyKey="req-1")
    again = await consume(gql, contract.id, 2, on=Q1_DAY, reason="review", idempotencyKey="req-1")
    assert first["replayed"] is False
    assert again["replayed"] is True
    assert again["entry"] == first["entry"]
    assert again["entry"]["idempotencyKey"] == "req-1"
    assert again["period"]["consumed"] == first["period"]["consumed"] == 2
    await assert_untouched(gql, contract.id, consumed=2, entries=1)


async def test_the_same_key_for_another_request_is_a_conflict(gql, make_contract):
    contract = await make_contract()
    await consume(gql, contract.id, 2, on=Q1_DAY, idempotencyKey="req-1")
    result = await consume(gql, contract.id, 1, on=Q1_DAY, idempotencyKey="req-1")
    assert result == {
        "__typename": "ConflictError",
        "code": "IDEMPOTENCY_CONFLICT",
        "message": "idempotency key 'req-1' was already used on this contract for a different request",
        "field": "idempotencyKey",
    }
    await assert_untouched(gql, contract.id, consumed=2, entries=1)


async def test_a_key_belongs_to_one_contract(gql, make_contract):
    one, other = await make_contract(), await make_contract()
    first = await consume(gql, one.id, 1, idempotencyKey="shared-key")
    second = await consume(gql, other.id, 1, idempotencyKey="shared-key")
    assert second["replayed"] is False
    assert second["entry"]["id"] != first["entry"]["id"]


# ---- reverseEntry ------------------------------------------------------------------------------


async def reverse(gql, entry_id: str, reason: str = "booked by mistake", **fields):  # type: ignore[no-untyped-def]
    return (await gql(REVERSE, {"input": {"entryId": entry_id, "reason": reason, **fields}}))["reverseEntry"]


async def test_reverse_restores_the_period_the_entry_was_taken_from(gql, make_contract):
    contract = await make_contract()
    taken = (await consume(gql, contract.id, 2, on=Q1_DAY))["entry"]
    await consume(gql, contract.id, 1, on=Q2_DAY)

    result = await reverse(gql, taken["id"])
    assert result["__typename"] == "LedgerEntrySuccess"
    assert result["replayed"] is False
    entry = result["entry"]
    assert (entry["kind"], entry["quantity"], entry["reversesEntryId"], entry["reason"]) == (
        "REVERSE", -2, taken["id"], "booked by mistake",
    )
    assert (entry["periodStart"], entry["periodEnd"]) == ("2026-02-15", "2026-05-14")
    assert (result["period"]["periodStart"], result["period"]["consumed"], result["period"]["remaining"]) == (
        "2026-02-15", 0, 5,
    )
    assert (await period(gql, contract.id, Q1_DAY))["remaining"] == 5
    assert (await period(gql, contract.id, Q2_DAY))["remaining"] == 4


async def test_reverse_needs_a_reason(gql, make_contract):
    contract = await make_contract()
    taken = (await consume(gql, contract.id, 2, on=Q1_DAY))["entry"]
    result = await reverse(gql, taken["id"], reason="   ")
    assert result == {
        "__typename": "ValidationError", "code": "INVALID", "message": "a reversal needs a reason", "field": "reason",
    }
    await assert_untouched(gql, contract.id, consumed=2, entries=1)


async def test_an_entry_is_reversed_once(gql, make_contract):
    contract = await make_contract()
    taken = (await consume(gql, contract.id, 2, on=Q1_DAY))["entry"]
    reversal = (await reverse(gql, taken["id"]))["entry"]

    again = await reverse(gql, taken["id"], reason="again")
    assert again["__typename"] == "ConflictError"
    assert (again["code"], again["field"]) == ("ALREADY_REVERSED", "entryId")
    assert again["message"] == f"ledger entry {taken['id']} was already reversed by entry {reversal['id']}"

    of_reversal = await reverse(gql, reversal["id"])
    assert of_reversal == {
        "__typename": "ConflictError",
        "code": "NOT_REVERSIBLE",
        "message": "a reversal cannot itself be reversed; record a new entry instead",
        "field": "entryId",
    }
    await assert_untouched(gql, contract.id, consumed=0, entries=2)


@pytest.mark.parametrize("entry_id", [str(uuid.uuid4()), "nope"])
async def test_reverse_an_unknown_entry(gql, shipped_programs, entry_id):
    result = await reverse(gql, entry_id)
    assert result == {
        "__typename": "NotFoundError",
        "code": "NOT_FOUND",
        "message": f"ledger entry {entry_id} does not exist",
        "field": "entryId",
    }


# ---- adjustEntitlement -------------------------------------------------------------------------


async def adjust(gql, contract_id, quantity: str, on: str = Q1_DAY, reason: str = "correction"):  # type: ignore[no-untyped-def]
    variables = {"contractId": str(contract_id), "bucket": "activities", "quantity": quantity, "on": on, "reason": reason}
    return (await gql(ADJUST, {"input": variables}))["adjustEntitlement"]


async def test_adjust_both_ways(gql, make_contract):
    contract = await make_contract()
    up = await adjust(gql, contract.id, "3")
    assert up["__typename"] == "LedgerEntrySuccess"
    assert (up["entry"]["kind"], up["entry"]["quantity"], up["entry"]["reason"]) == ("ADJUST", 3, "correction")
    assert (up["period"]["consumed"], up["period"]["remaining"]) == (3, 2)

    down = await adjust(gql, contract.id, "-2")
    assert (down["entry"]["kind"], down["entry"]["quantity"]) == ("ADJUST", -2)
    assert (down["period"]["consumed"], down["period"]["remaining"]) == (1, 4)
    await assert_untouched(gql, contract.id, consumed=1, entries=2)


async def test_adjust_reaches_an_ended_period(gql, make_contract):
    contract = await make_contract(effective=date(2025, 10, 1))
    result = await adjust(gql, contract.id, "1", on="2025-11-01")
    assert (result["period"]["periodEnd"], result["period"]["ended"], result["period"]["expired"]) == (
        "2025-12-31", True, 4,
    )


async def test_adjust_stays_within_zero_and_the_allowance(gql, make_contract):
    contract = await make_contract()
    await adjust(gql, contract.id, "1")

    below = await adjust(gql, contract.id, "-2")
    assert below["__typename"] == "InsufficientBalanceError"
    assert below["code"] == "INSUFFICIENT_BALANCE"
    assert below["message"] == "adjusting by -2 would leave -1 consumed of an allowance of 5 activities"
    assert (below["requested"], below["remaining"]) == (-2, 4)

    above = await adjust(gql, contract.id, "5")
    assert above["__typename"] == "InsufficientBalanceError"
    assert above["message"] == "adjusting by 5 would leave 6 consumed of an allowance of 5 activities"
    await assert_untouched(gql, contract.id, consumed=1, entries=1)


async def test_adjust_needs_a_reason_and_a_sane_quantity(gql, make_contract):
    contract = await make_contract()
    huge = await adjust(gql, contract.id, "-1e30")
    assert (huge["__typename"], huge["field"], huge["message"]) == (
        "ValidationError", "quantity", "quantity -1E+30 is too large",
    )
    no_reason = await adjust(gql, contract.id, "1", reason="")
    assert (no_reason["__typename"], no_reason["field"], no_reason["message"]) == (
        "ValidationError", "reason", "an adjustment needs a reason",
    )
    zero = await adjust(gql, contract.id, "0")
    assert (zero["__typename"], zero["code"], zero["field"]) == ("ValidationError", "NON_POSITIVE_QUANTITY", "quantity")
    await assert_untouched(gql, contract.id)


# ---- the paged ledger --------------------------------------------------------------------------


async def page(gql, contract_id, first: int, after: str | None = None):  # type: ignore[no-untyped-def]
    data = await gql(LEDGER, {"id": str(contract_id), "first": first, "after": after})
    return data["contract"]["ledger"]


async def walk(gql, contract_id, first: int) -> list[dict]:  # type: ignore[no-untyped-def]
    pages, after = [], None
    while True:
        found = await page(gql, contract_id, first, after)
        pages.append(found)
        if not found["pageInfo"]["hasNextPage"]:
            return pages
        after = found["pageInfo"]["endCursor"]
        assert after == found["edges"][-1]["cursor"]
        assert len(pages) < 10, "the ledger pages never end"


@pytest.mark.parametrize("same_instant", [False, True], ids=["clock-moving", "same-instant"])
async def test_ledger_pages_newest_first(gql, make_contract, clock, same_instant):
    contract = await make_contract(plan="medium")
    created = []
    for n in range(5):
        if not same_instant:
            clock.instant += timedelta(minutes=1)
        created.append((await consume(gql, contract.id, 1, reason=f"entry {n}"))["entry"])

    pages = await walk(gql, contract.id, 2)
    assert [len(p["edges"]) for p in pages] == [2, 2, 1]
    assert [p["pageInfo"]["hasNextPage"] for p in pages] == [True, True, False]
    ids = [edge["node"]["id"] for p in pages for edge in p["edges"]]
    assert len(set(ids)) == 5
    assert set(ids) == {e["id"] for e in created}
    if not same_instant:
        assert ids == [e["id"] for e in reversed(created)]
    times = [edge["node"]["createdAt"] for p in pages for edge in p["edges"]]
    assert times == sorted(times, reverse=True)

    whole = await page(gql, contract.id, 5)
    assert [edge["node"]["id"] for edge in whole["edges"]] == ids
    assert whole["pageInfo"]["hasNextPage"] is False


async def test_an_empty_ledger(gql, make_contract):
    contract = await make_contract()
    assert await page(gql, contract.id, 10) == {"edges": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}


@pytest.mark.parametrize(
    "cursor",
    ["garbage", base64.urlsafe_b64encode(b"yesterday|not-a-uuid").decode(), base64.urlsafe_b64encode(b"\xff\xfe").decode()],
)
async def test_a_garbage_cursor_is_a_clean_error(gql, make_contract, cursor):
    contract = await make_contract()
    await consume(gql, contract.id, 1)
    body = await gql(LEDGER, {"id": str(contract.id), "first": 2, "after": cursor}, allow_errors=True)
    assert body["data"] == {"contract": None}
    [error] = body["errors"]
    assert error["message"] == f"cursor {cursor!r} is not one this API gave out"
    assert error["path"] == ["contract", "ledger"]
    assert "Traceback" not in str(body)


@pytest.mark.parametrize("first", [0, 201])
async def test_page_size_is_bounded(gql, make_contract, first):
    contract = await make_contract()
    body = await gql(LEDGER, {"id": str(contract.id), "first": first, "after": None}, allow_errors=True)
    [error] = body["errors"]
    assert error["message"] == "first must be between 1 and 200"
