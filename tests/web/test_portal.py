"""The portal, logged in as a staff admin: contract list, contract page with its htmx partial, programs,
static files, health."""

from __future__ import annotations

import html
import re
import uuid
from datetime import date
from decimal import Decimal

import pytest

from api.services import ledger
from tests.conftest import ADMIN, unique

HX = {"HX-Request": "true"}


def text_of(page: str) -> str:
    """The page's visible text with whitespace collapsed, for matching what a reader sees."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def entitlement_rows(page: str) -> list[list[str]]:
    section = re.search(r'<section id="entitlements">(.*?)</section>', page, re.S)
    assert section, page
    rows = re.findall(r"<tr>(.*?)</tr>", section.group(1), re.S)
    return [[text_of(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in rows[1:]]


async def consume(ctx, contract, bucket: str, quantity: int, on: date | None = None) -> None:  # type: ignore[no-untyped-def]
    await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(contract.id, bucket, Decimal(quantity), on=on))


async def test_contracts_page_lists_contracts_with_links(portal, make_customer, make_contract):
    customer = await make_customer(name=unique("Portal Customer"))
    contract = await make_contract(customer=customer, monthly_fee=Decimal("1234.50"))
    assert (await portal.get("/")).headers["location"] == "/queue"  # the staff's home is the queue
    response = await portal.get("/contracts", params={"q": contract.reference})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    link = re.search(rf'<a href="([^"]*/contracts/{contract.id})">([^<]*)</a>', page)
    assert link, f"no link to contract {contract.id}"
    assert link.group(2) == contract.reference
    row = re.search(rf"<tr>\s*<td><a href=\"[^\"]*/contracts/{contract.id}\">.*?</tr>", page, re.S)
    assert row
    # Dates and money formatted with babel for the viewer's locale (English without Accept-Language).
    assert text_of(row.group(0)) == f"{contract.reference} {customer.name} Feb 15, 2026 – Feb 14, 2027 €1,234.50"
    assert "Next page" not in page

    followed = await portal.get(link.group(1))
    assert followed.status_code == 200
    assert f"<h1>{contract.reference}</h1>" in followed.text
    # Its report, whichever page of contracts it is on: the picker offers the chosen contract too.
    report_link = re.search(r'<a href="(/reports\?contract=[0-9a-f-]+)">Monthly consumption report</a>', followed.text)
    assert report_link and str(contract.id) in report_link.group(1)
    reports_page = (await portal.get(report_link.group(1))).text
    assert f'<option value="{contract.id}" selected>{contract.reference}</option>' in reports_page


async def test_contracts_page_goes_a_page_at_a_time(portal, make_customer, make_contract, monkeypatch):
    from web import activities

    monkeypatch.setattr(activities, "PAGE_SIZE", 2)
    prefix = unique("PAGED")
    customer = await make_customer()
    made = [await make_contract(customer=customer, reference=f"{prefix}-{n}") for n in range(3)]
    first = (await portal.get("/contracts", params={"q": prefix})).text
    assert [m.reference for m in made[:2]] == re.findall(rf">({prefix}-\d)</a>", first)
    next_url = re.search(r'<a href="([^"]+)">Next page</a>', first)
    assert next_url
    second = (await portal.get(html.unescape(next_url.group(1)))).text
    assert re.findall(rf">({prefix}-\d)</a>", second) == [made[2].reference]
    assert "Next page" not in second and "First page" in second
    assert (await portal.get("/contracts", params={"after": "not a cursor"})).status_code == 400
    nothing = (await portal.get("/contracts", params={"q": f"{prefix}-x"})).text
    assert "No contract" in nothing and "starts with" in nothing


async def test_contract_page_shows_remaining_activities(portal, ctx, make_contract):
    contract = await make_contract()
    await consume(ctx, contract, "activities", 2)
    response = await portal.get(f"/contracts/{contract.id}")
    assert response.status_code == 200
    page = response.text
    assert page.lstrip().startswith("<!doctype html>")
    assert f"<h1>{contract.reference}</h1>" in page
    assert "Assure Small" in text_of(page)
    assert entitlement_rows(page) == [
        ["Small activities", "Feb 15, 2026 – May 14, 2026", "5 activities", "2 activities", "3 activities",
         "in 65 days (May 14, 2026)"],
    ]
    # The latest ledger entries are listed too, by bucket name, at the viewer's time with the zone named.
    ledger = re.search(r"<h2>Latest ledger entries</h2>(.*)", page, re.S).group(1)  # type: ignore[union-attr]
    assert "Mar 10, 2026, 12:00 PM UTC Small activities Feb 15, 2026 – May 14, 2026 consume 2 activities" in text_of(ledger)
    assert "Nothing consumed yet." not in page


async def test_contract_page_formats_hours(portal, ctx, make_contract):
    contract = await make_contract(program="premium-availability", plan="premium-16")
    await consume(ctx, contract, "expert-hours", 90)
    page = (await portal.get(f"/contracts/{contract.id}")).text
    [row] = entitlement_rows(page)
    assert row[1:5] == ["Feb 15, 2026 – Mar 31, 2026", "16 h", "1 h 30 min", "14 h 30 min"]
    # The quarter ends within the 30 warning days with hours left: the customer is warned.
    assert row[5] == "in 21 days (Mar 31, 2026) Expiring soon 14 h 30 min expire unless used"


async def test_contract_page_with_nothing_consumed(portal, make_contract):
    contract = await make_contract()
    page = (await portal.get(f"/contracts/{contract.id}")).text
    assert "Nothing consumed yet." in page
    assert entitlement_rows(page)[0][2:5] == ["5 activities", "0 activities", "5 activities"]


async def test_contract_page_shows_what_expired(portal, make_contract):
    contract = await make_contract(effective=date(2025, 10, 1))
    page = (await portal.get(f"/contracts/{contract.id}", params={"on": "2025-11-01"})).text
    [row] = entitlement_rows(page)
    assert row[1] == "Oct 1, 2025 – Dec 31, 2025"
    assert row[5] == "ended Dec 31, 2025, 5 activities expired"


async def test_htmx_request_gets_the_entitlements_partial(portal, ctx, make_contract):
    contract = await make_contract()
    await consume(ctx, contract, "activities", 4)
    response = await portal.get(f"/contracts/{contract.id}", headers=HX)
    assert response.status_code == 200
    partial = response.text
    assert "<html" not in partial and "<h1>" not in partial
    assert partial.strip().startswith('<section id="entitlements">')
    assert partial.strip().endswith("</section>")
    assert entitlement_rows(partial)[0][1:5] == ["Feb 15, 2026 – May 14, 2026", "5 activities", "4 activities", "1 activity"]

    second = (await portal.get(f"/contracts/{contract.id}", params={"on": "2026-06-01"}, headers=HX)).text
    assert "<html" not in second
    assert entitlement_rows(second)[0][1:5] == ["May 15, 2026 – Aug 14, 2026", "5 activities", "0 activities", "5 activities"]

    outside = (await portal.get(f"/contracts/{contract.id}", params={"on": "2028-01-01"}, headers=HX)).text
    assert "The contract is not in force on Jan 1, 2028" in outside


@pytest.mark.parametrize(
    "headers",
    [{"HX-Boosted": "true", "HX-Request-Type": "full"}, {"HX-Request-Type": "full"}, {"HX-Boosted": "true"}],
    ids=["htmx4-boosted", "htmx4-history-restore", "htmx2-boosted"],
)
async def test_boosted_navigation_gets_the_whole_page(portal, make_contract, headers):
    # htmx sends HX-Request on boosted links too (hx-boost is on <body>) and on history restores;
    # those swap the whole body, so they need the whole page.
    contract = await make_contract()
    page = (await portal.get(f"/contracts/{contract.id}", headers={**HX, **headers})).text
    assert "<html" in page
    assert f"<h1>{contract.reference}</h1>" in page

    partial = (await portal.get(f"/contracts/{contract.id}", headers={**HX, "HX-Request-Type": "partial"})).text
    assert "<html" not in partial
    assert partial.strip().startswith('<section id="entitlements">')


async def test_page_and_partial_are_cached_apart(portal, make_contract):
    contract = await make_contract()
    for headers in ({}, HX):
        response = await portal.get(f"/contracts/{contract.id}", headers=headers)
        assert "HX-Request" in [v.strip() for v in response.headers.get("vary", "").split(",")]


async def test_unknown_contract_is_a_readable_404(portal, shipped_programs):
    missing = uuid.uuid4()
    response = await portal.get(f"/contracts/{missing}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>404</h1>" in response.text
    assert f"contract {missing} does not exist" in response.text
    assert "Traceback" not in response.text

    malformed = await portal.get("/contracts/not-a-contract")
    assert malformed.status_code == 404
    assert "no such contract" in malformed.text


async def test_bad_day_is_a_readable_400(portal, make_contract):
    contract = await make_contract()
    response = await portal.get(f"/contracts/{contract.id}", params={"on": "someday"})
    assert response.status_code == 400
    assert "&#39;someday&#39; is not a date (YYYY-MM-DD)" in response.text


async def test_unknown_page_is_a_readable_404(portal):
    response = await portal.get("/no/such/page")
    assert response.status_code == 404
    assert "<h1>404</h1>" in response.text


async def test_programs_page(portal, shipped_programs):
    response = await portal.get("/programs")
    assert response.status_code == 200
    page = text_of(response.text)
    for name in (
        "Assure Advisory Packages",
        "Partner Support Program",
        "Premium Availability Support",
    ):
        assert name in page
    for code in shipped_programs:
        assert f"{code} · version" in page
    assert "Assure Small Small activities: 5 activities a quarter (from the contract date), unused expires" in page
    assert "Small activities: set per contract a quarter" in page


async def test_static_htmx_is_served(portal):
    response = await portal.get("/static/vendor/htmx-4.0.1.min.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert len(response.content) > 10_000
    assert b"HX-Request" in response.content
    page = (await portal.get("/programs")).text
    assert "/static/vendor/htmx-4.0.1.min.js" in page


async def test_healthz(anonymous_client):
    response = await anonymous_client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
