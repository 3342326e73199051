"""Home pages: the customer's (what is left, consumption, open tickets, upcoming activities), the
partner's (every customer it works with), and for staff the way to the queue; the partner's switch of
the customer in view."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from api.services import contracts, dashboards
from api.services.dashboards import BucketHistory
from api.services.errors import NotFound, ValidationFailed
from web.layout import Viewer, app_context, pager, render
from web.session import ACTING_COOKIE, PortalSession, flash, portal_view, safe_next, secure

__all__ = ["acting_for", "activities_index", "home"]

# The consumption chart: one band per bucket, twelve bars a band (SVG user units).
CHART_WIDTH, BAND_HEIGHT, LABEL_WIDTH, BAR_GAP = 640, 70, 150, 4


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the month and the amount, for the bar's <title>


@dataclass(frozen=True)
class Band:
    title: str
    y: float
    bars: list[Bar]
    peak: str


def consumption_chart(history: list[BucketHistory], months: list[date], viewer: Viewer) -> dict:
    """Geometry of a server-drawn bar chart, one band per bucket, each scaled to its own largest month."""
    bands = []
    plot = CHART_WIDTH - LABEL_WIDTH
    step = plot / max(len(months), 1)
    for n, line in enumerate(history):
        top = max([*line.totals, 1])
        base = n * BAND_HEIGHT + BAND_HEIGHT - 18
        bars = []
        for i, (month, total) in enumerate(zip(months, line.totals, strict=True)):
            height = max(total, 0) / top * (BAND_HEIGHT - 30)
            bars.append(
                Bar(
                    LABEL_WIDTH + i * step + BAR_GAP / 2, base - height, step - BAR_GAP, height,
                    f"{viewer.month(month)}: {viewer.quantity(total, line.bucket.ledger_unit)}",
                )
            )
        bands.append(
            Band(f"{line.plan_name}: {line.bucket.name}", n * BAND_HEIGHT,
                 bars, viewer.quantity(top if any(line.totals) else 0, line.bucket.ledger_unit))
        )
    labels = [(LABEL_WIDTH + i * step + step / 2, viewer.short_month(m)) for i, m in enumerate(months)]
    return {
        "width": CHART_WIDTH,
        "height": max(len(history), 1) * BAND_HEIGHT + 16,
        "bands": bands,
        "labels": labels,
        "label_width": LABEL_WIDTH,
    }


@portal_view
async def home(request: Request, session: PortalSession) -> Response:
    actor, acting = session.actor, request.state.acting
    app = app_context(request)
    if actor.kind == "partner":
        after = request.query_params.get("after") or None
        try:
            page = await dashboards.partner_home(app, actor, first=dashboards.PARTNER_PAGE, after=after)
        except ValidationFailed as exc:
            raise HTTPException(400, exc.message) from None
        current = acting.current
        found = (
            await contracts.list_contracts(app, actor, customer_id=current.customer.id) if current else []
        )
        context = {
            "rows": page.rows,
            "contracts": found,
            **pager("/", {}, after=after, has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        }
        return render(request, "home_partner.html", None, context)
    if actor.kind != "customer" or acting.current is None:
        return RedirectResponse("/queue", status_code=303)
    try:
        data = await dashboards.customer_home(app, actor, acting.current.customer.id)
    except NotFound as exc:
        raise HTTPException(404, exc.message) from None
    chart = consumption_chart(data.history, data.months, request.state.viewer)
    return render(request, "home_customer.html", None, {"home": data, "chart": chart})


@portal_view
async def acting_for(request: Request, session: PortalSession) -> Response:
    """Make another customer the one in view (a partner's switch), then back to the page it came from."""
    source = await request.form() if request.method == "POST" else request.query_params
    wanted, next_path = str(source.get("customer", "")), safe_next(source.get("next"))
    choice = next((c for c in request.state.acting.choices if str(c.customer.id) == wanted), None)
    response = RedirectResponse(next_path, status_code=303)
    if choice is None:
        flash(request, response, session, "That customer is not one you work with.")
        return response
    response.set_cookie(
        ACTING_COOKIE, str(choice.customer.id), max_age=365 * 86400, path="/", secure=secure(request),
        httponly=True, samesite="lax",
    )
    flash(request, response, session, f"Switched to {choice.customer.name}.")
    return response


@portal_view
async def activities_index(request: Request, session: PortalSession) -> Response:
    """The contracts of the customer in view, each with what is left this period: the way to booking."""
    app, acting = app_context(request), request.state.acting
    customer_id: uuid.UUID | None = acting.customer_id
    found = await contracts.list_contracts(app, session.actor, customer_id=customer_id) if customer_id else []
    current = await contracts.current_entitlements(app, session.actor, [c.id for c in found])
    in_force = {view.contract.id for view, periods in current if periods}
    return render(
        request, "activities.html", None,
        {"current": [(v, p) for v, p in current if p], "others": [c for c in found if c.id not in in_force]},
    )
