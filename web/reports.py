"""A contract's monthly consumption report, with its CSV download."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api.domain.reports import ConsumptionReport
from api.services import contracts, reports
from api.services.errors import DomainError, NotFound
from web.forms import errors_of, parse_uuid
from web.layout import app_context, render
from web.session import PortalSession, portal_view

__all__ = ["reports_page"]

TARGET_NAMES = {"acknowledge": "Acknowledge", "first_response": "First response", "resolution": "Resolution"}


@portal_view
async def reports_page(request: Request, session: PortalSession) -> Response:
    """Pick a contract (those of the customer in view, or every one staff see) and a month; see its report."""
    app, actor = app_context(request), session.actor
    contract_id = parse_uuid(request.query_params.get("contract"))
    if actor.is_provider:
        found = await contracts.contract_options(app, actor, contract_id)
    else:
        customer_id = request.state.acting.customer_id
        found = await contracts.list_contracts(app, actor, customer_id=customer_id) if customer_id else []
    month = request.query_params.get("month", "").strip()
    report: ConsumptionReport | None = None
    errors: dict[str, str] = {}
    if contract_id is None and found:
        contract_id = found[0].id
    if not month:
        month = f"{app.now():%Y-%m}"
    if contract_id is not None and request.query_params:
        try:
            report = await reports.consumption_report(app, actor, contract_id, month)
        except NotFound as exc:
            errors = {"contract": exc.message}
        except DomainError as exc:
            errors = errors_of(exc, {"month": "month", "contractId": "contract"}, "month")
    context = {
        "contracts": found,
        "contract_id": contract_id,
        "month": month,
        "report": report,
        "errors": errors,
        "csv": reports.csv_path(report.contract_id, report.month) if report else None,
        "target_names": TARGET_NAMES,
    }
    return render(request, "reports.html", None, context, status_code=422 if errors else 200)
