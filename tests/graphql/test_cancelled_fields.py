"""A field that fails ends its siblings early (graphql-core cancels those still running): that must never
end the others loading the same object. Found by the fuzz run (tests/test_fuzz_graphql.py)."""

from __future__ import annotations

import asyncio
import logging

from api.graphql.context import SharedLoader
from api.models import TokenAccess, TokenScope


async def test_a_cancelled_caller_leaves_the_others_loading_the_same_key() -> None:
    loads: list[list[str]] = []

    async def load(keys: list[str]) -> list[str]:
        loads.append(keys)
        await asyncio.sleep(0.01)
        return [key.upper() for key in keys]

    loader: SharedLoader[str, str] = SharedLoader(load)
    first = asyncio.ensure_future(loader.load("plan"))
    second = asyncio.ensure_future(loader.load("plan"))
    await asyncio.sleep(0)  # both are waiting on the batch
    first.cancel()
    assert await second == "PLAN"
    assert first.cancelled()
    assert loads == [["plan"]]


# Every contract's `periods` fails for an unknown bucket; the first failure cancels the other contracts'
# fields, among them `plan`, which `contract(id)` is loading too.
SIBLINGS = """
query Run($id: ID!) {
  contracts { edges { node { plan { code } periods(bucket: "no-such-bucket") { allowance } } } }
  contract(id: $id) { plan { code } }
}
"""


async def test_a_failed_field_answers_its_error_and_not_a_server_error(  # type: ignore[no-untyped-def]
    connect, make_contract, make_customer
):
    customer = await make_customer()
    made = [await make_contract(customer=customer, plan=plan) for plan in ("small", "medium", "large")]
    caller, _, _ = await connect.token(TokenScope.CUSTOMER, TokenAccess.READ, customer_id=customer.id)
    # The race is lost on most tries without the fix; twenty tries all answer with it.
    for _ in range(20):
        response = await caller.post(SIBLINGS, {"id": str(made[0].id)})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["data"] is None
        assert [e["path"][-1] for e in body["errors"]] == ["periods"]
        assert "no bucket 'no-such-bucket'" in body["errors"][0]["message"]


async def test_fields_cancelled_mid_statement_leave_the_pool_clean(  # type: ignore[no-untyped-def]
    connect, database, make_contract, make_customer, caplog
):
    """The fields graphql-core cancels may be inside a database statement; their work is finished rather than
    cut off, so every connection goes back to the pool, reset, and none is dropped with an error."""
    customer = await make_customer()
    for plan in ("small", "medium", "large", "small", "medium", "large"):
        await make_contract(customer=customer, plan=plan)
    caller, _, _ = await connect.token(TokenScope.CUSTOMER, TokenAccess.READ, customer_id=customer.id)
    query = '{ contracts { edges { node { periods(bucket: "nope") { allowance } entitlements { bucket } } } } }'
    with caplog.at_level(logging.WARNING):
        for _ in range(20):
            response = await caller.post(query)
            assert response.status_code == 200, response.text
            assert response.json()["errors"][0]["path"][-1] == "periods"
        await asyncio.sleep(0.2)  # work that outlived its request settles
    assert database.engine.pool.checkedout() == 0
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [p for p in problems if "reset" in p or "Cancelled" in p or "garbage collector" in p], problems
