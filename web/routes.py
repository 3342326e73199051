"""Portal routes. Handlers resolve the actor, call api.services, and render; no rule lives here."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from api.auth import request_actor
from api.services import contracts, ledger, parties, programs
from api.services.context import AppContext
from api.services.errors import DomainError

__all__ = ["exception_handlers", "portal_routes", "static_mount", "templates"]

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def _quantity(value: int, ledger_unit: str) -> str:
    """Minutes as '12 h 30 min'; activities as a count."""
    if ledger_unit != "minutes":
        return f"{value} {'activity' if abs(value) == 1 else 'activities'}"
    sign = "-" if value < 0 else ""
    hours, minutes = divmod(abs(value), 60)
    if hours and minutes:
        return f"{sign}{hours} h {minutes} min"
    return f"{sign}{hours} h" if hours else f"{sign}{minutes} min"


templates.env.filters["quantity"] = _quantity


def _app(request: Request) -> AppContext:
    return request.app.state.context


_HTMX_HEADERS = ("HX-Request", "HX-Request-Type", "HX-Boosted")


def _render(request: Request, page: str, partial: str, context: dict[str, Any], status_code: int = 200) -> Response:
    """Whole page for a normal request, the partial alone for an htmx request that swaps part of the page.
    htmx also sends HX-Request on boosted links and history restores, which swap the whole body: those
    get the page (htmx 4 marks them `HX-Request-Type: full`, earlier versions `HX-Boosted`)."""
    headers = request.headers
    wants_partial = (
        headers.get("HX-Request") == "true"
        and headers.get("HX-Request-Type") != "full"
        and headers.get("HX-Boosted") != "true"
    )
    response = templates.TemplateResponse(request, partial if wants_partial else page, context, status_code=status_code)
    response.headers["Vary"] = ", ".join(_HTMX_HEADERS)  # one URL, two bodies: caches must keep them apart
    return response


async def home(request: Request) -> Response:
    app, actor = _app(request), request_actor(request)
    customers = {c.id: c for c in await parties.list_customers(app, actor)}
    found = await contracts.list_contracts(app, actor)
    return templates.TemplateResponse(
        request, "contracts.html", {"contracts": found, "customers": customers, "actor": actor}
    )


def _parse_day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise HTTPException(400, f"{value!r} is not a date (YYYY-MM-DD)") from None


async def contract_page(request: Request) -> Response:
    app, actor = _app(request), request_actor(request)
    try:
        contract_id = uuid.UUID(request.path_params["contract_id"])
    except ValueError:
        raise HTTPException(404, "no such contract") from None
    on = _parse_day(request.query_params.get("on"))
    try:
        contract = await contracts.get_contract(app, actor, contract_id)
        periods = await contracts.entitlements(app, actor, contract_id, on)
        page = await ledger.ledger_page(app, actor, contract_id, first=20)
    except DomainError as exc:
        raise HTTPException(404, exc.message) from None
    plans = await programs.get_plans_by_ids(app, actor, [contract.plan_id])
    customers = await parties.get_customers_by_ids(app, actor, [contract.customer_id])
    context = {
        "contract": contract,
        "plan": plans[contract.plan_id],
        "customer": customers.get(contract.customer_id),
        "periods": periods,
        "on": on,
        "today": app.today(plans[contract.plan_id].program.timezone),
        "entries": page.entries,
        "actor": actor,
    }
    return _render(request, "contract.html", "partials/entitlements.html", context)


async def programs_page(request: Request) -> Response:
    app, actor = _app(request), request_actor(request)
    found = await programs.list_programs(app, actor)
    return templates.TemplateResponse(request, "programs.html", {"programs": found, "actor": actor})


async def http_error(request: Request, exc: HTTPException) -> Response:
    return templates.TemplateResponse(
        request, "error.html", {"status": exc.status_code, "detail": exc.detail}, status_code=exc.status_code
    )


def portal_routes() -> list[Route]:
    return [
        Route("/", home, name="home"),
        Route("/contracts/{contract_id}", contract_page, name="contract"),
        Route("/programs", programs_page, name="programs"),
    ]


def static_mount() -> Mount:
    return Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static")


def exception_handlers() -> dict[Any, Any]:
    return {HTTPException: http_error}



