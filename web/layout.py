"""Layout helpers: the templates, rendering a page or its partial (htmx), and formatting for the viewer
(numbers, money and dates with babel in the viewer's locale; instants in the viewer's time zone, the zone
shown)."""

from __future__ import annotations

import functools
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from babel import Locale, negotiate_locale
from babel.dates import format_date, format_skeleton, format_time
from babel.numbers import format_currency, format_decimal
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from api.domain.units import format_quantity
from api.services.context import Actor, AppContext
from api.services.tickets import TicketView

__all__ = [
    "HTMX_HEADERS",
    "STATUS_NAMES",
    "TARGET_NAMES",
    "TZ_COOKIE",
    "Viewer",
    "severity_label",
    "app_context",
    "is_htmx",
    "navigation",
    "pager",
    "public_base",
    "render",
    "templates",
    "viewer_of",
    "wants_partial",
]

HERE = Path(__file__).parent
HTMX_HEADERS = ("HX-Request", "HX-Request-Type", "HX-Boosted")
# The viewer's IANA time zone, written by /static/portal.js from the browser's own setting.
TZ_COOKIE = "entitle_tz"
LOCALES = ("en", "en_GB", "de", "da", "fr", "es", "nl", "sv", "nb")
DEFAULT_ZONE = "UTC"
_WEIGHT = re.compile(r"^\s*([A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*)\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*$")


def app_context(request: Request) -> AppContext:
    return request.app.state.context


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def wants_partial(request: Request) -> bool:
    """htmx also sends HX-Request on boosted links and history restores, which swap the whole body: those
    get the page (htmx 4 marks them `HX-Request-Type: full`, earlier versions `HX-Boosted`)."""
    headers = request.headers
    return is_htmx(request) and headers.get("HX-Request-Type") != "full" and headers.get("HX-Boosted") != "true"


def public_base(request: Request) -> str:
    """Where this deployment is reached: ENTITLE_PUBLIC_URL, else the address this request came in on."""
    return app_context(request).settings.public_url or str(request.base_url).rstrip("/")


# ---- the viewer: locale and time zone ------------------------------------------------------------------


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _locale(header: str) -> str:
    """The best of LOCALES for an Accept-Language header (English without one)."""
    weighted = []
    for position, part in enumerate(header.split(",")[:20]):
        found = _WEIGHT.match(part)
        if not found:
            continue
        try:
            weight = float(found.group(2)) if found.group(2) else 1.0
        except ValueError:
            continue
        weighted.append((-weight, position, found.group(1).replace("-", "_")))
    preferred = [tag for _, _, tag in sorted(weighted)]
    return negotiate_locale(preferred, LOCALES) or "en"


@functools.lru_cache(maxsize=64)
def _parsed_locale(code: str) -> Locale:
    """Babel parses a locale given as text on every call (hundreds a report): once per locale instead."""
    return Locale.parse(code)


@dataclass(frozen=True)
class Viewer:
    """How the person looking at a page reads numbers, money, dates and times."""

    locale: str = "en"
    zone: str = DEFAULT_ZONE

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @property
    def babel_locale(self) -> Locale:
        return _parsed_locale(self.locale)

    def number(self, value: int | float | Decimal, digits: int = 2) -> str:
        return format_decimal(value, format=f"#,##0.{'#' * digits}" if digits else "#,##0", locale=self.babel_locale)

    def money(self, amount: Decimal | int, currency: str) -> str:
        return format_currency(amount, currency, locale=self.babel_locale)

    def day(self, value: date | datetime) -> str:
        if isinstance(value, datetime):
            value = value.astimezone(self.tz).date()
        return format_date(value, format="medium", locale=self.babel_locale)

    def short_day(self, value: date) -> str:
        return format_skeleton("MMMd", value, locale=self.babel_locale)

    def month(self, value: date) -> str:
        return format_skeleton("yMMM", value, locale=self.babel_locale)

    def short_month(self, value: date) -> str:
        return format_skeleton("MMM", value, locale=self.babel_locale)

    def instant(self, value: datetime, zone: str | None = None) -> str:
        """An instant as the date and wall-clock time of the viewer's zone (or `zone`), the zone named."""
        tz = ZoneInfo(zone) if zone else self.tz
        local = value.astimezone(tz)
        return (
            f"{format_skeleton('yMMMd', local, locale=self.babel_locale)}, "
            f"{format_time(local, format='short', locale=self.babel_locale)} {local.tzname() or tz.key}"
        )

    def time(self, value: datetime, zone: str | None = None) -> str:
        local = value.astimezone(ZoneInfo(zone) if zone else self.tz)
        return format_time(local, format="short", locale=self.babel_locale)

    def local_input(self, value: datetime | None, zone: str) -> str:
        """An instant as a datetime-local input's value, in `zone`."""
        return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M") if value else ""

    def quantity(self, value: int, ledger_unit: str) -> str:
        """Activities as a count ('1 activity', '3 activities'); minutes as '12 h 30 min'."""
        return format_quantity(value, ledger_unit, lambda count: self.number(count, 0))

    def amount(self, value: int, ledger_unit: str) -> str:
        """A quantity as a bare number in the unit people count in: activities, or hours (2 decimals at most)."""
        if ledger_unit == "minutes":
            return self.number(Decimal(value) / 60)
        return self.number(value, 0)

    def duration(self, seconds: int | None) -> str:
        """Open time: '1 h 20 min', '45 min', 'under a minute'."""
        if seconds is None:
            return "—"
        if seconds < 60:
            return "under a minute"
        minutes = seconds // 60
        days, rest = divmod(minutes, 24 * 60)
        text = self.quantity(rest, "minutes") if rest else ""
        return f"{days} d {text}".strip() if days else text


def viewer_of(request: Request) -> Viewer:
    zone = request.cookies.get(TZ_COOKIE, "")
    return Viewer(_locale(request.headers.get("accept-language", "")), zone if zone in _zones() else DEFAULT_ZONE)


# ---- navigation ----------------------------------------------------------------------------------------


def navigation(actor: Actor, production: bool) -> list[tuple[str, str]]:
    """The main navigation by role: (label, path)."""
    if actor.kind == "customer":
        links = [("Home", "/"), ("Tickets", "/tickets"), ("Activities", "/activities"), ("Out of scope", "/out-of-scope")]
    elif actor.kind == "partner":
        links = [("Home", "/"), ("Tickets", "/tickets"), ("File a ticket", "/tickets/new"), ("Out of scope", "/out-of-scope")]
    else:
        links = [("Queue", "/queue"), ("Tickets", "/tickets"), ("Contracts", "/contracts"), ("Programs", "/programs")]
    links.append(("Reports", "/reports"))
    if not production:
        links.append(("API", "/api"))
    return links


# ---- templates -----------------------------------------------------------------------------------------


def _template_globals(request: Request) -> dict[str, Any]:
    state = request.state
    return {
        "portal": getattr(state, "portal", None),
        "viewer": getattr(state, "viewer", None) or viewer_of(request),
        "flashes": getattr(state, "flashes", []),
        "acting": getattr(state, "acting", None),
        "nav": getattr(state, "nav", []),
        "nav_current": getattr(state, "nav_current", None),
        "show_api": not app_context(request).settings.production,
    }


# Names people read for the codes tickets and SLA clocks carry.
STATUS_NAMES = {
    "new": "New",
    "acknowledged": "Acknowledged",
    "in_progress": "In progress",
    "waiting_on_customer": "Waiting on customer",
    "resolved": "Resolved",
    "closed": "Closed",
}
TARGET_NAMES = {
    "acknowledge": "Acknowledge",
    "first_response": "First response",
    "update_interval": "Next update",
    "resolution": "Resolution",
}


def severity_label(view: TicketView) -> str:
    """A ticket's severity as its plan names it ("S1 Critical incident"), or "none"."""
    code = view.ticket.severity
    found = view.plan.rules.severities.get(code) if code else None
    return found.name if found is not None else (code or "none")


templates = Jinja2Templates(directory=HERE / "templates", context_processors=[_template_globals])
templates.env.globals.update(status_names=STATUS_NAMES, target_names=TARGET_NAMES, severity_label=severity_label)
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True


def pager(path: str, kept: dict[str, str], *, after: str | None, has_next_page: bool, end_cursor: str | None) -> dict:
    """The links of a keyset-paged list: the next page (the filters kept, from the last row's cursor) and,
    past the first page, back to the first."""
    query = urlencode(kept)
    return {
        "next_url": f"{path}?{urlencode({**kept, 'after': end_cursor})}" if has_next_page else None,
        "first_url": (f"{path}?{query}" if query else path) if after else None,
    }


def render(
    request: Request,
    page: str,
    partial: str | None,
    context: dict[str, Any],
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The whole page for a normal request, the partial alone for an htmx request that swaps part of it."""
    name = partial if partial is not None and wants_partial(request) else page
    response = templates.TemplateResponse(request, name, context, status_code=status_code, headers=headers)
    if partial is not None:
        response.headers["Vary"] = ", ".join(HTMX_HEADERS)  # one URL, two bodies: caches must keep them apart
    return response


def utc_now(request: Request) -> datetime:
    return app_context(request).now().astimezone(UTC)
