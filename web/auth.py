"""Signing in and out."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response

from api.auth import SESSION_COOKIE
from api.models import UserKind
from api.services import identity
from api.services.errors import AuthenticationFailed, TooManyAttempts
from web.layout import app_context, render, viewer_of
from web.session import (
    CSRF_REFUSAL,
    LOGIN_CSRF_COOKIE,
    LOGIN_NOTICES,
    TOKEN,
    PortalSession,
    csrf_ok,
    delete_session_cookie,
    field,
    portal_view,
    safe_next,
    secure,
    see_other,
)

__all__ = ["login", "logout"]


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
    """The sign-in form with a double-submit CSRF token: the same value in a cookie and a hidden field.
    A token already in the cookie is kept, so two open sign-in tabs both work."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not TOKEN.fullmatch(token):
        token = secrets.token_urlsafe(32)
    request.state.viewer = viewer_of(request)
    context = {"csrf_token": token, "next": next_path, "email": email, "error": error, "notice": notice}
    response = render(request, "login.html", "partials/login_form.html", context, status_code, headers)
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, path="/login", secure=secure(request), httponly=True, samesite="lax"
    )
    return response


async def login(request: Request) -> Response:
    if request.method == "POST":
        return await _log_in(request)
    # Shown to a signed-in user too: signing in again (as someone else) ends the current session.
    return _login_form(
        request,
        next_path=safe_next(request.query_params.get("next")),
        notice=LOGIN_NOTICES.get(request.query_params.get("reason", "")),
    )


async def _log_in(request: Request) -> Response:
    app = app_context(request)
    form = await request.form()
    next_path, email = safe_next(form.get("next")), field(form, "email").strip()
    if not await csrf_ok(request, request.cookies.get(LOGIN_CSRF_COOKIE)):
        return _login_form(request, next_path=next_path, email=email, error=CSRF_REFUSAL, status_code=403)
    try:
        done = await identity.log_in(
            app, email, field(form, "password"),
            # The peer, or behind ENTITLE_TRUSTED_PROXIES the client they forwarded for (api/app.py).
            source_address=request.client.host if request.client else None,
            previous_session=request.cookies.get(SESSION_COOKIE),
        )
    except TooManyAttempts as exc:
        return _login_form(
            request, next_path=next_path, email=email, error=exc.message, status_code=429,
            headers={"Retry-After": str(exc.retry_after_seconds)},
        )
    except AuthenticationFailed as exc:
        return _login_form(request, next_path=next_path, email=email, error=exc.message, status_code=401)
    if next_path == "/" and done.user.kind == UserKind.STAFF:
        next_path = "/queue"  # the staff's day starts at the queue
    response = see_other(request, next_path)
    response.set_cookie(
        SESSION_COOKIE,
        done.session_secret,
        max_age=max(0, int((done.expires_at - app.now()).total_seconds())),
        path="/",
        secure=secure(request),
        httponly=True,
        samesite="lax",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login", secure=secure(request), httponly=True, samesite="lax")
    return response


@portal_view
async def logout(request: Request, session: PortalSession) -> Response:
    await identity.log_out(app_context(request), session.secret)
    response = see_other(request, "/login?reason=signed_out")
    delete_session_cookie(request, response)
    return response
