"""Browser tests: Playwright for Python drives Debian's Chromium (`/usr/bin/chromium`, headless; no browser
download) against the service started as the README says (`entitle migrate`, `entitle demo`, `entitle serve`),
on a throw-away database and a free port. One server and one browser per test run.

Every page a test visits goes through `Visitor.check`: a full-page screenshot at 1280 and at 390 px wide
(`tests/browser/screenshots/`, git-ignored, kept by CI as files), axe-core (vendored, pinned) at both widths
with no "serious" or "critical" violation (all findings in `screenshots/axe.jsonl`), no horizontal overflow at 390 px and no uncaught script error. Those
findings are collected and reported together at the end of the test, so one contrast problem does not hide
whether the rest of the journey works.

axe is injected with `page.add_script_tag(path=...)`, an inline script, which the portal's
Content-Security-Policy (no inline script) rightly refuses: the journeys' browser contexts are therefore
opened with `bypass_csp=True`. `test_layout.py::test_pages_work_under_the_content_security_policy` visits
pages in a context that enforces the policy, so a page that needs inline script still fails.

Without Chromium the tests skip locally, and fail in CI (CI=true), which installs it (`.ci/run`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import DatabaseFactory

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
AXE = HERE / "vendor" / "axe.min.js"
AXE_VERSION = "4.14.1"
SCREENSHOTS = HERE / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
BLOCKING_IMPACTS = ("serious", "critical")
DEMO_PASSWORD = "entitle-demo-2026"
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
# Playwright's own waits: long enough for a loaded 2-core CI machine, short enough that a missing element
# fails in seconds rather than the default 30.
TIMEOUT_MS = 10_000


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(
            f"{reason}. CI runs the browser tests every time and must not skip them: .ci/run installs "
            "Debian's Chromium with `apt-get install -y chromium` and Playwright with the test extras.",
            pytrace=False,
        )
    pytest.skip(f"{reason}; to run the browser tests: `apt-get install chromium` (Debian)")


def playwright_api() -> Any:
    """playwright.async_api, for a test module's import: a missing Playwright skips the module locally and
    fails it in CI."""
    try:
        import playwright.async_api as api
    except ImportError:
        if IN_CI:
            raise
        pytest.skip("Playwright for Python is not installed (`pip install -e .[test]`)", allow_module_level=True)
    return api


def require_browser() -> None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        _unavailable("Playwright for Python is not installed (`pip install -e .[test]`)")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"Chromium not found at {CHROMIUM}")


# ---- the service ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Portal:
    url: str
    port: int
    outbox: Path

    def at(self, path: str) -> str:
        return self.url + path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Screenshots and the run's logs; emptied at the start of a run so none is left from an earlier one."""
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def portal(
    database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> Iterator[Portal]:
    """`entitle migrate`, `entitle demo`, `entitle serve --port P` from this checkout (`python -m api.cli`),
    on a fresh database (SQLite file, or a new PostgreSQL database under ENTITLE_TEST_DATABASE_URL) and an
    outbox in a temporary folder; stopped at the end of the run."""
    require_browser()
    tmp = tmp_path_factory.mktemp("portal")
    # Nothing from the caller's ENTITLE_* settings leaks in (a public URL, an SMTP host, production mode).
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENTITLE_") and k != "DATABASE_URL"}
    env.update(DATABASE_URL=database_factory.new(), ENTITLE_OUTBOX_DIR=str(tmp / "outbox"), PYTHONUNBUFFERED="1")
    cli = [sys.executable, "-m", "api.cli"]
    for step in ("migrate", "demo"):
        done = subprocess.run([*cli, step], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode:
            pytest.fail(f"`entitle {step}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}", pytrace=False)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = artifacts / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [*cli, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if server.poll() is not None:
                    pytest.fail(f"`entitle serve` exited {server.returncode}:\n{_tail(log_path)}", pytrace=False)
                try:
                    if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"`entitle serve` did not answer /healthz within 60 s:\n{_tail(log_path)}", pytrace=False)
                time.sleep(0.2)
            yield Portal(url=url, port=port, outbox=tmp / "outbox")
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


# ---- the browser ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def browser(portal: Portal) -> AsyncIterator[Any]:
    require_browser()
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=TIMEOUT_MS)
    head = AXE.read_text(encoding="utf-8")[:40]
    assert f"axe v{AXE_VERSION}" in head, f"{AXE} is not axe-core {AXE_VERSION} (see vendor/README.md)"
    async with async_playwright() as playwright:
        try:
            chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        except Exception as error:  # noqa: BLE001 - any launch failure means no usable browser
            _unavailable(f"Chromium at {CHROMIUM} did not start under Playwright: {error}")
        yield chromium
        await chromium.close()


@dataclass
class Visitor:
    """One signed-in (or anonymous) person: a browser context, its page, and the checks of every page seen."""

    portal: Portal
    context: Any
    page: Any
    scenario: str
    problems: list[str] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)
    visited: int = 0
    in_flight: set[Any] = field(default_factory=set)
    reported: bool = False

    def watch_requests(self) -> None:
        def started(request: Any) -> None:
            if request.resource_type in ("document", "fetch", "xhr"):
                self.in_flight.add(request)

        def ended(request: Any) -> None:
            self.in_flight.discard(request)

        self.page.on("request", started)
        self.page.on("requestfinished", ended)
        self.page.on("requestfailed", ended)

    async def settle(self) -> None:
        """Wait until no page or htmx request is in flight (a form that reloads itself when a select
        changes must have answered before the next field is typed into)."""
        await self.page.wait_for_timeout(50)
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while self.in_flight:
            assert time.monotonic() < deadline, f"requests still in flight: {[r.url for r in self.in_flight]}"
            await self.page.wait_for_timeout(25)

    def url(self, path: str) -> str:
        return self.portal.at(path)

    def path(self) -> str:
        return urlsplit(self.page.url).path

    async def goto(self, path: str) -> Any:
        return await self.page.goto(self.url(path))

    async def sign_in(self, email: str, password: str = DEMO_PASSWORD, *, check: bool = True) -> None:
        from playwright.async_api import expect

        page = self.page
        await self.goto("/login")
        await expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
        if check:
            await self.check("sign-in")
        await page.get_by_label("E-mail", exact=True).fill(email)
        await page.get_by_label("Password", exact=True).fill(password)
        await page.get_by_role("button", name="Sign in", exact=True).click()
        await expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible()

    async def nav(self, name: str) -> None:
        """Follow a link of the main navigation."""
        await self.page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()

    async def check(self, name: str) -> None:
        """Screenshots at 1280 and 390 px, axe, and the 390 px overflow check of the page as it is now."""
        page = self.page
        self.visited += 1
        stem = f"{self.scenario}-{self.visited:02d}-{name}"
        await page.wait_for_load_state("load")
        # As a person sees it once it is done: no request in flight, no transition (a fading progress
        # indicator) half-way.
        await self.settle()
        await page.evaluate(_TRANSITIONS_DONE)
        await page.screenshot(path=SCREENSHOTS / f"{stem}-{DESKTOP['width']}.png", full_page=True)
        await self._axe(stem, DESKTOP["width"])
        await page.set_viewport_size(PHONE)
        try:
            await self._axe(stem, PHONE["width"])
            width = await page.evaluate("() => document.documentElement.scrollWidth")
            if width > PHONE["width"]:
                culprits = await page.evaluate(_WIDE_ELEMENTS, PHONE["width"])
                self.problems.append(
                    f"{stem}: {self.path()} overflows at {PHONE['width']} px (scrollWidth {width}); "
                    f"widest: {', '.join(culprits)}"
                )
            await page.screenshot(path=SCREENSHOTS / f"{stem}-{PHONE['width']}.png", full_page=True)
        finally:
            await page.set_viewport_size(DESKTOP)
        if self.script_errors:
            self.problems.append(f"{stem}: uncaught script errors: {self.script_errors}")
            self.script_errors.clear()

    async def _axe(self, stem: str, width: int) -> None:
        """axe-core on the page at this width (a table that fits at 1280 px may scroll at 390)."""
        page = self.page
        if not await page.evaluate("() => typeof window.axe === 'object'"):
            await page.add_script_tag(path=str(AXE))
        violations = await page.evaluate(_AXE_RUN)
        with (SCREENSHOTS / "axe.jsonl").open("a", encoding="utf-8") as report:
            report.write(json.dumps({"page": stem, "width": width, "path": self.path(), "violations": violations}) + "\n")
        for violation in violations:
            if violation["impact"] in BLOCKING_IMPACTS:
                self.problems.append(
                    f"{stem} at {width} px: {self.path()} axe {violation['impact']} {violation['id']}: "
                    f"{violation['help']} at {violation['nodes']}"
                )

    def assert_clean(self) -> None:
        self.reported = True
        assert not self.problems, "pages with problems:\n" + "\n".join(self.problems)


_AXE_RUN = """async () => {
  const result = await window.axe.run(document, {resultTypes: ['violations']});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ')),
  }));
}"""

_TRANSITIONS_DONE = """() => Promise.all(document.getAnimations()
  .filter(a => a.effect && a.effect.getComputedTiming().endTime !== Infinity)
  .map(a => a.finished.catch(() => null)))"""

_WIDE_ELEMENTS = """(limit) => {
  const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
    + (typeof e.className === 'string' && e.className.trim() ? '.' + e.className.trim().split(/\\s+/).join('.') : '');
  return Array.from(document.body.querySelectorAll('*'))
    .filter(e => e.getBoundingClientRect().right > limit + 1)
    .filter(e => !e.parentElement || e.parentElement.getBoundingClientRect().right <= limit + 1)
    .slice(0, 6).map(e => `${name(e)} (${Math.round(e.getBoundingClientRect().right)} px)`);
}"""


@pytest.fixture
async def visitor(browser: Any, portal: Portal) -> AsyncIterator[Callable[..., Awaitable[Visitor]]]:
    """Opens a person's browser context (1280x800, CSP bypassed for axe: see the module doc)."""
    opened: list[Visitor] = []

    async def open_visitor(scenario: str, *, bypass_csp: bool = True) -> Visitor:
        context = await browser.new_context(
            viewport=DESKTOP, bypass_csp=bypass_csp, locale="en-GB", timezone_id="Europe/Copenhagen"
        )
        context.set_default_timeout(TIMEOUT_MS)
        page = await context.new_page()
        person = Visitor(portal=portal, context=context, page=page, scenario=scenario)
        page.on("pageerror", lambda error: person.script_errors.append(str(error)))
        person.watch_requests()
        opened.append(person)
        return person

    yield open_visitor
    for person in opened:
        if person.problems and not person.reported:  # the test stopped before its assert_clean()
            print("pages with problems before the test failed:\n" + "\n".join(person.problems))
        await person.context.close()


@pytest.fixture(scope="session")
def journey() -> dict[str, Any]:
    """What one scenario leaves for the next (the partner's ticket, which staff then answer)."""
    return {}


async def selected_text(select: Any) -> str:
    return (await select.evaluate("s => s.selectedOptions.length ? s.selectedOptions[0].textContent : ''")).strip()


async def option_text(select: Any, starts_with: str) -> str:
    """The text of the first option of a select that starts with the given words (for select_option(label=))."""
    texts = [t.strip() for t in await select.locator("option").all_text_contents()]
    for text in texts:
        if text.startswith(starts_with):
            return text
    raise AssertionError(f"no option starting with {starts_with!r} among {texts}")


NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def parse_number(text: str) -> float:
    return float(text.replace(",", ""))
