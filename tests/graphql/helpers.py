"""GraphQL snippets shared by the API tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Gql = Callable[..., Awaitable[dict[str, Any]]]

PERIOD_FIELDS = """
    bucket bucketName unit ledgerUnit periodStart periodEnd
    allowance consumed remaining ended expired expiresInDays
"""

ENTRY_FIELDS = """
    id contractId bucket periodStart periodEnd quantity kind reason
    actorKind actorRef onBehalfOfCustomerId idempotencyKey reversesEntryId createdAt
"""

# A ledger mutation's result: success or one of the typed refusals.
LEDGER_RESULT = f"""
    __typename
    ... on LedgerEntrySuccess {{ replayed entry {{ {ENTRY_FIELDS} }} period {{ {PERIOD_FIELDS} }} }}
    ... on UserError {{ code message field }}
"""
BALANCE_ERROR = "... on InsufficientBalanceError { requested remaining }"

CONSUME = f"""
mutation Consume($input: ConsumeEntitlementInput!) {{
  consumeEntitlement(input: $input) {{ {LEDGER_RESULT} {BALANCE_ERROR} }}
}}
"""

REVERSE = f"""
mutation Reverse($input: ReverseEntryInput!) {{
  reverseEntry(input: $input) {{ {LEDGER_RESULT} }}
}}
"""

ADJUST = f"""
mutation Adjust($input: AdjustEntitlementInput!) {{
  adjustEntitlement(input: $input) {{ {LEDGER_RESULT} {BALANCE_ERROR} }}
}}
"""

ENTITLEMENTS = f"""
query Entitlements($id: ID!, $on: Date) {{
  contract(id: $id) {{ entitlements(on: $on) {{ {PERIOD_FIELDS} }} }}
}}
"""

LEDGER = f"""
query Ledger($id: ID!, $first: Int!, $after: String) {{
  contract(id: $id) {{
    ledger(first: $first, after: $after) {{
      edges {{ cursor node {{ {ENTRY_FIELDS} }} }}
      pageInfo {{ hasNextPage endCursor }}
    }}
  }}
}}
"""


async def consume(gql: Gql, contract_id: object, quantity: str | int, **fields: Any) -> dict[str, Any]:
    variables = {"contractId": str(contract_id), "bucket": fields.pop("bucket", "activities"), "quantity": str(quantity)}
    variables.update(fields)
    return (await gql(CONSUME, {"input": variables}))["consumeEntitlement"]


async def entitlements(gql: Gql, contract_id: object, on: str | None = None) -> list[dict[str, Any]]:
    data = await gql(ENTITLEMENTS, {"id": str(contract_id), "on": on})
    return data["contract"]["entitlements"]


async def period(gql: Gql, contract_id: object, on: str, bucket: str = "activities") -> dict[str, Any]:
    [found] = [p for p in await entitlements(gql, contract_id, on) if p["bucket"] == bucket]
    return found


async def ledger_entries(gql: Gql, contract_id: object) -> list[dict[str, Any]]:
    data = await gql(LEDGER, {"id": str(contract_id), "first": 200, "after": None})
    return [edge["node"] for edge in data["contract"]["ledger"]["edges"]]
