"""Portal authentication: the login form and its CSRF cookie, sessions, throttling, logout, CSRF on
state-changing requests, and what each kind of user sees."""

from __future__ import annotations

import contextlib
import html
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sqlalchemy import select

from api.auth import SESSION_COOKIE
from api.config import Settings
from api.models import OutboxMessage, TokenAccess, TokenScope, UserKind
from api.services import identity, parties
from tests.conftest import ADMIN, NOW, unique
from tests.web.conftest import PASSWORD, hidden_csrf, log_in

WRONG = "wrong e-mail address or password"
CSRF_REFUSAL = "the form has expired or was not sent from this site; reload and try again"
HX = {"HX-Request": "true"}


def set_cookie(response: httpx.Response, name: str) -> dict[str, str]:
    """The attributes of the Set-Cookie header for `name`, lower-cased keys; "" for flags."""
    for header in response.headers.get_list("set-cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        key, _, value = first.partition("=")
        if key == name:
            parsed = {"value": value}
            for attribute in attributes:
                k, _, v = attribute.partition("=")
                parsed[k.lower()] = v
            return parsed
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers.get_list('set-cookie')}")


def login_redirect(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert location.path == "/login" and not location.netloc
    return parse_qs(location.query)


async def test_login_form_sets_a_double_submit_csrf_cookie(anonymous_client):
    response = await anonymous_client.get("/login")
    assert response.status_code == 200
    assert "<h1>Sign in</h1>" in response.text
    assert re.search(r'<form class="login" method="post" action="[^"]*/login"', response.text)
    assert 'hx-post="' in response.text and 'hx-target="this"' in response.text
    cookie = set_cookie(response, "entitle_csrf")
    assert cookie["value"] == hidden_csrf(response.text)
    assert len(cookie["value"]) >= 32
    assert "httponly" in cookie and cookie["samesite"].lower() == "lax" and "secure" not in cookie
    # Not signed in: no navigation, no sign-out button, no CSRF header for htmx.
    assert "Sign out" not in response.text and "hx-headers" not in response.text
    assert 'aria-label="Main"' not in response.text


async def test_login_sets_a_session_cookie_and_redirects(anonymous_client, make_user):
    user = await make_user(name="Ada Admin")
    response = await log_in(anonymous_client, user.email)
    assert response.status_code == 303
    assert response.headers["location"] == "/queue"  # staff start at the queue
    cookie = set_cookie(response, SESSION_COOKIE)
    assert len(cookie["value"]) >= 32
    assert "httponly" in cookie
    assert cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/"
    assert cookie["max-age"] == str(12 * 3600)
    assert "secure" not in cookie  # http://testserver

    home = await anonymous_client.get("/queue")
    assert home.status_code == 200
    assert f"Ada Admin &lt;{user.email}&gt;" in home.text
    logout_form = re.search(r'<form class="logout" method="post" action="[^"]*/logout">(.*?)</form>', home.text, re.S)
    assert logout_form and "Sign out" in logout_form.group(1)
    csrf = hidden_csrf(logout_form.group(1))
    # htmx sends the token on every request from the page: hx-headers, explicitly inherited (htmx 4).
    assert f"""<body hx-boost:inherited="true" hx-headers:inherited='{{"X-CSRF-Token": "{csrf}"}}'>""" in home.text


async def test_each_login_issues_a_new_session_and_ends_the_previous(anonymous_client, make_user):
    user = await make_user()
    first = set_cookie(await log_in(anonymous_client, user.email), SESSION_COOKIE)["value"]
    second = set_cookie(await log_in(anonymous_client, user.email), SESSION_COOKIE)["value"]
    assert first != second
    assert (await anonymous_client.get("/programs")).status_code == 200

    anonymous_client.cookies.set(SESSION_COOKIE, first)
    assert login_redirect(await anonymous_client.get("/"))["reason"] == ["invalid"]


async def test_wrong_password_is_refused_and_the_email_kept(anonymous_client, make_user):
    user = await make_user()
    response = await log_in(anonymous_client, user.email, "not the password at all")
    assert response.status_code == 401
    assert WRONG in response.text
    assert f'name="email" value="{user.email}"' in response.text
    assert "not the password" not in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


async def test_unknown_email_gets_the_same_answer(anonymous_client):
    response = await log_in(anonymous_client, f"{unique('nobody')}@portal.example")
    assert response.status_code == 401
    assert WRONG in response.text


async def test_htmx_login_swaps_the_form_or_redirects(anonymous_client, make_user):
    user = await make_user()
    page = await anonymous_client.get("/login")
    data = {"email": user.email, "password": "wrong wrong wrong", "csrf_token": hidden_csrf(page.text)}
    refused = await anonymous_client.post("/login", data=data, headers=HX)
    assert refused.status_code == 401
    assert refused.text.strip().startswith('<form class="login"') and "<html" not in refused.text
    assert WRONG in refused.text

    ok = await anonymous_client.post("/login", data={**data, "password": PASSWORD, "next": "/programs"}, headers=HX)
    assert ok.status_code == 200
    assert ok.headers["HX-Redirect"] == "/programs"
    assert set_cookie(ok, SESSION_COOKIE)["value"]


@contextlib.asynccontextmanager
async def browser_at(
    settings: Settings, database, clock, peer: str, **changes: object  # type: ignore[no-untyped-def]
) -> AsyncIterator[httpx.AsyncClient]:
    """A browser whose connection comes from `peer`, against an app with these settings changed."""
    from api.app import create_app

    app = create_app(replace(settings, **changes), database=database, clock=clock)
    transport = httpx.ASGITransport(app=app, client=(peer, 51234))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        yield browser


def login_error(page: str) -> str:
    found = re.search(r'<p class="error" role="alert" id="login-error">([^<]*)</p>', page)
    assert found, page
    return html.unescape(found.group(1))


async def test_an_attacker_is_slowed_down_while_the_owner_signs_in_from_elsewhere(
    settings, database, clock, make_user, ctx
):
    user = await make_user()
    async with browser_at(settings, database, clock, "203.0.113.10") as attacker, \
            browser_at(settings, database, clock, "198.51.100.10") as owner:
        for _ in range(5):
            assert (await log_in(attacker, user.email, "wrong wrong wrong")).status_code == 401
        for password in ("wrong wrong wrong", PASSWORD):  # refused whatever the password
            refused = await log_in(attacker, user.email, password)
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == "30"
            assert login_error(refused.text) == "too many attempts, try again in 30 s"  # beside the form
            assert f'name="email" value="{user.email}"' in refused.text
            assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")
        page = await attacker.get("/login")
        swapped = await attacker.post(
            "/login", data={"email": user.email, "password": PASSWORD, "csrf_token": hidden_csrf(page.text)}, headers=HX
        )
        assert swapped.status_code == 429 and swapped.text.strip().startswith('<form class="login"')
        assert login_error(swapped.text) == "too many attempts, try again in 30 s"

        signed_in = await log_in(owner, user.email)  # the owner, from another address, is not held back
        assert signed_in.status_code == 303 and set_cookie(signed_in, SESSION_COOKIE)["value"]

        clock.instant = NOW + timedelta(seconds=30)
        assert (await log_in(attacker, user.email, "wrong wrong wrong")).status_code == 401
        assert (await log_in(attacker, user.email)).headers["Retry-After"] == "60"  # the wait doubled

    async with ctx.db.read() as session:
        sent = list(await session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "login_failures", OutboxMessage.recipient_email == user.email)
        ))
    assert len(sent) == 1 and "203.0.113.10: 5 attempts" in sent[0].body


async def test_x_forwarded_for_counts_only_from_a_trusted_proxy(settings, database, clock, make_user):
    user = await make_user()
    # Untrusted: a client that makes up a new X-Forwarded-For each time is still counted by its own address.
    async with browser_at(settings, database, clock, "192.0.2.61") as spoofer:
        for n in range(5):
            spoofer.headers["X-Forwarded-For"] = f"203.0.113.{100 + n}"
            assert (await log_in(spoofer, user.email, "wrong wrong wrong")).status_code == 401
        spoofer.headers["X-Forwarded-For"] = "203.0.113.199"
        assert (await log_in(spoofer, user.email)).status_code == 429

    # Behind a trusted proxy: the client it forwards for is the source, and the proxy itself is not.
    async with browser_at(settings, database, clock, "192.0.2.62", trusted_proxies=("192.0.2.0/24",)) as proxy:
        proxy.headers["X-Forwarded-For"] = "198.51.100.1, 203.0.113.50"  # the left part is the client's own claim
        for _ in range(5):
            assert (await log_in(proxy, user.email, "wrong wrong wrong")).status_code == 401
        assert (await log_in(proxy, user.email)).status_code == 429
        proxy.headers["X-Forwarded-For"] = "198.51.100.1"  # another client through the same proxy
        assert (await log_in(proxy, user.email, "wrong wrong wrong")).status_code == 401
        proxy.headers["X-Forwarded-For"] = "203.0.113.51"
        assert (await log_in(proxy, user.email)).status_code == 303
        # The scheme it forwards is believed as well (cookies Secure behind HTTPS); an untrusted peer's is not.
        form = await proxy.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert "secure" in set_cookie(form, "entitle_csrf")
    async with browser_at(settings, database, clock, "192.0.2.63") as direct:
        form = await direct.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert "secure" not in set_cookie(form, "entitle_csrf")


@pytest.mark.parametrize("problem", ["missing field", "wrong field", "missing cookie"])
async def test_login_without_matching_csrf_is_refused(anonymous_client, make_user, problem):
    user = await make_user()
    page = await anonymous_client.get("/login")
    data = {"email": user.email, "password": PASSWORD, "csrf_token": hidden_csrf(page.text)}
    if problem == "missing field":
        del data["csrf_token"]
    elif problem == "wrong field":
        data["csrf_token"] = "x" * 43
    else:
        anonymous_client.cookies.delete("entitle_csrf")
    response = await anonymous_client.post("/login", data=data)
    assert response.status_code == 403
    assert CSRF_REFUSAL in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert (await anonymous_client.get("/")).status_code == 303


async def test_logout_ends_the_session(anonymous_client, logged_in):
    await logged_in()
    old = anonymous_client.cookies[SESSION_COOKIE]
    csrf = hidden_csrf((await anonymous_client.get("/programs")).text)
    response = await anonymous_client.post("/logout", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?reason=signed_out"
    assert "You are signed out." in (await anonymous_client.get(response.headers["location"])).text
    deleted = set_cookie(response, SESSION_COOKIE)
    assert deleted["max-age"] == "0"
    assert SESSION_COOKIE not in anonymous_client.cookies

    anonymous_client.cookies.set(SESSION_COOKIE, old)
    assert login_redirect(await anonymous_client.get("/"))["reason"] == ["invalid"]


async def test_logout_with_the_csrf_header_from_htmx(anonymous_client, logged_in):
    await logged_in()
    csrf = hidden_csrf((await anonymous_client.get("/programs")).text)
    response = await anonymous_client.post("/logout", headers={**HX, "X-CSRF-Token": csrf})
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == "/login?reason=signed_out"
    assert (await anonymous_client.get("/")).status_code == 303


@pytest.mark.parametrize("token", [None, "", "not-the-token"])
async def test_logout_needs_the_csrf_token(anonymous_client, logged_in, token):
    await logged_in()
    data = {} if token is None else {"csrf_token": token}
    response = await anonymous_client.post("/logout", data=data)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert CSRF_REFUSAL in response.text
    assert (await anonymous_client.get("/programs")).status_code == 200  # still signed in


async def test_without_a_session_pages_redirect_to_login(anonymous_client, make_contract):
    contract = await make_contract()
    for path in ("/", "/programs", f"/contracts/{contract.id}?on=2026-04-01"):
        response = await anonymous_client.get(path)
        assert login_redirect(response) == {"next": [path]}
    form = await anonymous_client.get("/login", params={"next": "/programs"})
    assert '<input type="hidden" name="next" value="/programs">' in form.text


async def test_htmx_request_without_a_session_gets_401_and_hx_redirect(anonymous_client, make_contract):
    contract = await make_contract()
    response = await anonymous_client.get(
        f"/contracts/{contract.id}", headers={**HX, "HX-Current-URL": f"http://testserver/contracts/{contract.id}"}
    )
    assert response.status_code == 401
    target = urlsplit(response.headers["HX-Redirect"])
    assert target.path == "/login"
    assert parse_qs(target.query) == {"next": [f"/contracts/{contract.id}"]}


async def test_tampered_cookie_redirects_to_login(portal):
    secret = portal.cookies[SESSION_COOKIE]
    portal.cookies.set(SESSION_COOKIE, secret[:-2] + ("AA" if not secret.endswith("AA") else "BB"))
    response = await portal.get("/programs")
    assert login_redirect(response) == {"next": ["/programs"], "reason": ["invalid"]}
    assert set_cookie(response, SESSION_COOKIE)["max-age"] == "0"
    page = await portal.get(response.headers["location"])
    assert "Your session is no longer valid; please sign in again." in page.text


async def test_expired_session_redirects_to_login(portal, clock):
    clock.instant = NOW + timedelta(hours=12, seconds=1)
    response = await portal.get("/")
    assert login_redirect(response) == {"next": ["/"], "reason": ["expired"]}
    page = await portal.get(response.headers["location"])
    assert page.status_code == 200
    assert "Your session has expired; please sign in again." in page.text


async def test_unknown_reason_is_not_shown(anonymous_client):
    page = await anonymous_client.get("/login", params={"reason": "<script>alert(1)</script>"})
    assert "alert(1)" not in page.text and 'class="notice"' not in page.text


async def test_bearer_token_is_not_accepted_by_the_portal(ctx, anonymous_client):
    _, secret = await identity.create_token(
        ctx, ADMIN, identity.NewToken(name=unique("token"), scope=TokenScope.PROVIDER, access=TokenAccess.READ)
    )
    response = await anonymous_client.get("/", headers={"Authorization": f"Bearer {secret}"})
    assert login_redirect(response) == {"next": ["/"]}


@pytest.mark.parametrize(
    "target", ["//evil.example", "https://evil.example", "/\\evil.example", "http:/evil.example", "evil.example"]
)
async def test_next_must_be_a_local_path(anonymous_client, make_user, target):
    user = await make_user()
    response = await log_in(anonymous_client, user.email, next=target)
    assert response.status_code == 303
    assert response.headers["location"] == "/queue"


async def test_next_is_followed_after_login(anonymous_client, make_user):
    user = await make_user()
    response = await log_in(anonymous_client, user.email, next="/programs?x=1")
    assert response.headers["location"] == "/programs?x=1"


async def test_over_https_the_cookies_are_secure(settings, database, clock, make_user):
    from api.app import create_app

    user = await make_user()
    app = create_app(settings, database=database, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver") as https:
        form = await https.get("/login")
        assert "secure" in set_cookie(form, "entitle_csrf")
        response = await log_in(https, user.email)
        assert response.status_code == 303
        cookie = set_cookie(response, SESSION_COOKIE)
        assert "secure" in cookie and "httponly" in cookie and cookie["samesite"].lower() == "lax"
        assert (await https.get("/programs")).status_code == 200


def contract_links(page: str) -> set[str]:
    return set(re.findall(r'href="[^"]*/contracts/([0-9a-f-]{36})"', page))


async def test_customer_user_sees_only_its_own_contracts(anonymous_client, logged_in, make_customer, make_contract):
    own, other = await make_customer(), await make_customer()
    mine = await make_contract(customer=own)
    theirs = await make_contract(customer=other)
    await logged_in(UserKind.CUSTOMER, customer_id=own.id)

    home = await anonymous_client.get("/")
    assert home.status_code == 200
    assert contract_links(home.text) == {str(mine.id)}
    assert (await anonymous_client.get(f"/contracts/{mine.id}")).status_code == 200

    hidden = await anonymous_client.get(f"/contracts/{theirs.id}")
    missing_id = uuid.uuid4()
    missing = await anonymous_client.get(f"/contracts/{missing_id}")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text.replace(str(theirs.id), "ID") == missing.text.replace(str(missing_id), "ID")
    partial = await anonymous_client.get(f"/contracts/{theirs.id}", headers=HX)
    assert partial.status_code == 404 and str(mine.id) not in partial.text


async def test_partner_user_sees_linked_customers_that_allow_it(
    ctx, anonymous_client, logged_in, make_customer, make_contract
):
    partner = await parties.create_partner(ctx, ADMIN, parties.NewPartner(code=unique("partner"), name="Partner"))
    allowed, not_allowed, unlinked = await make_customer(), await make_customer(), await make_customer()
    await parties.link_partner(
        ctx, ADMIN, partner_id=partner.id, customer_id=allowed.id, managed=True, production_access=False,
        can_view_entitlements=True,
    )
    await parties.link_partner(
        ctx, ADMIN, partner_id=partner.id, customer_id=not_allowed.id, managed=False, production_access=False,
        can_view_entitlements=False,
    )
    visible = await make_contract(customer=allowed)
    blocked = await make_contract(customer=not_allowed)
    foreign = await make_contract(customer=unlinked)
    await logged_in(UserKind.PARTNER, partner_id=partner.id)

    home = await anonymous_client.get("/")
    assert contract_links(home.text) == {str(visible.id)}
    page = await anonymous_client.get(f"/contracts/{visible.id}")
    assert page.status_code == 200 and allowed.name in page.text
    for contract in (blocked, foreign):
        response = await anonymous_client.get(f"/contracts/{contract.id}")
        assert response.status_code == 404
        assert f"contract {contract.id} does not exist" in response.text
