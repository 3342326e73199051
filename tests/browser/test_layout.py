"""The frame every page shares (docs: /work/briefs/portal_ui.md, the UI contract of issue 12): signing in and
out, who I am, the main navigation by role, the 404 page, and the pages under the real Content-Security-Policy."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import Portal, playwright_api

expect = playwright_api().expect

pytestmark = pytest.mark.usefixtures("portal")

NAVIGATION = {
    "customer": ["Home", "Tickets", "Activities", "Out of scope"],
    "partner": ["Home", "Tickets", "File a ticket", "Out of scope"],
    "staff": ["Queue", "Tickets", "Contracts", "Programs"],
}
LOGINS = [
    # (e-mail, kind, where signing in lands, the name shown)
    ("anna@acme-retail.example", "customer", "/", "Anna (Acme Retail, direct customer)"),
    ("nora@northwind.example", "partner", "/", "Nora (Northwind, certified partner)"),
    ("client.manager@entitle.example", "staff", "/queue", "Carl Manager"),
]


async def test_a_wrong_password_is_refused_on_the_sign_in_page(visitor) -> None:  # type: ignore[no-untyped-def]
    person = await visitor("sign-in")
    page = person.page
    await person.goto("/login")
    await page.get_by_label("E-mail", exact=True).fill("anna@acme-retail.example")
    await page.get_by_label("Password", exact=True).fill("not the password")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    refusal = page.get_by_role("alert").or_(page.get_by_role("status").filter(has_text=re.compile(r"\w")))
    await expect(refusal.first).to_be_visible()
    # What was typed is kept, and the user is still on the sign-in page.
    await expect(page.get_by_label("E-mail", exact=True)).to_have_value("anna@acme-retail.example")
    await expect(page.get_by_role("button", name="Sign out", exact=True)).to_have_count(0)
    await person.check("refused")
    person.assert_clean()


@pytest.mark.parametrize(("email", "kind", "landing", "name"), LOGINS, ids=[kind for _, kind, _, _ in LOGINS])
async def test_each_role_signs_in_sees_its_navigation_and_signs_out(  # type: ignore[no-untyped-def]
    visitor, portal: Portal, email: str, kind: str, landing: str, name: str
) -> None:
    person = await visitor(f"layout-{kind}")
    page = person.page
    await person.sign_in(email)
    await expect(page).to_have_url(portal.at(landing))
    await expect(page.get_by_role("link", name="Entitle", exact=True)).to_be_visible()
    await expect(page.get_by_role("banner").get_by_text(name).first).to_be_visible()
    main = page.get_by_role("navigation", name="Main")
    for link in NAVIGATION[kind]:
        await expect(main.get_by_role("link", name=link, exact=True)).to_be_visible()
    for other, links in NAVIGATION.items():
        for link in set(links) - set(NAVIGATION[kind]):
            await expect(main.get_by_role("link", name=link, exact=True)).to_have_count(0)
    if kind == "partner":
        await expect(page.get_by_label("Acting for", exact=True)).to_be_visible()
        await expect(page.get_by_role("button", name="Switch", exact=True)).to_be_visible()
        await expect(page.get_by_text("Acting for ").first).to_be_visible()
    else:
        await expect(page.get_by_label("Acting for", exact=True)).to_have_count(0)
    await person.check("landing")

    await page.get_by_role("button", name="Sign out", exact=True).click()
    await expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    await expect(page.get_by_role("button", name="Sign out", exact=True)).to_have_count(0)
    # Signed out means signed out: the home page asks for a sign-in again.
    await person.goto(landing)
    await expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    person.assert_clean()


async def test_the_404_page_keeps_the_layout(visitor) -> None:  # type: ignore[no-untyped-def]
    person = await visitor("not-found")
    page = person.page
    await person.sign_in("anna@acme-retail.example", check=False)
    response = await person.goto("/no-such-page")
    assert response is not None and response.status == 404
    await expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Home", exact=True)).to_be_visible()
    await expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible()
    await person.check("404")
    person.assert_clean()


async def test_pages_work_under_the_content_security_policy(visitor, portal: Portal) -> None:  # type: ignore[no-untyped-def]
    """The journeys bypass the CSP to inject axe; this one enforces it: htmx loads, and no page needs
    something the policy refuses (inline script or style, a foreign origin)."""
    person = await visitor("csp", bypass_csp=False)
    page = person.page
    refused: list[str] = []
    page.on(
        "console",
        lambda message: refused.append(f"{page.url}: {message.text}")
        if "Content Security Policy" in message.text or "Refused to" in message.text
        else None,
    )
    response = await person.goto("/login")
    assert response is not None
    policy = response.headers.get("content-security-policy", "")
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    assert directives.get("frame-ancestors") == ["'none'"], f"Content-Security-Policy: {policy!r}"
    scripts = directives.get("script-src", directives.get("default-src"))
    assert scripts and "'unsafe-inline'" not in scripts, f"inline script allowed: {policy!r}"
    await person.sign_in("nora@northwind.example", check=False)
    for path in ("/", "/tickets", "/tickets/new", "/out-of-scope"):
        answer = await person.goto(path)
        assert answer is not None and answer.status == 200, f"{path}: {answer and answer.status}"
        await page.wait_for_load_state("load")
        assert await page.evaluate("() => typeof window.htmx === 'object'"), f"htmx did not load on {path}"
    assert not refused, "refused by the Content-Security-Policy:\n" + "\n".join(refused)
    assert not person.script_errors, person.script_errors
