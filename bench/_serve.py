"""The application `entitle serve` runs, with two more routes for bench/http_read_path.py, served the way
`entitle serve` serves it (same uvicorn options, settings from the environment):

    .venv/bin/python -m bench._serve [--port 8000] [--workers 1]

* GET /bench/static: a constant JSON body the size of Acme Retail's answer; no database, no authentication.
* GET /bench/plain: "what is left this quarter" without GraphQL: the bearer token authenticated as /graphql
  authenticates it, then the service functions the GraphQL resolvers call for
  `contracts { edges { cursor node { reference customer { name } entitlements { ... } } } pageInfo { ... } }`
  (the first page of contracts, their customers by id, their entitlements today), answered as the JSON
  /graphql answers.

Both are added in front of the application's own routes, so they pass through the same middleware as /graphql
(security headers, request id, body limit, and whatever else api/app.py puts around every request).
"""

from __future__ import annotations

import argparse
import asyncio
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.app import create_app
from api.auth import authenticate
from api.config import get_settings
from api.services import contracts, parties
from api.services.contracts import EntitlementPeriod
from api.services.errors import AuthenticationFailed

__all__ = ["PLAIN", "STATIC", "create_bench_app"]

PLAIN = "/bench/plain"
STATIC = "/bench/static"
PAGE_SIZE = 50  # the default `first` of `contracts`

_PERIOD = {
    "bucket": "activities", "unit": "ACTIVITIES", "ledgerUnit": "ACTIVITIES", "periodStart": "2026-10-01",
    "periodEnd": "2026-12-31", "allowance": 5, "consumed": 2, "remaining": 3, "expiresInDays": 31,
}
_EDGE = {"cursor": "azpERU1PLUFEVklTT1JZLUFTU1VSRS1DVVNUT00=", "node": {
    "reference": "DEMO-ADVISORY-ASSURE-CUSTOM", "customer": {"name": "Acme Retail"}, "entitlements": [_PERIOD],
}}
# Acme Retail's answer has four contracts of one bucket each.
STATIC_BODY = json.dumps({"data": {"contracts": {
    "edges": [_EDGE] * 4, "pageInfo": {"hasNextPage": False, "endCursor": _EDGE["cursor"]},
}}}).encode()


def _unauthorized(message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]}, 401,
                        headers={"WWW-Authenticate": 'Bearer realm="entitle"'})


def _period(p: EntitlementPeriod) -> dict:
    return {
        "bucket": p.bucket_code, "unit": p.bucket.unit.upper(), "ledgerUnit": p.bucket.ledger_unit.upper(),
        "periodStart": p.period.start.isoformat(), "periodEnd": p.period.end.isoformat(), "allowance": p.allowance,
        "consumed": p.consumed, "remaining": p.remaining, "expiresInDays": p.expires_in_days,
    }


async def static(request: Request) -> Response:
    return Response(STATIC_BODY, media_type="application/json")


async def plain(request: Request) -> Response:
    ctx = request.app.state.context
    try:
        credentials = await authenticate(request, ctx, "graphql")
    except AuthenticationFailed as exc:
        return _unauthorized(exc.message)
    if credentials is None or credentials.session_secret is not None:
        return _unauthorized("send 'Authorization: Bearer <token>'")
    actor = credentials.actor
    page = await contracts.page_contracts(ctx, actor, first=PAGE_SIZE)
    customers, periods = await asyncio.gather(
        parties.get_customers_by_ids(ctx, actor, list({c.customer_id for c in page.items})),
        contracts.entitlements_for_contracts(ctx, actor, [(c.id, None) for c in page.items]),
    )
    edges = []
    for contract in page.items:
        customer = customers.get(contract.customer_id)
        edges.append({"cursor": contracts.contract_cursor(contract), "node": {
            "reference": contract.reference,
            "customer": None if customer is None else {"name": customer.name},
            "entitlements": [_period(p) for p in periods[(contract.id, None)]],
        }})
    page_info = {"hasNextPage": page.has_next_page, "endCursor": page.end_cursor}
    return JSONResponse({"data": {"contracts": {"edges": edges, "pageInfo": page_info}}})


def create_bench_app() -> Starlette:
    app = create_app(get_settings())
    app.router.routes[0:0] = [Route(STATIC, static), Route(PLAIN, plain)]
    return app


def main() -> None:
    import uvicorn

    from api.cli import serve_options

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    uvicorn.run("bench._serve:create_bench_app", factory=True, host="127.0.0.1", port=args.port,
                **serve_options(get_settings(), workers=args.workers))


if __name__ == "__main__":
    main()
