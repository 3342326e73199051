"""Sessions and CSRF for the portal: the logged-in caller of each request, the login form's double-submit
token, the session's token on every state-changing request (form field or the X-CSRF-Token header htmx
sends), one-time flash messages across a redirect, and the customer a partner is acting for.

Authentication is by session cookie only (a bearer token is not accepted here). Every page but /login goes
through `portal_view`, which redirects to the login page without a live session and checks the session's
CSRF token on any state-changing request, so a new route gets both by using it."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from api.auth import CSRF_HEADER, SESSION_COOKIE, csrf_matches
from api.services import dashboards, identity
from api.services.context import Actor
from api.services.dashboards import CustomerChoice
from api.services.errors import AuthenticationFailed
from web.layout import app_context, is_htmx, navigation, viewer_of

__all__ = [
    "ACTING_COOKIE",
    "CSRF_FIELD",
    "CSRF_REFUSAL",
    "FLASH_COOKIE",
    "LOGIN_CSRF_COOKIE",
    "Acting",
    "Flash",
    "PortalSession",
    "csrf_ok",
    "delete_session_cookie",
    "field",
    "flash",
    "live_session",
    "portal_view",
    "require_csrf",
    "safe_next",
    "secure",
    "see_other",
]

LOGIN_CSRF_COOKIE = "entitle_csrf"  # double-submit token of the login form, which has no session yet
FLASH_COOKIE = "entitle_flash"
ACTING_COOKIE = "entitle_acting_for"
CSRF_FIELD = "csrf_token"
CSRF_REFUSAL = "the form has expired or was not sent from this site; reload and try again"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_NOTICES = {
    "expired": "Your session has expired; please sign in again.",
    "invalid": "Your session is no longer valid; please sign in again.",
    "signed_out": "You are signed out.",
}
TOKEN = re.compile(r"[A-Za-z0-9_-]{32,128}")


@dataclass(frozen=True)
class PortalSession:
    """The caller of a portal request: the session's actor (interface "portal"), secret and CSRF token."""

    actor: Actor
    secret: str
    csrf_token: str


@dataclass(frozen=True)
class Flash:
    """A message for the next page shown: a notice, or (once) a secret to copy, such as a feed's address."""

    text: str
    secret: str | None = None


@dataclass
class Acting:
    """The customers the viewer acts for and the one in view (a partner switches among them)."""

    choices: list[CustomerChoice] = field(default_factory=list)
    current: CustomerChoice | None = None

    @property
    def customer_id(self) -> uuid.UUID | None:
        return self.current.customer.id if self.current else None


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def see_other(request: Request, url: str) -> Response:
    """A redirect after a form: 303 for a plain form; for htmx, which would follow a 303 inside fetch and
    swap the next page into the form, an `HX-Redirect` that makes the browser navigate."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def safe_next(value: object) -> str:
    """Where to go after a form: a local path ("/...", not "//..." nor "/\\..."), else "/"."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


# --- CSRF -------------------------------------------------------------------------------------------


async def _presented_csrf(request: Request) -> list[str]:
    """The CSRF tokens a request carries: the X-CSRF-Token header (htmx, via hx-headers on <body>) and
    the `csrf_token` field of a form body."""
    presented = [request.headers[CSRF_HEADER]] if CSRF_HEADER in request.headers else []
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        presented.append(field(await request.form(), CSRF_FIELD))  # Starlette caches the parsed form
    return presented


async def csrf_ok(request: Request, expected: str | None) -> bool:
    return any(csrf_matches(expected, token) for token in await _presented_csrf(request))


async def require_csrf(request: Request, expected: str | None) -> None:
    """403 unless the request carries `expected`, in the `csrf_token` field or the X-CSRF-Token header."""
    if not await csrf_ok(request, expected):
        raise HTTPException(403, CSRF_REFUSAL)


# --- flash messages ---------------------------------------------------------------------------------
# A signed cookie read (and deleted) by the next page: the key is the session's secret, so a flash is
# shown only to the session that made it and cannot be forged from outside.


def _signature(key: str, payload: str) -> str:
    return hmac.new(key.encode(), payload.encode(), hashlib.sha256).hexdigest()


def flash(request: Request, response: Response, session: PortalSession, text: str, secret: str | None = None) -> None:
    """Show `text` (and once, `secret`) on the next page this session gets."""
    payload = base64.urlsafe_b64encode(json.dumps({"text": text, "secret": secret}).encode()).decode()
    response.set_cookie(
        FLASH_COOKIE, f"{payload}.{_signature(session.secret, payload)}", max_age=300, path="/",
        secure=secure(request), httponly=True, samesite="lax",
    )


def _read_flashes(request: Request, session: PortalSession) -> list[Flash]:
    value = request.cookies.get(FLASH_COOKIE)
    if not value or "." not in value:
        return []
    payload, signature = value.rsplit(".", 1)
    if not hmac.compare_digest(signature, _signature(session.secret, payload)):
        return []
    try:
        data = json.loads(base64.urlsafe_b64decode(payload.encode()))
        return [Flash(str(data["text"]), data.get("secret"))]
    except (ValueError, KeyError, TypeError):
        return []


# --- sessions ---------------------------------------------------------------------------------------


def delete_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=secure(request), httponly=True, samesite="lax")


def _reason(exc: AuthenticationFailed) -> str:
    # identity.session_actor says "expired" only for a session that outlived its lifetime; every other
    # refusal (unknown, tampered, logged out, user deactivated) is "invalid" to the reader.
    return "expired" if "expired" in exc.message else "invalid"


def _return_path(request: Request) -> str | None:
    """The page to come back to after signing in: for htmx the page the user is on (HX-Current-URL), for
    a plain GET the URL requested; none for a plain POST, whose URL is not a page."""
    if is_htmx(request):
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
    if is_htmx(request):
        # A 303 would be followed inside fetch and the login page swapped into a fragment.
        response: Response = Response("sign in to continue", status_code=401, headers={"HX-Redirect": url})
    else:
        response = RedirectResponse(url, status_code=303)
    if reason:
        delete_session_cookie(request, response)
    return response


async def live_session(request: Request) -> PortalSession | str | None:
    """The session the cookie stands for; the reason it is refused; None without a cookie."""
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    try:
        actor, csrf = await identity.session_actor(app_context(request), secret)
    except AuthenticationFailed as exc:
        return _reason(exc)
    return PortalSession(actor.via("portal"), secret, csrf)


async def _acting(request: Request, actor: Actor) -> Acting:
    """Who the viewer acts for: a partner's choice (kept in a cookie; the services decide every request,
    so a forged cookie shows nothing more), else the first customer it works with; a customer its own."""
    choices = await dashboards.customer_choices(app_context(request), actor)
    wanted = request.cookies.get(ACTING_COOKIE)
    first = next((c for c in choices if c.managed), choices[0] if choices else None)  # a managed one first
    current = next((c for c in choices if str(c.customer.id) == wanted), first)
    return Acting(choices, current)


async def enter(request: Request, session: PortalSession) -> None:
    """What every page of a logged-in viewer knows: the session, the viewer, the navigation, flashes and
    the customer in view."""
    request.state.portal = session
    request.state.viewer = viewer_of(request)
    request.state.nav = navigation(session.actor, app_context(request).settings.production)
    path = request.url.path
    matches = [link for _, link in request.state.nav if path == link or (link != "/" and path.startswith(link + "/"))]
    request.state.nav_current = max(matches, key=len) if matches else None
    request.state.flashes = _read_flashes(request, session)
    request.state.acting = await _acting(request, session.actor)


Handler = Callable[[Request, PortalSession], Awaitable[Response]]


def portal_view(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A portal endpoint for logged-in users: without a live session, off to the login page (htmx: 401
    with HX-Redirect); on a state-changing method, 403 unless the session's CSRF token comes along.
    The handler gets the session; templates see it as `portal`. A flash shown is cleared with the page."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        session = await live_session(request)
        if not isinstance(session, PortalSession):
            return _to_login(request, session)
        if request.method not in SAFE_METHODS:
            request.state.portal = session
            await require_csrf(request, session.csrf_token)
        await enter(request, session)
        response = await handler(request, session)
        response.headers.setdefault("Cache-Control", "no-store")
        redirected = 300 <= response.status_code < 400 or "HX-Redirect" in response.headers
        if request.state.flashes and not redirected and not any(
            cookie.startswith(f"{FLASH_COOKIE}=") for cookie in response.headers.getlist("set-cookie")
        ):
            response.delete_cookie(FLASH_COOKIE, path="/", secure=secure(request), httponly=True, samesite="lax")
        return response

    return endpoint
