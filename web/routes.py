"""Portal routes. Handlers resolve the session's actor, call api.services, and render; no rule lives here.

Authentication is by session cookie only (a bearer token is not accepted here). Every page but /login
goes through `portal_view`, which redirects to the login page without a live session and checks the
session's CSRF token on any state-changing request, so new routes (tickets, bookings) get both by
using it."""

from __future__ import annotations

import functools
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from api.auth import CSRF_HEADER, SESSION_COOKIE, csrf_matches
from api.domain.units import format_quantity
from api.services import bookings, calendar_feeds, contracts, identity, ledger, parties, policy, programs
from api.services.context import Actor, AppContext
from api.services.errors import AuthenticationFailed, DomainError, NotFound, TooManyAttempts, ValidationFailed

__all__ = [
    "CSRF_FIELD",
    "CSRF_REFUSAL",
    "LOGIN_CSRF_COOKIE",
    "PortalSession",
    "exception_handlers",
    "portal_routes",
    "portal_view",
    "require_csrf",
    "safe_next",
    "static_mount",
    "templates",
]

HERE = Path(__file__).parent
LOGIN_CSRF_COOKIE = "entitle_csrf"  # double-submit token of the login form, which has no session yet
CSRF_FIELD = "csrf_token"
CSRF_REFUSAL = "the form has expired or was not sent from this site; reload and try again"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_NOTICES = {
    "expired": "Your session has expired; please log in again.",
    "invalid": "Your session is no longer valid; please log in again.",
}
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,128}")


@dataclass(frozen=True)
class PortalSession:
    """The caller of a portal request: the session's actor (interface "portal"), secret and CSRF token."""

    actor: Actor
    secret: str
    csrf_token: str


def _template_globals(request: Request) -> dict[str, Any]:
    return {"portal": getattr(request.state, "portal", None)}


templates = Jinja2Templates(directory=HERE / "templates", context_processors=[_template_globals])


def _local(instant: datetime, timezone: str, pattern: str = "%Y-%m-%d %H:%M") -> str:
    """An instant as the wall-clock time of a zone (the program's: every time on a contract page is in it)."""
    return instant.astimezone(ZoneInfo(timezone)).strftime(pattern)


templates.env.filters["quantity"] = format_quantity
templates.env.filters["local"] = _local


def _app(request: Request) -> AppContext:
    return request.app.state.context


_HTMX_HEADERS = ("HX-Request", "HX-Request-Type", "HX-Boosted")


def _is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _wants_partial(request: Request) -> bool:
    """htmx also sends HX-Request on boosted links and history restores, which swap the whole body: those
    get the page (htmx 4 marks them `HX-Request-Type: full`, earlier versions `HX-Boosted`)."""
    headers = request.headers
    return _is_htmx(request) and headers.get("HX-Request-Type") != "full" and headers.get("HX-Boosted") != "true"


def _render(
    request: Request,
    page: str,
    partial: str,
    context: dict[str, Any],
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """Whole page for a normal request, the partial alone for an htmx request that swaps part of the page."""
    response = templates.TemplateResponse(
        request, partial if _wants_partial(request) else page, context, status_code=status_code, headers=headers
    )
    response.headers["Vary"] = ", ".join(_HTMX_HEADERS)  # one URL, two bodies: caches must keep them apart
    return response


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _see_other(request: Request, url: str) -> Response:
    """A redirect after a form: 303 for a plain form; for htmx, which would follow a 303 inside fetch and
    swap the next page into the form, an `HX-Redirect` that makes the browser navigate."""
    if _is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def safe_next(value: object) -> str:
    """Where to go after logging in: a local path ("/...", not "//..." nor "/\\..."), else "/"."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


# --- CSRF -------------------------------------------------------------------------------------------


async def _presented_csrf(request: Request) -> list[str]:
    """The CSRF tokens a request carries: the X-CSRF-Token header (htmx, via hx-headers on <body>) and
    the `csrf_token` field of a form body."""
    presented = [request.headers[CSRF_HEADER]] if CSRF_HEADER in request.headers else []
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        presented.append(_field(await request.form(), CSRF_FIELD))  # Starlette caches the parsed form
    return presented


async def csrf_ok(request: Request, expected: str | None) -> bool:
    return any(csrf_matches(expected, token) for token in await _presented_csrf(request))


async def require_csrf(request: Request, expected: str | None) -> None:
    """403 unless the request carries `expected`, in the `csrf_token` field or the X-CSRF-Token header."""
    if not await csrf_ok(request, expected):
        raise HTTPException(403, CSRF_REFUSAL)


# --- sessions ---------------------------------------------------------------------------------------


def _delete_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=_secure(request), httponly=True, samesite="lax")


def _reason(exc: AuthenticationFailed) -> str:
    # identity.session_actor says "expired" only for a session that outlived its lifetime; every other
    # refusal (unknown, tampered, logged out, user deactivated) is "invalid" to the reader.
    return "expired" if "expired" in exc.message else "invalid"


def _return_path(request: Request) -> str | None:
    """The page to come back to after logging in: for htmx the page the user is on (HX-Current-URL), for
    a plain GET the URL requested; none for a plain POST, whose URL is not a page."""
    if _is_htmx(request):
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        if current.netloc and current.netloc != request.url.netloc:
            return None
        path = current.path + (f"?{current.query}" if current.query else "")
    elif request.method in SAFE_METHODS:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        return None
    return path if safe_next(path) == path else None


def _to_login(request: Request, reason: str | None) -> Response:
    query = {}
    if (back := _return_path(request)) is not None:
        query["next"] = back
    if reason:
        query["reason"] = reason
    url = "/login" + (f"?{urlencode(query)}" if query else "")
    if _is_htmx(request):
        # A 303 would be followed inside fetch and the login page swapped into a fragment.
        response: Response = Response("log in to continue", status_code=401, headers={"HX-Redirect": url})
    else:
        response = RedirectResponse(url, status_code=303)
    if reason:
        _delete_session_cookie(request, response)
    return response


async def _live_session(request: Request) -> PortalSession | str | None:
    """The session the cookie stands for; the reason it is refused; None without a cookie."""
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    try:
        actor, csrf = await identity.session_actor(_app(request), secret)
    except AuthenticationFailed as exc:
        return _reason(exc)
    return PortalSession(actor.via("portal"), secret, csrf)


Handler = Callable[[Request, PortalSession], Awaitable[Response]]


def portal_view(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A portal endpoint for logged-in users: without a live session, off to the login page (htmx: 401
    with HX-Redirect); on a state-changing method, 403 unless the session's CSRF token comes along.
    The handler gets the session; templates see it as `portal`."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        session = await _live_session(request)
        if not isinstance(session, PortalSession):
            return _to_login(request, session)
        request.state.portal = session
        if request.method not in SAFE_METHODS:
            await require_csrf(request, session.csrf_token)
        response = await handler(request, session)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return endpoint


# --- login and logout -------------------------------------------------------------------------------


def _login_form(
    request: Request,
    *,
    next_path: str,
    email: str = "",
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The login form with a double-submit CSRF token: the same value in a cookie and a hidden field.
    A token already in the cookie is kept, so two open login tabs both work."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not _TOKEN.fullmatch(token):
        token = secrets.token_urlsafe(32)
    context = {"csrf_token": token, "next": next_path, "email": email, "error": error, "notice": notice}
    response = _render(request, "login.html", "partials/login_form.html", context, status_code, headers)
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, path="/login", secure=_secure(request), httponly=True, samesite="lax"
    )
    return response


async def login(request: Request) -> Response:
    if request.method == "POST":
        return await _log_in(request)
    # Shown to a logged-in user too: logging in again (as someone else) ends the current session.
    return _login_form(
        request,
        next_path=safe_next(request.query_params.get("next")),
        notice=LOGIN_NOTICES.get(request.query_params.get("reason", "")),
    )


async def _log_in(request: Request) -> Response:
    app = _app(request)
    form = await request.form()
    next_path, email = safe_next(form.get("next")), _field(form, "email").strip()
    if not await csrf_ok(request, request.cookies.get(LOGIN_CSRF_COOKIE)):
        return _login_form(request, next_path=next_path, email=email, error=CSRF_REFUSAL, status_code=403)
    try:
        done = await identity.log_in(
            app, email, _field(form, "password"), previous_session=request.cookies.get(SESSION_COOKIE)
        )
    except TooManyAttempts as exc:
        return _login_form(
            request, next_path=next_path, email=email, error=exc.message, status_code=429,
            headers={"Retry-After": str(exc.retry_after_seconds)},
        )
    except AuthenticationFailed as exc:
        return _login_form(request, next_path=next_path, email=email, error=exc.message, status_code=401)
    response = _see_other(request, next_path)
    response.set_cookie(
        SESSION_COOKIE,
        done.session_secret,
        max_age=max(0, int((done.expires_at - app.now()).total_seconds())),
        path="/",
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login", secure=_secure(request), httponly=True, samesite="lax")
    return response


@portal_view
async def logout(request: Request, session: PortalSession) -> Response:
    await identity.log_out(_app(request), session.secret)
    response = _see_other(request, "/login")
    _delete_session_cookie(request, response)
    return response


# --- pages ------------------------------------------------------------------------------------------


@portal_view
async def home(request: Request, session: PortalSession) -> Response:
    app, actor = _app(request), session.actor
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


def _path_id(request: Request, name: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params[name])
    except ValueError:
        raise HTTPException(404, f"no such {what}") from None


async def _contract_context(request: Request, session: PortalSession, contract_id: uuid.UUID, on: date | None) -> dict[str, Any]:
    """Everything the contract page shows: terms, entitlements, bookings, calendar feeds, latest ledger entries."""
    app, actor = _app(request), session.actor
    try:
        # A contract outside the actor's reach is answered exactly like an unknown one.
        contract = await contracts.get_contract(app, actor, contract_id)
        periods = await contracts.entitlements(app, actor, contract_id, on)
        page = await ledger.ledger_page(app, actor, contract_id, first=20)
    except DomainError as exc:
        raise HTTPException(404, exc.message) from None
    plan = (await programs.get_plans_by_ids(app, actor, [contract.plan_id]))[contract.plan_id]
    customers = await parties.get_customers_by_ids(app, actor, [contract.customer_id])
    booked = await bookings.list_bookings(app, actor, contract_id=contract_id, first=50)
    details = await bookings.booking_details(app, actor, [b.id for b in booked.bookings])
    staff_ids = [b.staff_id for b in booked.bookings if b.staff_id] + [contract.client_manager_id] * bool(contract.client_manager_id)
    may = {name: policy.may(actor, action) for name, action in _PORTAL_ACTIONS.items()}
    return {
        "contract": contract,
        "plan": plan,
        "customer": customers.get(contract.customer_id),
        "periods": periods,
        "on": on,
        "today": app.today(plan.program.timezone),
        "now": app.now(),
        "entries": page.entries,
        "actor": actor,
        "bookings": booked.bookings,
        "details": details,
        "staff": await contracts.get_staff_by_ids(app, actor, staff_ids) if staff_ids else {},
        "offers": contracts.ContractView(contract, plan).catalog(),
        "partners_offered": await bookings.participants_offered(app, actor, contract_id) if may["book"] else [],
        "feeds": (await calendar_feeds.list_feeds(app, actor, [contract_id]))[contract_id],
        "may": may,
        # Sent back with the booking form as its idempotency key: a form posted twice books once.
        "request_key": uuid.uuid4().hex,
    }


# What the contract page offers each actor; the services still decide every request.
_PORTAL_ACTIONS = {"book": "booking.create", "cancel": "booking.cancel", "manage": "booking.manage", "feeds": "feed.manage"}


@portal_view
async def contract_page(request: Request, session: PortalSession) -> Response:
    contract_id = _path_id(request, "contract_id", "contract")
    context = await _contract_context(request, session, contract_id, _parse_day(request.query_params.get("on")))
    return _render(request, "contract.html", "partials/entitlements.html", context)


async def _after_change(
    request: Request,
    session: PortalSession,
    contract_id: uuid.UUID,
    *,
    notice: str | None = None,
    error: DomainError | None = None,
    feed_url: str | None = None,
) -> Response:
    """The answer to a form on the contract page. htmx swaps the contract panel (entitlements, bookings,
    feeds) in place, with the notice or the refusal; a plain form gets the page again after a success (303),
    or the page with the refusal (422). A new feed's secret address is shown once, so it is rendered."""
    if error is None and feed_url is None and not _is_htmx(request):
        return _see_other(request, request.url_for("contract", contract_id=contract_id).path)
    context = await _contract_context(request, session, contract_id, None)
    context.update(notice=notice, error=None if error is None else error.message, feed_url=feed_url)
    status = 422 if error is not None else 200
    return _render(request, "contract.html", "partials/contract_panel.html", context, status_code=status)


def _form_day(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"{value!r} is not a date (YYYY-MM-DD)", field=field) from None


def _form_ids(form: FormData, name: str) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(str(value)) for value in form.getlist(name)]
    except ValueError:
        raise ValidationFailed("a partner chosen is not one this portal offered", field="partnerIds") from None


@portal_view
async def book(request: Request, session: PortalSession) -> Response:
    contract_id = _path_id(request, "contract_id", "contract")
    form = await request.form()
    try:
        outcome = await bookings.book_activity(
            _app(request),
            session.actor,
            bookings.NewBooking(
                contract_id=contract_id,
                activity=_field(form, "activity"),
                on=_form_day(_field(form, "on"), "on"),
                note=_field(form, "note"),
                partner_ids=_form_ids(form, "partner"),
                # One click, one booking: a form sent twice (a double click, a retried request) books once.
                idempotency_key=_field(form, "request_key") or None,
            ),
        )
    except DomainError as exc:
        return await _after_change(request, session, contract_id, error=exc)
    booking = outcome.booking
    return await _after_change(
        request, session, contract_id,
        notice=f"Requested {booking.activity_name} for {booking.requested_date}: the client manager schedules it.",
    )


async def _booking_contract(request: Request, session: PortalSession, booking_id: uuid.UUID) -> uuid.UUID:
    found = await bookings.get_bookings(_app(request), session.actor, [booking_id])
    if booking_id not in found:
        raise HTTPException(404, f"booking {booking_id} does not exist")
    return found[booking_id].contract_id


async def _on_booking(
    request: Request,
    session: PortalSession,
    act: Callable[[uuid.UUID, uuid.UUID, FormData], Awaitable[str]],
) -> Response:
    """A form about one booking: `act(booking_id, contract_id, form)` changes it through the services and
    says what it did; the answer is that of every form on the contract page."""
    booking_id = _path_id(request, "booking_id", "booking")
    contract_id = await _booking_contract(request, session, booking_id)
    form = await request.form()
    try:
        notice = await act(booking_id, contract_id, form)
    except DomainError as exc:
        return await _after_change(request, session, contract_id, error=exc)
    return await _after_change(request, session, contract_id, notice=notice)


@portal_view
async def cancel_booking(request: Request, session: PortalSession) -> Response:
    async def act(booking_id: uuid.UUID, contract_id: uuid.UUID, form: FormData) -> str:
        outcome = await bookings.cancel_booking(_app(request), session.actor, booking_id, _field(form, "reason"))
        return f"Cancelled {outcome.booking.activity_name}: its units are available again."

    return await _on_booking(request, session, act)


@portal_view
async def schedule_booking(request: Request, session: PortalSession) -> Response:
    async def act(booking_id: uuid.UUID, contract_id: uuid.UUID, form: FormData) -> str:
        plan = await _plan_of(request, session, contract_id)
        try:
            local = datetime.fromisoformat(_field(form, "starts_at"))
        except ValueError:
            raise ValidationFailed("give the start as a date and a time", field="startsAt") from None
        minutes = _field(form, "duration_minutes").strip()
        if minutes and not minutes.isdigit():
            raise ValidationFailed(f"{minutes!r} is not a number of minutes", field="durationMinutes")
        booking = await bookings.schedule_booking(
            _app(request),
            session.actor,
            bookings.Schedule(
                booking_id=booking_id,
                # The form's local time is the program's: that is the zone every time on the page is shown in.
                starts_at=local.replace(tzinfo=ZoneInfo(plan.program.timezone)),
                duration_minutes=int(minutes) if minutes else None,
                staff_email=_field(form, "staff_email").strip() or None,
            ),
        )
        return f"Scheduled {booking.activity_name}."

    return await _on_booking(request, session, act)


@portal_view
async def deliver_booking(request: Request, session: PortalSession) -> Response:
    async def act(booking_id: uuid.UUID, contract_id: uuid.UUID, form: FormData) -> str:
        booking = await bookings.deliver_booking(_app(request), session.actor, booking_id, _field(form, "note"))
        return f"{booking.activity_name} delivered."

    return await _on_booking(request, session, act)


async def _plan_of(request: Request, session: PortalSession, contract_id: uuid.UUID) -> programs.PlanView:
    contract = await contracts.get_contract(_app(request), session.actor, contract_id)
    return (await programs.get_plans_by_ids(_app(request), session.actor, [contract.plan_id]))[contract.plan_id]


@portal_view
async def create_feed(request: Request, session: PortalSession) -> Response:
    contract_id = _path_id(request, "contract_id", "contract")
    form = await request.form()
    try:
        _, secret = await calendar_feeds.create_feed(_app(request), session.actor, contract_id, _field(form, "name"))
    except DomainError as exc:
        return await _after_change(request, session, contract_id, error=exc)
    return await _after_change(request, session, contract_id, feed_url=calendar_feeds.feed_url(_app(request), secret))


@portal_view
async def revoke_feed(request: Request, session: PortalSession) -> Response:
    feed_id = _path_id(request, "feed_id", "calendar feed")
    contract_id = _path_id(request, "contract_id", "contract")
    try:
        feed = await calendar_feeds.revoke_feed(_app(request), session.actor, feed_id)
    except NotFound as exc:
        raise HTTPException(404, exc.message) from None
    except DomainError as exc:
        return await _after_change(request, session, contract_id, error=exc)
    return await _after_change(request, session, feed.contract_id, notice=f"Revoked the feed {feed.name!r}.")


@portal_view
async def programs_page(request: Request, session: PortalSession) -> Response:
    found = await programs.list_programs(_app(request), session.actor)
    return templates.TemplateResponse(request, "programs.html", {"programs": found, "actor": session.actor})


async def calendar_feed(request: Request) -> Response:
    """A contract's iCalendar feed. The secret in the address is the only credential (calendar applications
    send no other); an unknown and a revoked secret get the same 404."""
    secret = request.path_params["secret"]
    try:
        if not _TOKEN.fullmatch(secret):
            raise NotFound("calendar feed", "for this address")
        filename, body = await calendar_feeds.render_feed(_app(request), secret)
    except NotFound:
        return Response("No calendar feed at this address: it was revoked, or never existed.\n", 404,
                        media_type="text/plain")
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={
            "Content-Disposition": f'inline; filename="{filename.replace("/", "-")}"',
            "Cache-Control": "private, no-cache",
            "X-Robots-Tag": "noindex",
            "Referrer-Policy": "no-referrer",
        },
    )


async def http_error(request: Request, exc: HTTPException) -> Response:
    return _render(
        request,
        "error.html",
        "partials/error.html",
        {"status": exc.status_code, "detail": exc.detail},
        status_code=exc.status_code,
        headers=dict(exc.headers or {}),
    )


def portal_routes() -> list[Route]:
    return [
        Route("/login", login, methods=["GET", "POST"], name="login"),
        Route("/logout", logout, methods=["POST"], name="logout"),
        Route("/", home, name="home"),
        Route("/contracts/{contract_id}", contract_page, name="contract"),
        Route("/contracts/{contract_id}/bookings", book, methods=["POST"], name="book"),
        Route("/contracts/{contract_id}/feeds", create_feed, methods=["POST"], name="create_feed"),
        Route("/contracts/{contract_id}/feeds/{feed_id}/revoke", revoke_feed, methods=["POST"], name="revoke_feed"),
        Route("/bookings/{booking_id}/cancel", cancel_booking, methods=["POST"], name="cancel_booking"),
        Route("/bookings/{booking_id}/schedule", schedule_booking, methods=["POST"], name="schedule_booking"),
        Route("/bookings/{booking_id}/deliver", deliver_booking, methods=["POST"], name="deliver_booking"),
        Route("/programs", programs_page, name="programs"),
        Route("/calendar/{secret}.ics", calendar_feed, name="calendar_feed"),
    ]


def static_mount() -> Mount:
    return Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static")


def exception_handlers() -> dict[Any, Any]:
    return {HTTPException: http_error}
