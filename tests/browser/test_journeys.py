"""The day of a partner, a customer and staff in a real browser (issue 12, "Done when"), with the accessible
names of the UI contract (/work/briefs/portal_ui.md). The three run in this order: staff answer the ticket
the partner filed."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import NUMBER, Portal, Visitor, option_text, parse_number, playwright_api, selected_text

expect = playwright_api().expect

GLOBEX = "Globex Manufacturing"
ACME = "Acme Retail"
# partner-support: a type that needs the diagnosis fields and is deducted from the support hours.
TICKET_TYPE = "Behaviour check"
DIAGNOSIS = ("Affected account", "Steps followed", "Expected result")
GLOBEX_OUT_OF_SCOPE = [
    "Setting up sales channels or building implementations such as web shops or e-commerce sites.",
    "Slowness caused by the customer's own internet connection or hosting provider.",  # out of support
]
SUPPORT_HOURS = "Support hours"


def _quantity(text: str) -> float:
    """A quantity as the portal writes it, in ledger units: '3 activities', '12 h 30 min' or '45 min' (minutes),
    or a bare number."""
    text = text.strip()
    clock = re.fullmatch(rf"(?:({NUMBER.pattern}) h)?\s*(?:(\d+) min)?", text)
    if clock and any(clock.groups()):
        return parse_number(clock.group(1) or "0") * 60 + int(clock.group(2) or 0)
    count = re.match(NUMBER.pattern, text)
    assert count, f"not a quantity: {text!r}"
    return parse_number(count.group(0))


async def _remaining(page: Any, bucket: str, near: str | None = None) -> float:
    """What a page says is left of a bucket, from the first of: the meter "<bucket> remaining" (with `near`,
    the one in the card, the nearest box around one meter, whose text contains it); the "Remaining" column
    of a table row whose first cell is the bucket; the words "<bucket>: <quantity> of <quantity> left"."""
    cards = await page.evaluate(
        """([name]) => Array.from(document.querySelectorAll('meter, [role=meter]')).map(m => {
             let box = m.parentElement;
             while (box.parentElement && box.parentElement !== document.body
                    && box.parentElement.querySelectorAll('meter, [role=meter]').length === 1) box = box.parentElement;
             const label = m.getAttribute('aria-label') || (m.labels && m.labels[0] ? m.labels[0].textContent : '')
               || (m.getAttribute('aria-labelledby') || '').split(' ').map(id => (document.getElementById(id) || {}).textContent || '').join(' ');
             const value = m.tagName === 'METER' ? m.value : Number(m.getAttribute('aria-valuenow'));
             return {label: label.trim(), value, text: box.innerText};
           }).filter(c => c.label.includes(name))""",
        [f"{bucket} remaining"],
    )
    if near is not None:
        cards = [card for card in cards if near in card["text"]]
    if cards:
        assert len(cards) == 1, f"{len(cards)} meters '{bucket} remaining'{f' near {near!r}' if near else ''}"
        return float(cards[0]["value"])
    cells = await page.evaluate(
        """([bucket]) => Array.from(document.querySelectorAll('main table')).flatMap(table => {
             const heads = Array.from(table.querySelectorAll('thead th')).map(th => th.textContent.trim());
             const column = heads.indexOf('Remaining');
             if (column < 0) return [];
             return Array.from(table.querySelectorAll('tbody tr'))
               .filter(row => row.cells[0] && row.cells[0].textContent.trim() === bucket)
               .map(row => row.cells[column].textContent.trim());
           })""",
        [bucket],
    )
    if cells:
        return _quantity(cells[0])
    text = await page.locator("main").inner_text()
    found = re.search(rf"{re.escape(bucket)}:\s*(.+?) of .+? left", text)
    assert found, f"{page.url} shows nothing left of {bucket!r} (no meter, no Remaining column, no '... of ... left')"
    return _quantity(found.group(1))


async def _fact(page: Any, term: str) -> str:
    """The value of a fact in a description list (<dt>term</dt><dd>value</dd>)."""
    return (await page.locator("main dt", has_text=re.compile(rf"^{re.escape(term)}$")).first
            .locator("xpath=following-sibling::dd[1]").inner_text()).strip()


# ---- a) partner --------------------------------------------------------------------------------------------


async def test_partner_switches_customer_and_files_a_ticket_fixing_a_refused_field(  # type: ignore[no-untyped-def]
    visitor, portal: Portal, journey: dict[str, Any]
) -> None:
    nora: Visitor = await visitor("partner")
    page = nora.page
    await nora.sign_in("nora@northwind.example")
    await expect(page).to_have_url(portal.at("/"))
    await expect(page.get_by_role("heading", level=1, name="Your customers")).to_be_visible()
    await expect(page.get_by_role("link", name=GLOBEX).first).to_be_visible()
    await nora.check("home")

    # "Acting for": the customers Northwind works with, the managed one marked.
    acting_for = page.get_by_label("Acting for", exact=True)
    globex = await option_text(acting_for, GLOBEX)
    acme = await option_text(acting_for, ACME)
    assert "(managed)" in globex and "(managed)" not in acme, (globex, acme)

    async def switch_to(customer: str, option: str) -> None:
        await page.get_by_label("Acting for", exact=True).select_option(label=option)
        await nora.settle()
        await page.get_by_role("button", name="Switch", exact=True).click()
        await expect(page.get_by_text(f"Acting for {customer}").first).to_be_visible()
        assert (await selected_text(page.get_by_label("Acting for", exact=True))).startswith(customer)

    # Whichever customer the session starts with, the switch is seen to happen: to Acme, then to Globex.
    if (await selected_text(acting_for)).startswith(GLOBEX):
        await switch_to(ACME, acme)
        await nora.check("acting-for-acme")
    await switch_to(GLOBEX, globex)
    await nora.check("acting-for-globex")

    # The out-of-scope list of the customer in view: Globex's partner-support terms.
    await nora.nav("Out of scope")
    await expect(page.get_by_role("heading", level=1, name="Out of scope")).to_be_visible()
    for item in GLOBEX_OUT_OF_SCOPE:
        await expect(page.get_by_text(item).first).to_be_visible()
    await expect(page.get_by_text("Partner Support Program").first).to_be_visible()  # the source
    await nora.check("out-of-scope")

    # File a ticket, leaving one diagnosis field empty.
    await nora.nav("File a ticket")
    await expect(page.get_by_role("heading", level=1, name="File a ticket")).to_be_visible()
    customer = page.get_by_label("Customer", exact=True)
    if not (await selected_text(customer)).startswith(GLOBEX):
        await customer.select_option(label=await option_text(customer, GLOBEX))
        await nora.settle()
    await expect(page.get_by_label("Type", exact=True).locator("option", has_text=TICKET_TYPE)).to_have_count(1)
    await page.get_by_label("Type", exact=True).select_option(label=TICKET_TYPE)
    await nora.settle()  # the form reloads itself for the type chosen
    for label in DIAGNOSIS:
        await expect(page.get_by_label(label, exact=True)).to_be_visible()
    severity = page.get_by_label("Severity", exact=True)
    standard = await option_text(severity, "Standard")
    assert "first response" in standard, f"the severity does not show its target: {standard!r}"
    await severity.select_option(label=standard)
    await nora.settle()
    aside = page.locator('[aria-label="Out of scope"]')
    await expect(aside).to_be_visible()
    await expect(aside.get_by_text(GLOBEX_OUT_OF_SCOPE[0])).to_be_visible()

    token = uuid.uuid4().hex[:8]
    typed = {
        "Subject": f"Price export shows yesterday's prices ({token})",
        "Description": "Since this morning the nightly price export to the web shop carries the previous day's prices.",
        "Affected account": "globex-production",
        "Expected result": "The export carries the prices valid today.",
    }
    for label, value in typed.items():
        await page.get_by_label(label, exact=True).fill(value)
    await nora.check("file-ticket")

    async with page.expect_response(
        lambda r: r.request.method == "POST" and urlsplit(r.url).path.startswith("/tickets")
        and "intent=reload" not in (r.request.post_data or "")
    ) as refused:
        await page.get_by_role("button", name="File ticket", exact=True).click()
    assert (await refused.value).status == 422, f"a ticket without 'Steps followed' got {(await refused.value).status}"
    steps = page.get_by_label("Steps followed", exact=True)
    await expect(steps).to_be_visible()
    described_by = (await steps.get_attribute("aria-describedby") or "").split()
    assert described_by, "the refused field is not linked to its error (aria-describedby)"
    errors = [page.locator(f"[id='{ident}']") for ident in described_by]
    messages = [(await error.inner_text()).strip() for error in errors if await error.count()]
    assert any(messages), f"no error text in {described_by}"
    # Next to its field, not at the top of the page.
    field_box = await steps.bounding_box()
    error_boxes = [await error.bounding_box() for error in errors if await error.count()]
    assert field_box and any(
        box and abs(box["y"] - field_box["y"]) < 200 for box in error_boxes
    ), f"the error is not next to its field: field {field_box}, errors {error_boxes}"
    # Nothing typed is lost.
    for label, value in typed.items():
        await expect(page.get_by_label(label, exact=True)).to_have_value(value)
    assert await selected_text(page.get_by_label("Type", exact=True)) == TICKET_TYPE
    assert await selected_text(page.get_by_label("Severity", exact=True)) == standard
    assert (await selected_text(page.get_by_label("Customer", exact=True))).startswith(GLOBEX)
    await nora.check("file-ticket-refused")

    await steps.fill("1. Ran the export at 06:00. 2. Opened the file. 3. Compared with the price list.")
    await page.get_by_role("button", name="File ticket", exact=True).click()
    await expect(page.get_by_role("heading", level=1, name=typed["Subject"])).to_be_visible()
    await expect(page.get_by_role("status").filter(has_text="Ticket filed").first).to_be_visible()
    assert re.fullmatch(r"/tickets/[^/]+", nora.path()), nora.path()
    journey["ticket"] = {"subject": typed["Subject"], "path": nora.path(), "token": token}
    await nora.check("ticket")

    # And it is in the list.
    await nora.nav("Tickets")
    await expect(page.get_by_role("heading", level=1, name="Tickets")).to_be_visible()
    await nora.check("tickets")
    await page.get_by_label("Search", exact=True).fill(token)
    await page.get_by_role("button", name="Filter", exact=True).click()
    await expect(page.get_by_role("link", name=typed["Subject"], exact=True)).to_be_visible()
    await nora.check("tickets-search")
    await page.get_by_role("link", name=typed["Subject"], exact=True).click()
    await expect(page.get_by_role("heading", level=1, name=typed["Subject"])).to_be_visible()
    await nora.check("ticket-from-list")
    nora.assert_clean()


# ---- b) customer -------------------------------------------------------------------------------------------


async def test_customer_reads_what_is_left_and_books_an_activity(visitor, portal: Portal) -> None:  # type: ignore[no-untyped-def]
    anna: Visitor = await visitor("customer")
    page = anna.page
    await anna.sign_in("anna@acme-retail.example")
    await expect(page).to_have_url(portal.at("/"))
    await expect(page.get_by_role("heading", level=1, name="What is left")).to_be_visible()
    main = page.locator("main")
    # Every Assure contract of Acme counts "Small activities".
    await expect(page.get_by_role("meter", name="Small activities remaining").first).to_be_visible()
    await expect(main.get_by_text(re.compile(rf"{NUMBER.pattern} of {NUMBER.pattern} activities left")).first).to_be_visible()
    await expect(main.get_by_text(re.compile(r"ends .+\(\d+ days? left\)")).first).to_be_visible()
    await expect(page.get_by_role("img", name=re.compile("Consumption, last 12 months"))).to_be_visible()
    await expect(main.get_by_role("table").first).to_be_visible()
    await expect(page.get_by_role("heading", name="Open tickets", exact=True)).to_be_visible()
    await expect(page.get_by_role("heading", name="Upcoming activities", exact=True)).to_be_visible()
    before = await _remaining(page, "Small activities", near="Assure Small")
    await anna.check("home")

    # Activities: Assure Small's page (through a list of contracts when there is one).
    await anna.nav("Activities")
    small = page.get_by_role("link", name=re.compile(r"DEMO-ADVISORY-ASSURE-SMALL|Assure Small"))
    if not re.fullmatch(r"/contracts/[^/]+", anna.path()) or "Assure Small" not in await main.inner_text():
        await anna.check("activities")
        await small.first.click()
    await expect(page.get_by_label("Activity", exact=True)).to_be_visible()
    await expect(main.get_by_text("Assure Small").first).to_be_visible()
    # Public addresses (calendar feeds) name the port the server runs on, not 8000.
    for address in re.findall(r"https?://[^\s\"'<>]+/calendar/\S+", await main.inner_text()):
        assert address.startswith(portal.url), f"feed address {address} is not on {portal.url}"
    await anna.check("contract")

    activity = page.get_by_label("Activity", exact=True)
    await activity.select_option(label=await option_text(activity, "Advisory call"))
    await anna.settle()
    tomorrow = date.today() + timedelta(days=1)
    await page.get_by_label("Date", exact=True).fill(tomorrow.isoformat())
    await page.get_by_role("button", name="Book", exact=True).click()
    await expect(page.get_by_role("status").filter(has_text=re.compile("Advisory call|[Bb]ooked")).first).to_be_visible()
    await expect(page.get_by_role("button", name="Cancel").first).to_be_visible()
    await anna.check("booked")

    await anna.nav("Home")
    await expect(page.get_by_role("heading", level=1, name="What is left")).to_be_visible()
    after = await _remaining(page, "Small activities", near="Assure Small")
    # The demo's terms start on the 15th: a booking for the 15th falls in the next quarter.
    if tomorrow.day != 15:
        assert after == before - 1, f"Assure Small: {before} left before booking an advisory call, {after} after"
    await expect(page.get_by_text("Advisory call").first).to_be_visible()  # upcoming activities
    await anna.check("home-after-booking")
    anna.assert_clean()


# ---- c) staff ----------------------------------------------------------------------------------------------


async def test_staff_answer_the_ticket_from_the_queue_and_log_time(  # type: ignore[no-untyped-def]
    visitor, portal: Portal, journey: dict[str, Any]
) -> None:
    ticket = journey.get("ticket")
    if ticket is None:
        pytest.fail("the partner's journey filed no ticket to answer (see the test before this one)", pytrace=False)
    sam: Visitor = await visitor("staff")
    page = sam.page
    await sam.sign_in("support@entitle.example")
    await expect(page).to_have_url(portal.at("/queue"))
    await expect(page.get_by_role("heading", level=1, name="Queue")).to_be_visible()
    for label in ("Program", "Severity", "Customer", "Assignee"):
        await expect(page.get_by_label(label, exact=True)).to_be_visible()
    # The demo has a ticket at risk and one breached, marked in words.
    main = page.locator("main")
    await expect(main.get_by_text(re.compile(r"\bat risk\b", re.I)).first).to_be_visible()
    await expect(main.get_by_text(re.compile(r"\bbreached\b", re.I)).first).to_be_visible()
    await expect(page.get_by_role("link", name=ticket["subject"], exact=True)).to_be_visible()
    await sam.check("queue")

    await page.get_by_role("link", name=ticket["subject"], exact=True).click()
    await expect(page.get_by_role("heading", level=1, name=ticket["subject"])).to_be_visible()
    assert sam.path() == ticket["path"]
    await sam.check("ticket")

    # Answer in the public conversation.
    answer = f"We reproduced the stale prices ({ticket['token']}) and are looking at the export job."
    await page.get_by_label("Message", exact=True).fill(answer)
    await page.get_by_role("button", name="Send", exact=True).click()
    await expect(main.get_by_text(answer).first).to_be_visible()
    await expect(page.get_by_label("Message", exact=True)).to_have_value("")
    await sam.check("ticket-answered")

    # The customer's support hours before logging time: on the ticket, and on the contract's page.
    plan = await _fact(page, "Plan")
    on_ticket = await _remaining(page, SUPPORT_HOURS)
    await sam.nav("Contracts")
    await expect(page.get_by_role("heading", level=1, name="Contracts")).to_be_visible()
    await sam.check("contracts")
    candidates = [
        await link.get_attribute("href")
        for link in await page.locator("main tr", has_text=GLOBEX).get_by_role("link").all()
    ]
    contract_path = None
    for href in candidates:
        await page.goto(portal.at(href))
        if (await _fact(page, "Plan")) == plan:
            contract_path = sam.path()
            break
    assert contract_path, f"no contract of {GLOBEX} on the plan {plan!r} among {candidates}"
    on_contract = await _remaining(page, SUPPORT_HOURS)
    await sam.check("contract-before")

    await page.goto(portal.at(ticket["path"]))
    await expect(page.get_by_role("heading", level=1, name=ticket["subject"])).to_be_visible()
    await page.get_by_label("Minutes", exact=True).fill("60")
    await page.get_by_label("Note", exact=True).fill("Reproduced the export and traced it to the job's schedule.")
    await page.get_by_role("button", name="Log time", exact=True).click()
    await expect(page.get_by_role("status").filter(has_text=re.compile(r"[Ll]ogged")).first).to_be_visible()
    after = await _remaining(page, SUPPORT_HOURS)
    assert after < on_ticket, f"the ticket shows {on_ticket} support minutes left before logging 60 minutes, {after} after"
    await sam.check("ticket-time-logged")

    await page.goto(portal.at(contract_path))
    after = await _remaining(page, SUPPORT_HOURS)
    assert after < on_contract, f"the contract shows {on_contract} support minutes left before logging 60 minutes, {after} after"
    await sam.check("contract-after")
    sam.assert_clean()
