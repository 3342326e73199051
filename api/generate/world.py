"""A vendor's history, simulated: customers on the shipped programs over the last years, what they consumed
and booked, the tickets they filed and how support worked them, written as the services would have.

Each customer is simulated on its own random generator (seeded from the run's seed and the customer's
number), so a customer's rows do not depend on batch sizes or on the other customers. Within a customer,
everything that moves a balance or a ticket is a step at an instant; steps run in time order and each one
applies the rule its service applies at that moment: a consumption, booking or deduction the balance
cannot take is refused (a reply whose deduction is refused is not sent: support leaves an internal note),
a ticket moves only along the lifecycle's transitions, a reopening only within the reopen window. Steps
after `now` have not happened yet, which leaves recent tickets and bookings in every open state."""

from __future__ import annotations

import bisect
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import accumulate, count
from operator import itemgetter
from random import Random
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from api.domain.calendars import compile_calendar
from api.domain.catalog import Offer, contract_catalog
from api.domain.periods import Period, add_months, periods_of_term
from api.generate import rows as R
from api.programs.schema import Plan, Program, Severity, TicketType
from api.services.context import Actor
from api.services.tickets import next_due

__all__ = ["PlanInfo", "World", "WorldSpec"]

DAY, HOUR, MINUTE = 86_400, 3_600, 60
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# ---- the mix: how much of what (calibrated so N customers give about 1.2 N contracts, 100 N tickets and
# 300 N ledger entries over three years) ---------------------------------------------------------------

PROGRAM_WEIGHTS = {
    "advisory-assure": 0.12, "partner-support": 0.26, "premium-availability": 0.30, "support-by-plan": 0.16,
    "tiered-support": 0.16,
}
PLAN_WEIGHTS = {
    "advisory-assure": {"small": 0.35, "medium": 0.35, "large": 0.15, "custom": 0.15},
    "partner-support": {"enterprise": 0.4, "premium": 0.6},
    "premium-availability": {"premium-16": 0.25, "premium-32": 0.3, "premium-60": 0.25, "premium-80": 0.2},
    "support-by-plan": {
        "free": 0.15, "starter": 0.2, "small": 0.2, "medium": 0.15, "platinum": 0.1, "enterprise-advanced": 0.1,
        "enterprise-premium": 0.1,
    },
    "tiered-support": {"basic": 0.2, "essential": 0.35, "extended": 0.25, "premium": 0.2},
}
# Tickets a month on a contract of each plan, for an average customer (unlisted plans with ticket types: 5).
TICKETS_PER_MONTH = {
    ("support-by-plan", "free"): 1.5, ("support-by-plan", "starter"): 2.5, ("support-by-plan", "small"): 4,
    ("support-by-plan", "medium"): 6, ("support-by-plan", "platinum"): 8,
    ("support-by-plan", "enterprise-advanced"): 9, ("support-by-plan", "enterprise-premium"): 11,
    ("tiered-support", "basic"): 2, ("tiered-support", "essential"): 5, ("tiered-support", "extended"): 8,
    ("tiered-support", "premium"): 11, ("partner-support", "enterprise"): 11, ("partner-support", "premium"): 9,
}
TICKET_SCALE = 1.0
MONTHLY_FEES = {
    "small": 1500, "medium": 2500, "large": 4500, "custom": 3500, "enterprise": 3000, "premium": 2000,
    "premium-16": 4000, "premium-32": 7000, "premium-60": 12000, "premium-80": 15000, "free": 0, "starter": 49,
    "platinum": 1500, "enterprise-advanced": 4000, "enterprise-premium": 8000, "basic": 2500, "essential": 8500,
    "extended": 18500,
}
# Minutes one direct consumption of expert time takes (rounded up to the bucket's increment).
CONSUME_MINUTES = (15, 15, 15, 15, 15, 15, 15, 15, 30, 30, 45)
CATEGORY_WEIGHTS = {
    "incident": 3.0, "question": 3.0, "problem": 1.5, "service_request": 1.5, "change": 1.0,
    "integration_support": 0.6, "enablement": 0.3, "developer_support": 2.5, "product_support": 2.5,
    "feature_request": 0.8, "other": 1.0,
}
RANK_WEIGHTS = {1: 0.07, 2: 0.2, 3: 0.45, 4: 0.28}
REOPEN_DAYS = 14
# How many time entries staff log on a ticket (0 to 6): more where the plan deducts support time.
TIME_LOGS_EXEMPT = (0.5, 0.3, 0.15, 0.05, 0, 0, 0, 0, 0, 0, 0, 0, 0)
TIME_LOGS = (0.02, 0.03, 0.05, 0.07, 0.09, 0.11, 0.12, 0.12, 0.11, 0.09, 0.07, 0.07, 0.05)
RENEWAL = 0.5  # a term that has ended is renewed
SECOND_PROGRAM = 0.08  # a customer also holds a contract of another program  # Settings.ticket_reopen_days' default

# ---- words ---------------------------------------------------------------------------------------------

FIRST_NAMES = (
    "Anna", "Ben", "Clara", "David", "Emma", "Frederik", "Greta", "Hugo", "Ida", "Jonas", "Karin", "Lars", "Maria",
    "Niels", "Olivia", "Pablo", "Rosa", "Sven", "Tilde", "Ulrik", "Vera", "William", "Yasmin", "Zoe", "Lucia",
    "Mads", "Sofia", "Tom", "Elena", "Marco",
)
LAST_NAMES = (
    "Andersen", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen", "Ivanova", "Jensen", "Keller",
    "Larsen", "Martin", "Nielsen", "Olsen", "Petersen", "Quist", "Rossi", "Schmidt", "Thomsen", "Urban", "Vidal",
    "Weber", "Young", "Zimmer", "Moreau", "Lopez", "Novak", "Holm", "Lund",
)
COMPANY_WORDS = (
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Nordic", "Baltic", "Alpine",
    "Atlantic", "Northwind", "Bluefin", "Redwood", "Silverline", "Evergreen", "Polar", "Meridian", "Summit",
    "Harbor", "Crescent", "Falcon", "Granite", "Lumen", "Orbit", "Pioneer", "Quantum", "Vertex", "Zephyr",
)
SECTORS = (
    "Retail", "Logistics", "Health", "Media", "Manufacturing", "Foods", "Energy", "Travel", "Finance", "Fashion",
    "Pharma", "Automotive", "Telecom", "Outdoor", "Furniture", "Electronics", "Books", "Sports", "Garden", "Toys",
)
COUNTRIES = (("DK", " A/S"), ("DE", " GmbH"), ("ES", " S.L."), ("FR", " SAS"), ("GB", " Ltd"), ("SE", " AB"),
             ("NL", " B.V."), ("NO", " AS"), ("IT", " S.r.l."), ("PL", " Sp. z o.o."))
PARTNER_WORDS = ("Solutions", "Digital", "Consulting", "Commerce", "Systems", "Partners", "Labs", "Integrations")
AREAS = (
    "checkout", "product import", "search index", "nightly export", "ERP sync", "image pipeline", "price feed",
    "login", "storefront", "catalog API", "order webhook", "PIM workflow", "asset upload", "translation export",
    "inventory sync", "customer portal", "payment gateway", "shipping rates",
)
THINGS = (
    "orders with discounts", "large catalogs", "new users", "variant products", "the Danish store", "bulk updates",
    "the mobile app", "B2B customers", "gift cards", "the staging environment",
)
TASKS = (
    "rotate the API keys", "add a new sales channel", "increase the import batch size", "set up a staging copy",
    "enable single sign-on", "archive old products", "upgrade to the latest version", "add a webhook for returns",
    "change the tax rules", "add a new warehouse", "restrict admin access", "schedule the export earlier",
)
SYSTEMS = ("SAP", "Dynamics 365", "Shopify", "Magento", "Salesforce", "Akeneo", "BigCommerce")
SUBJECTS = {
    "incident": ("{area} fails for {thing}", "{area} is down since this morning", "Errors on {area} after the release",
                 "{area} times out for {thing}"),
    "question": ("How do we {task}?", "Best way to {task}", "Question about {area} limits"),
    "problem": ("{area} behaves unexpectedly for {thing}", "Recurring errors in {area}", "{area} is slow for {thing}"),
    "service_request": ("Please {task}", "Request: {task}"),
    "change": ("Planned change: {task}", "Apply the security patch to {area}"),
    "integration_support": ("Integration of {area} with {system}", "{system} connector drops {thing}"),
    "enablement": ("Session on {area}", "Enablement: how to {task}"),
    "developer_support": ("API call to {area} returns an error", "SDK question about {area}"),
    "product_support": ("Cannot find the setting for {area}", "How does {area} handle {thing}?"),
    "feature_request": ("Feature request: {task}", "Please support {thing} in {area}"),
}
DESCRIPTIONS = (
    "Since {day} we see this on {area} for {thing}. It worked before the last release.",
    "We need this for a launch next month. The team tried the documented steps without success.",
    "Reported by several users of {area}. Screenshots and logs are available on request.",
    "Low urgency, but we would like to understand how {area} is meant to work here.",
)
STAFF_REPLIES = (
    "Thank you for the details. We are looking into the {area} and will update you shortly.",
    "We reproduced the issue on our side; a fix is being prepared and we will tell you when it is released.",
    "Could you send us the request id and the time it happened? That lets us find it in the logs.",
    "This is expected behaviour: the documentation centre describes how {area} works in this case.",
    "The change has been applied. Please verify on your side and tell us if anything looks wrong.",
    "We found the cause in the {area} configuration and corrected it.",
)
CUSTOMER_COMMENTS = (
    "Here are the logs you asked for.", "It happened again this morning on {area}.", "Thanks, that solved it.",
    "We still see the problem for {thing}.", "Attached is the export file with the affected records.",
    "Can you give us an estimate for the fix?",
)
INTERNAL_NOTES = (
    "Escalated to the platform team.", "Looks related to last week's deployment of the {area}.",
    "Waiting for the vendor's answer.", "Checked the logs: timeouts on the database side.",
    "Customer has a custom {area} extension; check it first.",
)
EXHAUSTED_NOTE = "The support hours of this contract are used up for the period: asked the client manager about more."
TIME_NOTES = ("Analysis", "Reproduction", "Log review", "Call with the customer", "Fix and verification",
              "Documentation lookup", "Workaround tested")
CONSUME_REASONS = ("Expert services: {topic}", "Working session on {topic}", "Follow-up on {topic}",
                   "Review of {topic}")
ADVICE_REASONS = ("Advisory call on {topic}", "Q&A session: {topic}", "Short review: {topic}")
TOPICS = ("the data model", "the release plan", "API usage", "performance tuning", "the upgrade", "caching",
          "the search setup", "security settings", "the integration design")
REVERSE_REASONS = ("Recorded twice", "Logged on the wrong contract", "Waived as agreed with the customer")
ADJUST_REASONS = ("Correction agreed with the customer", "Time recorded outside the system")
OUTAGE_NOTES = ("Database failover in one region", "Degraded API after a faulty deployment",
                "Network incident at the hosting provider", "Search cluster unavailable", "")
CANCEL_REASONS = ("", "No longer needed", "Moved to next quarter", "Team unavailable")
BOOKING_NOTES = ("", "", "Please involve our lead developer.", "Focus on the upcoming release.")

# ---- programs as the generator sees them -------------------------------------------------------------------


@dataclass
class TypeInfo:
    code: str
    rules: TicketType
    severities: list[str]  # the severities it may be filed with ("" alone: none)
    severity_weights: list[float]  # cumulative
    partner_only: bool  # only a partner may file it (its channels, or its certification rules)
    exempt: bool  # no deduction for it


@dataclass
class PlanInfo:
    """One plan of a loaded program, with what the generator needs precomputed."""

    program_code: str
    plan_code: str
    plan_id: uuid.UUID
    program_id: uuid.UUID
    program: Program
    plan: Plan
    zone: ZoneInfo = field(init=False)
    types: list[TypeInfo] = field(init=False)
    type_weights: list[float] = field(init=False)  # cumulative
    first_response: dict[str, tuple[Any, int] | None] = field(init=False)  # severity -> (calendar, seconds)
    update_interval: dict[str, bool] = field(init=False)

    def __post_init__(self) -> None:
        self.zone = ZoneInfo(self.program.timezone)
        rules = self.plan
        deductions = rules.deductions
        self.types, self.type_weights = [], []
        for code, offered in rules.ticket_types.items():
            allowed = list(offered.severities) if offered.severities is not None else list(rules.severities)
            weights = [RANK_WEIGHTS.get(rules.severities[s].rank, 0.2) for s in allowed]
            partner_only = bool(offered.channels) and all("partner" in c for c in offered.channels)
            partner_only = partner_only or offered.requires_certified_partner or offered.requires_production_access
            exempt = deductions is None or offered.category in deductions.exempt_categories
            self.types.append(TypeInfo(code, offered, allowed or [""], _cumulative(weights or [1.0]), partner_only, exempt))
            self.type_weights.append(CATEGORY_WEIGHTS.get(offered.category, 1.0))
        self.type_weights = _cumulative(self.type_weights)
        self.first_response = {code: _target(self.program, s.first_response) for code, s in rules.severities.items()}
        self.update_interval = {code: s.update_interval is not None for code, s in rules.severities.items()}

    @property
    def key(self) -> tuple[str, str]:
        return (self.program_code, self.plan_code)

    def severity(self, code: str) -> Severity | None:
        return self.plan.severities.get(code)


def _target(program: Program, target: Any) -> tuple[Any, int] | None:
    if target is None or target.as_time_permits or target.duration_minutes is None:
        return None
    calendar = compile_calendar(program.calendars[target.calendar]) if target.calendar else None
    return calendar, int(target.duration_minutes) * 60


def _texts(rng: Random, variants: int = 64) -> dict[str, list[str]]:
    """Each kind of text, rendered in a few dozen variants once per run: customers pick from them."""

    def render(templates: Sequence[str]) -> list[str]:
        found = []
        for _ in range(variants):
            text = _one(rng, templates).format(
                area=_one(rng, AREAS), thing=_one(rng, THINGS), task=_one(rng, TASKS), system=_one(rng, SYSTEMS),
                topic=_one(rng, TOPICS), day=_one(rng, ("Monday", "yesterday", "the weekend", "last week")),
            )
            found.append(text[0].upper() + text[1:])
        return found

    pools = {f"subject:{category}": render(templates) for category, templates in SUBJECTS.items()}
    for name, templates in (
        ("description", DESCRIPTIONS), ("reply", STAFF_REPLIES), ("customer", CUSTOMER_COMMENTS),
        ("internal", INTERNAL_NOTES), ("consume:hours", CONSUME_REASONS), ("consume:activities", ADVICE_REASONS),
    ):
        pools[name] = render(templates)
    return pools


# ---- time --------------------------------------------------------------------------------------------------


def _cumulative(weights: Sequence[float]) -> list[float]:
    return list(accumulate(weights))


def _one(rng: Random, population: Sequence[Any]) -> Any:
    """`rng.choice`, by one draw of `random()` (choice, randint and randrange cost five times as much)."""
    return population[int(rng.random() * len(population))]


def _between(rng: Random, low: int, high: int) -> int:
    """`rng.randint(low, high)`, by one draw of `random()`."""
    return low + int(rng.random() * (high - low + 1))


def _below(rng: Random, high: int) -> int:
    """`rng.randrange(high)`, by one draw of `random()`."""
    return int(rng.random() * high)


def _pick(rng: Random, population: Sequence[Any], cumulative: list[float]) -> Any:
    """`rng.choices(population, weights)[0]` with the weights accumulated once."""
    return population[bisect.bisect(cumulative, rng.random() * cumulative[-1], 0, len(population) - 1)]


_last_instant: list[Any] = [None, None]


def _dt(seconds: int) -> datetime:
    """The UTC datetime of epoch seconds (the last one is kept: a step writes several rows at its instant)."""
    if seconds == _last_instant[0]:
        return _last_instant[1]
    found = datetime.fromtimestamp(seconds, UTC)
    _last_instant[0], _last_instant[1] = seconds, found
    return found


class Zones:
    """Local days of epoch seconds, fast: offsets cached per zone and UTC hour (every shipped zone changes
    its offset on a whole UTC hour)."""

    def __init__(self) -> None:
        self._offsets: dict[tuple[str, int], int] = {}

    def offset(self, zone: ZoneInfo, seconds: int) -> int:
        key = (zone.key, seconds // HOUR)
        found = self._offsets.get(key)
        if found is None:
            found = self._offsets[key] = int(datetime.fromtimestamp(key[1] * HOUR, zone).utcoffset().total_seconds())
        return found

    def day(self, zone: ZoneInfo, seconds: int) -> date:
        return date.fromordinal(_EPOCH_ORDINAL + (seconds + self.offset(zone, seconds)) // DAY)

    def midnight(self, zone: ZoneInfo, day: date) -> int:
        """The epoch second at which `day` starts in `zone`."""
        guess = (day.toordinal() - _EPOCH_ORDINAL) * DAY
        return guess - self.offset(zone, guess - self.offset(zone, guess))


# ---- the people every customer shares ------------------------------------------------------------------------


@dataclass
class PartnerInfo:
    id: uuid.UUID
    code: str
    name: str
    email: str
    certified_until: date | None
    users: list[Actor]


@dataclass(frozen=True)
class WorldSpec:
    """What a World is made of, small enough to hand to worker processes."""

    seed: int
    customers: int
    years: int
    now: datetime
    plans: list[tuple[Any, ...]]  # (program code, plan code, plan id, program id, program document)
    password_hash: str

    def build(self) -> tuple[World, R.RowSet]:
        """The World, and the rows of its fixed parts (staff, partners, program-wide outages)."""
        parsed: dict[str, Program] = {}
        infos = []
        for program_code, plan_code, plan_id, program_id, document in self.plans:
            if program_code not in parsed:
                parsed[program_code] = Program.model_validate(document)
            program = parsed[program_code]
            infos.append(PlanInfo(program_code, plan_code, plan_id, program_id, program, program.plans[plan_code]))
        world = World(seed=self.seed, customers=self.customers, years=self.years, now=self.now, plans=infos,
                      password_hash=self.password_hash)
        rows = R.RowSet()
        world.global_rows(rows)
        return world, rows


class World:
    """The run's fixed parts (programs, staff, partners) and the simulation of one customer at a time."""

    def __init__(self, *, seed: int, customers: int, years: int, now: datetime, plans: list[PlanInfo],
                 password_hash: str):
        self.seed, self.customers, self.years = seed, customers, years
        self.now_dt = now.astimezone(UTC).replace(microsecond=0)
        self.now = int(self.now_dt.timestamp())
        self.today = self.now_dt.date()
        self.start_day = self.today - timedelta(days=365 * years)
        self.password_hash = password_hash
        self.zones = Zones()
        self.system = Actor.system("generate")
        self.plans = {p.key: p for p in plans}
        self.programs: dict[str, list[PlanInfo]] = {}
        for info in plans:
            self.programs.setdefault(info.program_code, []).append(info)
        self.program_codes = sorted(self.programs)
        self.plan_list = sorted(plans, key=lambda p: p.key)
        self.program_weights = [PROGRAM_WEIGHTS.get(code, 0.2) for code in self.program_codes]
        self.staff: dict[str, list[tuple[tuple, Actor]]] = {}
        self.texts = _texts(Random(f"{seed}:texts"))
        self.partners: list[PartnerInfo] = []

    # ---- global rows -----------------------------------------------------------------------------------------

    def global_rows(self, out: R.RowSet) -> None:
        """Staff, partners and their users, and program-wide outages."""
        rng = Random(f"{self.seed}:global")
        ids = R.Ids(rng)
        n = self.customers
        founded = self.now - (365 * self.years + 60) * DAY
        roles = (("admin", 3), ("client_manager", max(2, -(-n // 250))), ("support_engineer", max(3, -(-n // 100))))
        for role, how_many in roles:
            found = self.staff.setdefault(role, [])
            for k in range(how_many):
                first, last = _one(rng, FIRST_NAMES), _one(rng, LAST_NAMES)
                email = f"{first}.{last}.{role.replace('_', '-')}{k + 1}@staff.generated.example".lower()
                at = founded + _below(rng, 30 * DAY)
                row = R.user(ids(), email, f"{first} {last}", self.password_hash, "staff", _dt(at), staff_role=role)
                out.add("users", row)
                self._audit_user(out, ids, row, at)
                found.append((row, R.user_actor(row)))
        for k in range(max(2, n // 50)):
            code = f"gen-partner-{k + 1:04d}"
            name = f"{_one(rng, COMPANY_WORDS)} {_one(rng, PARTNER_WORDS)}"
            at = founded + _below(rng, 30 * DAY)
            roll = rng.random()
            certified = (
                self.today + timedelta(days=_between(rng, 30, 500)) if roll < 0.7
                else self.today - timedelta(days=_between(rng, 1, 300)) if roll < 0.8 else None
            )
            partner_id = ids()
            out.add("partners", R.partner(partner_id, code, name, f"support@{code}.example", certified, _dt(at)))
            out.add("audit_log", R.audit(ids(), _dt(at), self.system, "partner.create", "partner", partner_id,
                                         detail={"code": code}))
            users = []
            for j in range(_one(rng, (1, 1, 2, 3))):
                first, last = _one(rng, FIRST_NAMES), _one(rng, LAST_NAMES)
                row = R.user(ids(), f"{first}.{last}.{j + 1}@{code}.example", f"{first} {last} ({name})",
                             self.password_hash, "partner", _dt(at + HOUR), partner_id=partner_id)
                out.add("users", row)
                self._audit_user(out, ids, row, at + HOUR)
                users.append(R.user_actor(row))
            self.partners.append(PartnerInfo(partner_id, code, name, f"support@{code}.example", certified, users))
        admin = self.staff["admin"][0][1]
        for code in self.program_codes:
            infos = self.programs[code]
            if not any(info.plan.availability is not None for info in infos):
                continue
            months = 12 * self.years
            for _ in range(months):
                start = self.now - _below(rng, 365 * self.years * DAY)
                self._outage(out, ids, rng, admin, start, program=infos[0])

    def _audit_user(self, out: R.RowSet, ids: R.Ids, row: tuple, at: int) -> None:
        out.add("audit_log", R.audit(ids(), _dt(at), self.system, "user.create", "user", row[0], row[6],
                                     {"email": row[1], "kind": row[4]}))

    def _outage(self, out: R.RowSet, ids: R.Ids, rng: Random, actor: Actor, start: int, *, program: PlanInfo | None = None,
                contract: Contract | None = None) -> None:
        minutes = _one(rng, (5, 10, 15, 20, 30, 45, 60, 90, 120, 240))
        end = start + minutes * MINUTE
        recorded = end + _between(rng, 10 * MINUTE, 2 * DAY)
        if recorded > self.now:
            return
        portion = _one(rng, (Decimal("1"), Decimal("0.5"), Decimal("0.25"), Decimal("0.1"),
                              Decimal(_between(rng, 500, 10_000)) / 10_000))
        row = R.outage(ids(), _dt(start), _dt(end), portion, actor, _dt(recorded),
                       contract_id=None if contract is None else contract.id,
                       program_id=program.program_id if program is not None else None, note=_one(rng, OUTAGE_NOTES))
        out.add("outages", row)
        scope = {"program": program.program_code} if program is not None else {"contract": contract.reference}
        out.add("audit_log", R.audit(ids(), _dt(recorded), actor, "outage.record", "outage", row[0],
                                     None if contract is None else contract.customer_id, R.outage_detail(row, scope)))

    # ---- one customer ----------------------------------------------------------------------------------------

    def customer_rows(self, index: int, out: R.RowSet) -> None:
        CustomerRun(self, index, out).run()


@dataclass
class Contract:
    id: uuid.UUID
    reference: str
    customer_id: uuid.UUID
    info: PlanInfo
    effective: date
    end: date
    created_at: int
    allowances: dict[str, int]
    offers: dict[str, Offer]
    client_manager: Actor | None
    client_manager_id: uuid.UUID | None
    client_manager_email: str | None
    starts: int = 0  # epoch seconds of the term's first and last local instant
    ends: int = 0
    periods: dict[str, list[Period]] = field(default_factory=dict)
    period_starts: dict[str, list[date]] = field(default_factory=dict)

    def period(self, bucket: str, day: date) -> Period | None:
        if not self.effective <= day <= self.end:
            return None
        found = self.period_starts[bucket]
        return self.periods[bucket][bisect.bisect_right(found, day) - 1]


@dataclass
class Link:
    partner: PartnerInfo
    managed: bool
    production_access: bool
    can_file_tickets: bool
    can_book_activities: bool


class TicketState:
    __slots__ = (
        "id", "contract", "type", "severity", "status", "position", "filer", "created", "resolved_at",
        "answered", "exhausted", "opened", "logged", "held", "time_entries", "subject", "engineer", "ref", "history",
    )

    def __init__(self) -> None:
        self.position = 0
        self.status = "new"
        self.resolved_at: int | None = None
        self.answered = self.exhausted = self.opened = False
        self.logged = 0
        self.held: dict[tuple[str, date, date], int] = {}
        self.history: list[_Event] = []  # its events, as the SLA clocks read them
        self.time_entries: dict[int, tuple[uuid.UUID, int]] = {}  # planned number -> (id, minutes left to correct)


class _Event:
    """A ticket event as `tickets.next_due` reads it."""

    __slots__ = ("at", "automatic", "kind", "next_update_at", "plan", "severity")

    def __init__(self, kind: str, at: datetime, severity: str | None, plan: str | None, automatic: bool,
                 next_update_at: datetime | None):
        self.kind, self.at, self.severity, self.plan = kind, at, severity, plan
        self.automatic, self.next_update_at = automatic, next_update_at


class BookingState:
    __slots__ = ("id", "contract", "offer", "period", "day", "requested_by", "status", "created", "updated",
                 "revision", "starts_at", "ends_at", "staff", "delivered_at", "delivery_note", "cancelled_at",
                 "cancel_reason", "entry", "note", "partners")


class CustomerRun:
    """Everything of one customer: its contracts, partner links, users, usage, bookings and tickets."""

    def __init__(self, world: World, index: int, out: R.RowSet):
        self.w = world
        self.i = index
        self.out = out
        self.rng = Random(f"{world.seed}:customer:{index}")
        self.ids = R.Ids(self.rng)
        tables = out.tables
        self.add_audit = tables["audit_log"].append
        self.add_event = tables["ticket_events"].append
        self.add_comment_row = tables["ticket_comments"].append
        self.add_entry = tables["ledger_entries"].append
        self.add_time_entry = tables["time_entries"].append
        self.steps: list[tuple[int, int, Callable[..., None], Any, Any]] = []
        self.order = count()  # ties between steps at one instant go in the order they were planned
        self.balances: dict[tuple[uuid.UUID, str, date], list[Any]] = {}
        self.tickets: list[TicketState] = []
        self.bookings: list[BookingState] = []

    # ---- helpers ---------------------------------------------------------------------------------------------

    def step(self, at: int, fn: Callable[..., None], subject: Any = None, arg: Any = None) -> None:
        self.steps.append((at, next(self.order), fn, subject, arg))

    def audit(self, at: int, actor: Actor, action: str, target_type: str, target_id: object,
              detail: dict[str, Any] | None = None) -> None:
        self.add_audit(R.audit(self.ids(), _dt(at), actor, action, target_type, target_id, self.customer_id,
                                          detail))

    def text(self, pool: str) -> str:
        return _one(self.rng, self.w.texts[pool])

    # ---- the customer ---------------------------------------------------------------------------------------

    def run(self) -> None:
        w, rng = self.w, self.rng
        self.customer_id = self.ids()
        self.code = f"gen-{self.i:06d}"
        plans = self._plan_contracts()
        first_created = min(at for _, _, _, at in plans)
        created = first_created - _between(rng, 1, 10) * DAY - _below(rng, 8 * HOUR)
        country, suffix = _one(rng, COUNTRIES)
        name = f"{_one(rng, COMPANY_WORDS)} {_one(rng, SECTORS)}{suffix}"
        contacts = [f"finance@{self.code}.example", f"it@{self.code}.example"] if rng.random() < 0.2 else []
        self.out.add("customers", R.customer(self.customer_id, self.code, name, f"it@{self.code}.example", country,
                                             _dt(created), contacts))
        self.audit(created, w.system, "customer.create", "customer", self.customer_id, {"code": self.code})
        if contacts:
            self.audit(created + MINUTE, w.system, "customer.report_contacts", "customer", self.customer_id,
                       {"before": [], "after": contacts})
        self.users = self._users(created)
        self.links = self._links(created, plans)
        self.engineers = [a for _, a in rng.sample(w.staff["support_engineer"], k=min(3, len(w.staff["support_engineer"])))]
        self.activity = math.exp(rng.gauss(0, 0.6)) / 1.2
        self.contracts = [self._contract(k, *plan) for k, plan in enumerate(plans, start=1)]
        for contract in self.contracts:
            self._plan_usage(contract)
            self._plan_outages(contract)
        self._plan_tickets()
        self.steps.sort(key=_step_order)
        now = w.now
        for at, _, fn, subject, arg in self.steps:
            if at <= now:
                fn(at, subject, arg)
        self._finish()
        # The steps hold this run's bound methods: without them it is freed by reference counting alone
        # (the generator turns the cyclic garbage collector off while it builds a batch).
        self.steps.clear()

    def _plan_contracts(self) -> list[tuple[PlanInfo, date, date, int]]:
        w, rng = self.w, self.rng
        horizon = (w.today - w.start_day).days
        chosen: list[tuple[PlanInfo, date, date]] = []
        program = rng.choices(w.program_codes, w.program_weights)[0]
        # The first customers take every plan once, so that even a small set has each of them.
        first = w.plan_list[self.i] if self.i < len(w.plan_list) else None
        for _ in range(2):
            infos = w.programs[program if first is None else first.program_code]
            weights = [PLAN_WEIGHTS.get(program, {}).get(info.plan_code, 1.0 / len(infos)) for info in infos]
            info = rng.choices(infos, weights)[0] if first is None else first
            program, first = info.program_code, None
            effective = w.today - timedelta(days=_between(rng, 14, horizon))
            end = add_months(effective, rng.choices((12, 24, 36), (0.25, 0.3, 0.45))[0]) - timedelta(days=1)
            chosen.append((info, effective, end))
            while end < w.today and rng.random() < RENEWAL:
                if rng.random() < 0.15:
                    info = _one(rng, infos)
                effective = end + timedelta(days=1)
                end = add_months(effective, _one(rng, (12, 24))) - timedelta(days=1)
                chosen.append((info, effective, end))
            if rng.random() >= SECOND_PROGRAM:
                break
            others = [code for code in w.program_codes if code != program]
            if not others:
                break
            program = _one(rng, others)
        found = []
        for info, effective, end in chosen:
            created = w.zones.midnight(info.zone, effective) - _between(rng, 1, 20) * DAY + _between(rng, 8, 17) * HOUR
            found.append((info, effective, end, min(created, w.now - HOUR)))
        return found

    def _users(self, created: int) -> list[Actor]:
        rng, found = self.rng, []
        for j in range(1 + (rng.random() < 0.5) + (rng.random() < 0.2)):
            first, last = _one(rng, FIRST_NAMES), _one(rng, LAST_NAMES)
            at = created + _between(rng, 1, 12) * HOUR
            row = R.user(self.ids(), f"{first}.{last}.{j + 1}@{self.code}.example", f"{first} {last}",
                         self.w.password_hash, "customer", _dt(min(at, self.w.now)), customer_id=self.customer_id)
            self.out.add("users", row)
            self.audit(min(at, self.w.now), self.w.system, "user.create", "user", row[0],
                       {"email": row[1], "kind": "customer"})
            found.append(R.user_actor(row, _one(self.rng, ("portal", "portal", "graphql"))))
        return found

    def _links(self, created: int, plans: list) -> list[Link]:
        w, rng = self.w, self.rng
        intermediated = any(info.program.partners is not None and info.program.partners.intermediated
                            for info, *_ in plans)
        links: list[Link] = []
        if not w.partners or rng.random() >= (0.85 if intermediated else 0.12):
            return links
        for partner in rng.sample(w.partners, k=min(len(w.partners), 1 + (rng.random() < 0.05))):
            managed = rng.random() < (0.9 if intermediated else 0.5)
            link = R.partner_link(
                partner.id, self.customer_id, managed=managed, production_access=rng.random() < 0.6,
                created_at=_dt(min(created + _between(rng, 1, 12) * HOUR, w.now)),
                can_file_tickets=rng.random() < 0.9, can_view_entitlements=rng.random() < 0.95,
                can_book_activities=rng.random() < (0.4 if managed else 0.2),
            )
            self.out.add("partner_customers", link)
            self.audit(int(link[7].timestamp()), w.system, "partner.link", "partner", partner.id,
                       R.partner_link_detail(link))
            links.append(Link(partner, managed, link[3], link[4], link[6]))
        return links

    def _contract(self, k: int, info: PlanInfo, effective: date, end: date, created: int) -> Contract:
        w, rng = self.w, self.rng
        rules = info.plan
        allowances: dict[str, int] = {}
        for code, bucket in rules.buckets.items():
            if bucket.allowance == "contract":
                allowances[code] = (
                    _one(rng, (8, 10, 12, 15, 20, 25, 30)) if bucket.unit == "activities"
                    else _one(rng, range(200, 601, 25)) * 60
                )
        offers = contract_catalog(info.program, rules, None)
        catalog = None
        if len(offers) > 3 and rng.random() < 0.05:
            catalog = sorted(rng.sample(list(offers), k=_between(rng, 2, len(offers) - 1)), key=list(offers).index)
            offers = contract_catalog(info.program, rules, catalog)
        manager_row = None
        if offers or "assigned-client-manager" in rules.features or rng.random() < 0.4:
            manager_row, manager = _one(rng, w.staff["client_manager"])
        base = MONTHLY_FEES.get(info.plan_code, 1000)
        fee = Decimal(int(base * rng.uniform(0.9, 1.1) / 10) * 10).quantize(Decimal("0.01"))
        reference = f"GEN-{self.i:06d}-{k}"
        row = R.contract(self.ids(), reference, self.customer_id, info.plan_id, effective, end, fee,
                         info.program.currency, _dt(created), custom_allowances=allowances, catalog=catalog,
                         client_manager_id=None if manager_row is None else manager_row[0])
        self.out.add("contracts", row)
        self.audit(created, w.system, "contract.create", "contract", row[0],
                   {"reference": reference, "plan": f"{info.program_code}/{info.plan_code}"})
        contract = Contract(
            row[0], reference, self.customer_id, info, effective, end, created, allowances, offers,
            None if manager_row is None else manager, None if manager_row is None else manager_row[0],
            None if manager_row is None else manager_row[1],
        )
        contract.starts = w.zones.midnight(info.zone, effective)
        contract.ends = w.zones.midnight(info.zone, end + timedelta(days=1)) - 1
        for code, bucket in rules.buckets.items():
            periods = periods_of_term(effective_date=effective, end_date=end, length=bucket.period, anchor=bucket.anchor)
            contract.periods[code] = periods
            contract.period_starts[code] = [p.start for p in periods]
        return contract

    def allowance(self, contract: Contract, bucket: str) -> int:
        found = contract.allowances.get(bucket)
        if found is not None:
            return found
        rules = contract.info.plan.buckets[bucket]
        return int(rules.to_ledger_units(rules.allowance))

    # ---- the ledger ------------------------------------------------------------------------------------------

    def post(self, at: int, actor: Actor, contract: Contract, bucket: str, period: Period, units: int, kind: str,
             reason: str, request_hash: str, *, column: str = "consumed", **links: Any) -> tuple | None:
        """`ledger.post`: move the balance within its guards and write the entry and its audit row; None
        (nothing written) when the guard refuses."""
        key = (contract.id, bucket, period.start)
        row = self.balances.get(key)
        if row is None:
            row = self.balances[key] = [period.end, self.allowance(contract, bucket), 0, 0, at]
        if column == "consumed":
            if not 0 <= row[2] + units <= row[1]:
                return None
            row[2] += units
        else:
            if row[3] + units < 0:
                return None
            row[3] += units
        row[4] = at
        entry = R.ledger_entry(self.ids(), contract.id, bucket, period.start, period.end, units, kind, reason, actor,
                               _dt(at), request_hash, **links)
        self.add_entry(entry)
        self.add_audit(R.ledger_audit(self.ids(), entry, actor, contract.reference, self.customer_id))
        return entry

    def remaining(self, contract: Contract, bucket: str, period: Period) -> int:
        row = self.balances.get((contract.id, bucket, period.start))
        return self.allowance(contract, bucket) - (row[2] if row is not None else 0)

    # ---- consumption and bookings -----------------------------------------------------------------------------

    def _plan_usage(self, contract: Contract) -> None:
        w, rng = self.w, self.rng
        rules = contract.info.plan
        deducted = rules.deductions.bucket if rules.deductions is not None else None
        for code, bucket in rules.buckets.items():
            if code == deducted:
                continue  # support hours go with the tickets
            allowance = self.allowance(contract, code)
            offers = [o for o in contract.offers.values() if o.bucket_code == code and o.units <= allowance]
            share = (0.75 if bucket.unit == "activities" else 0.12) if offers else 0.0
            increment = bucket.increment
            for period in contract.periods[code]:
                lo = max(w.zones.midnight(contract.info.zone, period.start), contract.created_at)
                hi = min(w.zones.midnight(contract.info.zone, period.end + timedelta(days=1)), w.now)
                if hi <= lo:
                    break
                full = (period.end - period.start).days + 1
                elapsed = min(1.0, (hi - lo) / (full * DAY))
                use = min(1.0, self.activity * rng.uniform(0.8, 1.3)) * elapsed
                target, total = allowance * use, 0
                while total < target:
                    if rng.random() < share:
                        offer = _one(rng, offers)
                        total += offer.units
                        self._plan_booking(contract, offer, period)
                    else:
                        if bucket.unit == "activities":
                            units = _one(rng, (1, 1, 1, 2))
                        else:
                            units = max(increment, -(-_one(rng, CONSUME_MINUTES) // increment) * increment)
                        total += units
                        at = lo + _below(rng, hi - lo)
                        self.step(at, self.s_consume, contract, (code, units))
                if rng.random() < 0.015:
                    at = lo + _below(rng, hi - lo)
                    units = (1 if bucket.unit == "activities" else max(increment, 30 // increment * increment))
                    self.step(at, self.s_adjust, contract, (code, units if rng.random() < 0.5 else -units))

    def s_consume(self, at: int, contract: Contract, arg: tuple[str, int]) -> None:
        """`ledger.consume_entitlement` today, by the client manager or a support engineer."""
        code, units = arg
        rng = self.rng
        day = self.w.zones.day(contract.info.zone, at)
        period = contract.period(code, day)
        if period is None:
            return
        actor = contract.client_manager if contract.client_manager is not None and rng.random() < 0.6 else _one(rng, self.engineers)
        bucket = contract.info.plan.buckets[code]
        reason = self.text(f"consume:{bucket.unit}")
        key = f"consume-{self.ids().hex}" if rng.random() < 0.5 else None
        request_hash = R.consume_hash(code, units, reason)
        entry = self.post(at, actor, contract, code, period, units, "consume", reason, request_hash,
                          idempotency_key=key)
        if entry is not None and rng.random() < 0.02:
            later = at + _between(rng, HOUR, 10 * DAY)
            self.step(later, self.s_reverse, contract, entry)

    def s_reverse(self, at: int, contract: Contract, entry: tuple) -> None:
        """`ledger.reverse_entry`: give back what an entry took, to its own period."""
        actor = contract.client_manager or self.w.staff["admin"][0][1]
        reason = _one(self.rng, REVERSE_REASONS)
        period = Period(0, entry[3], entry[4])
        self.post(at, actor, contract, entry[2], period, -entry[5], "reverse", reason,
                  R.hash_request("reverse", entry=entry[0], reason=reason), on_behalf_of=entry[10],
                  reverses=entry[0], ticket_id=entry[14], time_entry_id=entry[15])

    def s_adjust(self, at: int, contract: Contract, arg: tuple[str, int]) -> None:
        """`ledger.adjust_entitlement` by an admin, either way, within [0, allowance]."""
        code, units = arg
        day = self.w.zones.day(contract.info.zone, at)
        period = contract.period(code, day)
        if period is None:
            return
        reason = _one(self.rng, ADJUST_REASONS)
        request_hash = R.hash_request("adjust", bucket=code, quantity=str(units), on=day, reason=reason)
        self.post(at, self.w.staff["admin"][0][1], contract, code, period, units, "adjust", reason, request_hash)

    def _booker(self, contract: Contract) -> Actor:
        rng = self.rng
        roll = rng.random()
        bookers = [link for link in self.links if link.managed and link.can_book_activities and link.partner.users]
        if roll < 0.1 and bookers:
            return _one(rng, _one(rng, bookers).partner.users)
        if roll < 0.4 and contract.client_manager is not None:
            return contract.client_manager
        return _one(rng, self.users)

    def _plan_booking(self, contract: Contract, offer: Offer, period: Period) -> None:
        rng, zones = self.rng, self.w.zones
        zone = contract.info.zone
        first, last = max(period.start, contract.effective), min(period.end, contract.end)
        day = first + timedelta(days=_between(rng, 0, (last - first).days))
        starts_at = zones.midnight(zone, day) + _between(rng, 9, 15) * HOUR
        requested = max(starts_at - _between(rng, 2, 30) * DAY - _between(rng, 0, 8) * HOUR, contract.created_at + HOUR)
        if requested >= starts_at - HOUR or zones.day(zone, requested) > day:
            return
        booking = BookingState()
        booking.contract, booking.offer, booking.period, booking.day = contract, offer, period, day
        booking.starts_at = starts_at
        booking.requested_by = self._booker(contract)
        self.step(requested, self.s_book, booking)
        roll = rng.random()
        if roll < 0.85 and contract.client_manager is not None:
            scheduled = requested + min(_between(rng, 2 * HOUR, 5 * DAY), (starts_at - requested) // 2)
            self.step(scheduled, self.s_schedule, booking)
            if rng.random() < 0.08:
                self.step(scheduled + (starts_at - scheduled) // 2, self.s_cancel, booking)
            else:
                minutes = offer.units if offer.bucket.ledger_unit == "minutes" else 60
                self.step(starts_at + minutes * MINUTE + _between(rng, 10 * MINUTE, 3 * DAY), self.s_deliver, booking)
        elif rng.random() < 0.7:
            self.step(requested + (starts_at - requested) // 2, self.s_cancel, booking)

    def s_book(self, at: int, booking: BookingState, _: Any) -> None:
        """`bookings.book_activity`: the booking and its consumption, or nothing when the quota is short."""
        rng = self.rng
        contract, offer, actor = booking.contract, booking.offer, booking.requested_by
        booking.id = self.ids()
        booking.note = _one(rng, BOOKING_NOTES)
        partners = []
        if actor.kind != "staff":
            allowed = [link.partner for link in self.links if link.can_book_activities]
            if actor.kind == "partner":
                allowed = [link.partner for link in self.links if link.partner.id == actor.partner_id]
            if allowed and rng.random() < 0.3:
                partners = [_one(rng, allowed).id]
        request_hash = R.hash_request("book", activity=offer.code, on=booking.day, note=booking.note,
                                      partners=sorted(str(p) for p in partners))
        entry = self.post(at, actor, contract, offer.bucket_code, booking.period, offer.units, "consume",
                          f"Booked: {offer.activity.name}", request_hash,
                          on_behalf_of=contract.customer_id if actor.kind == "partner" else None, booking_id=booking.id)
        if entry is None:
            booking.id = None
            return
        booking.entry, booking.partners = entry, partners
        booking.status, booking.created, booking.updated, booking.revision = "requested", at, at, 0
        booking.staff = booking.ends_at = booking.delivered_at = booking.delivery_note = None
        booking.cancelled_at = booking.cancel_reason = None
        self.bookings.append(booking)
        for partner_id in partners:
            self.out.add("booking_partners", R.booking_partner(booking.id, partner_id, actor, _dt(at)))
        self.audit(at, actor, "booking.create", "booking", booking.id, {
            "contract": contract.reference, "activity": offer.code, "on": booking.day.isoformat(),
            "units": offer.units, "partners": [str(p) for p in partners],
        })

    def s_schedule(self, at: int, booking: BookingState, _: Any) -> None:
        if getattr(booking, "id", None) is None or booking.status != "requested":
            return
        contract = booking.contract
        manager = contract.client_manager
        minutes = booking.offer.units if booking.offer.bucket.ledger_unit == "minutes" else 60
        booking.status, booking.revision, booking.updated = "scheduled", booking.revision + 1, at
        booking.ends_at = booking.starts_at + minutes * MINUTE
        booking.staff = contract.client_manager_id
        self.audit(at, manager, "booking.schedule", "booking", booking.id, {
            "starts_at": _dt(booking.starts_at).isoformat(), "minutes": minutes, "staff": contract.client_manager_email,
        })

    def s_deliver(self, at: int, booking: BookingState, _: Any) -> None:
        if getattr(booking, "id", None) is None or booking.status != "scheduled":
            return
        booking.status, booking.revision, booking.updated = "delivered", booking.revision + 1, at
        booking.delivered_at = at
        booking.delivery_note = "Took place as planned." if self.rng.random() < 0.5 else None
        self.audit(at, booking.contract.client_manager, "booking.deliver", "booking", booking.id)

    def s_cancel(self, at: int, booking: BookingState, _: Any) -> None:
        """`bookings.cancel_booking`: the units go back to the period charged."""
        if getattr(booking, "id", None) is None or booking.status not in ("requested", "scheduled"):
            return
        rng = self.rng
        actor = booking.requested_by if rng.random() < 0.7 else (booking.contract.client_manager or booking.requested_by)
        text = _one(rng, CANCEL_REASONS)
        taken = booking.entry
        reason = f"Cancelled: {booking.offer.activity.name}" + (f" ({text})" if text else "")
        request_hash = R.hash_request("reverse", bucket=taken[2], quantity=-taken[5], period=taken[3], reason=reason,
                                      ticket=None, time_entry=None, booking=booking.id, reverses=taken[0])
        entry = self.post(at, actor, booking.contract, taken[2], booking.period, -taken[5], "reverse", reason,
                          request_hash, on_behalf_of=taken[10], reverses=taken[0], booking_id=booking.id)
        if entry is None:  # pragma: no cover - a booking's own units are always part of what was consumed
            return
        booking.status, booking.revision, booking.updated = "cancelled", booking.revision + 1, at
        booking.cancelled_at, booking.cancel_reason = at, text or None
        self.audit(at, actor, "booking.cancel", "booking", booking.id, {"reason": text, "units": taken[5]})

    # ---- outages -------------------------------------------------------------------------------------------

    def _plan_outages(self, contract: Contract) -> None:
        if contract.info.plan.availability is None:
            return
        w, rng = self.w, self.rng
        # The term in UTC days, as `availability.record_outage` checks it.
        term_start = (contract.effective.toordinal() - _EPOCH_ORDINAL) * DAY
        term_end = (contract.end.toordinal() + 1 - _EPOCH_ORDINAL) * DAY
        lo, hi = max(term_start, w.now - 365 * w.years * DAY), min(term_end - 4 * HOUR, w.now - DAY)
        if hi <= lo:
            return
        expected = (hi - lo) / (30 * DAY) * 0.25 * self.activity
        count = int(expected) + (rng.random() < expected - int(expected))
        actor = contract.client_manager or w.staff["admin"][0][1]
        for _ in range(count):
            w._outage(self.out, self.ids, rng, actor, lo + _below(rng, hi - lo), contract=contract)

    # ---- tickets -----------------------------------------------------------------------------------------------

    def _plan_tickets(self) -> None:
        w, rng, zones = self.w, self.rng, self.w.zones
        for contract in self.contracts:
            info = contract.info
            if not info.types:
                continue
            lo, hi = contract.starts, min(contract.ends, w.now - MINUTE)
            if hi <= lo:
                continue
            rate = TICKETS_PER_MONTH.get(info.key, 5.0) * TICKET_SCALE * self.activity
            expected = (hi - lo) / (30.44 * DAY) * rate
            count = int(expected) + (rng.random() < expected - int(expected))
            for _ in range(count):
                at = lo + _below(rng, hi - lo)
                if rng.random() < 0.75:  # most requests come in office hours
                    midnight = at - (at + zones.offset(info.zone, at)) % DAY
                    at = min(max(midnight + _between(rng, 8 * HOUR, 17 * HOUR), lo), hi)
                self._plan_ticket(contract, at)

    def _in_force(self, at: int) -> list[Contract]:
        zones = self.w.zones
        return [c for c in self.contracts if c.effective <= zones.day(c.info.zone, at) <= c.end]

    def _filer(self, contract: Contract, kind: TypeInfo, day: date) -> Actor | None:
        """Who files: a user of the customer, or of a partner linked to it that may file (and, for types that
        need one, a certified partner with production access)."""
        rng = self.rng
        rules = kind.rules
        partners = [link for link in self.links if link.can_file_tickets and link.partner.users]
        if rules.requires_certified_partner:
            partners = [l for l in partners if l.partner.certified_until is not None and l.partner.certified_until >= day]
        if rules.requires_production_access:
            partners = [l for l in partners if l.production_access]
        if kind.partner_only:
            return _one(rng, _one(rng, partners).partner.users) if partners else None
        if partners and rng.random() < (0.7 if any(l.managed for l in partners) else 0.2):
            return _one(rng, _one(rng, partners).partner.users)
        return _one(rng, self.users)

    def _plan_ticket(self, contract: Contract, at: int) -> None:
        rng = self.rng
        info = contract.info
        kind = _pick(rng, info.types, info.type_weights)
        # The contract `access.check_filing` files it on: the first in force, by reference, offering the type.
        for candidate in self._in_force(at):
            if kind.code in candidate.info.plan.ticket_types:
                contract = candidate
                break
        info = contract.info
        kind = next(t for t in info.types if t.code == kind.code)
        filer = self._filer(contract, kind, self.w.zones.day(info.zone, at))
        if filer is None:
            return
        ticket = TicketState()
        ticket.contract, ticket.type, ticket.filer, ticket.created = contract, kind, filer, at
        ticket.severity = _pick(rng, kind.severities, kind.severity_weights)
        ticket.engineer = _one(rng, self.engineers)
        self.step(at, self.t_open, ticket)
        target = info.first_response.get(ticket.severity)
        t = at
        if rng.random() < 0.3:
            t += _between(rng, 2 * MINUTE, 45 * MINUTE)
            self.step(t, self.t_acknowledge, ticket)
        # The first reply: mostly within the first-response target (in the target's open time), sometimes late.
        share = rng.uniform(0.05, 0.9) if rng.random() < 0.85 else rng.uniform(1.05, 3.0)
        if target is not None:
            calendar, seconds = target
            due = int(seconds * share)
            reply = calendar.add_seconds(at, due) if calendar is not None else at + due
        else:
            reply = at + _between(rng, 30 * MINUTE, 2 * DAY)
        reply = max(reply, t + MINUTE) + _between(rng, 0, 59)
        if rng.random() < 0.1:
            self.step(reply - _between(rng, 1, 20) * MINUTE if reply - 25 * MINUTE > t else reply, self.t_note, ticket)
        self.step(reply, self.t_reply, ticket)
        t = reply
        updates = info.update_interval.get(ticket.severity, False)
        for _ in range(_pick(rng, _ROUNDS, _ROUNDS_WEIGHTS)):
            t += _between(rng, 30 * MINUTE, 2 * DAY)
            if rng.random() < 0.3:
                self.step(t, self.t_waiting, ticket)
                t += _between(rng, HOUR, 3 * DAY)
                self.step(t, self.t_customer_comment, ticket)
            else:
                if rng.random() < 0.5:
                    self.step(t, self.t_customer_comment, ticket)
                    t += _between(rng, 20 * MINUTE, DAY)
                self.step(t, self.t_reply, ticket, _between(rng, 30, 240) * MINUTE if updates and rng.random() < 0.5 else None)
            if rng.random() < 0.15:
                t += _between(rng, 5 * MINUTE, 3 * HOUR)
                self.step(t, self.t_note, ticket)
        if len(kind.severities) > 1 and rng.random() < 0.03:
            t += _between(rng, 5 * MINUTE, HOUR)
            self.step(t, self.t_severity, ticket, _one(rng, [s for s in kind.severities if s != ticket.severity]))
        worked = t - at
        logs = _pick(rng, _LOG_COUNTS, _TIME_LOGS_EXEMPT if kind.exempt else _TIME_LOGS)
        for number in range(logs):
            logged = at + MINUTE + _below(rng, max(worked, HOUR))
            minutes = _one(rng, (15, 15, 20, 30, 30, 45, 60))
            self.step(logged, self.t_log_time, ticket, (number, minutes))
            if rng.random() < 0.03:
                self.step(logged + _between(rng, HOUR, DAY), self.t_log_time, ticket, (number, -_one(rng, (5, 10, 15))))
        t = max(t, at + worked) + _between(rng, HOUR, 5 * DAY)
        self.step(t, self.t_resolve, ticket)
        if rng.random() < 0.04:
            t += _between(rng, HOUR, (REOPEN_DAYS - 4) * DAY)
            self.step(t, self.t_reopen, ticket)
            t += _between(rng, 30 * MINUTE, DAY)
            self.step(t, self.t_reply, ticket)
            t += _between(rng, 2 * HOUR, 3 * DAY)
            self.step(t, self.t_resolve, ticket)
        if rng.random() < 0.75:
            self.step(t + _between(rng, HOUR, 7 * DAY), self.t_close, ticket)

    # The steps of a ticket's life, each as its service function writes it.

    def event(self, ticket: TicketState, at: int, actor: Actor, kind: str, **fields: Any) -> None:
        ticket.position += 1
        row = R.ticket_event(self.ids(), ticket.id, ticket.position, kind, _dt(at), actor.kind, actor.ref, **fields)
        self.add_event(row)
        ticket.history.append(_Event(kind, row[4], row[7], row[8], row[9], row[10]))

    def transition(self, ticket: TicketState, at: int, actor: Actor, to: str, kind: str | None, reason: str = "") -> None:
        """`tickets.transition_ticket`: the status, its SLA event and the audit row."""
        before = ticket.status
        ticket.status = to
        if to == "resolved":
            ticket.resolved_at = at
        elif kind == "reopened":
            ticket.resolved_at = None
        if kind is not None:
            self.event(ticket, at, actor, kind)
        self.audit(at, actor, "ticket.transition", "ticket", ticket.ref,
                   {"from": before, "to": to, "event": kind, "reason": reason})

    def add_comment(self, ticket: TicketState, at: int, actor: Actor, body: str, *, internal: bool = False,
                    next_update: int | None = None) -> None:
        """`tickets.add_comment` (the deduction it settles is the caller's)."""
        comment_id = self.ids()
        self.add_comment_row(R.comment(comment_id, ticket.id, actor.kind, actor.ref, actor.name, body,
                                                  _dt(at), internal=internal))
        before, kind = ticket.status, None
        if actor.kind in ("customer", "partner"):
            if ticket.status == "waiting_on_customer":
                kind, ticket.status = "resumed", "in_progress"
        elif not internal:
            kind = "updated" if ticket.answered else "responded"
            ticket.answered = True
            if ticket.status in ("new", "acknowledged"):
                ticket.status = "in_progress"
        if kind is not None:
            self.event(ticket, at, actor, kind, next_update_at=None if next_update is None else _dt(at + next_update))
        detail: dict[str, object] = {"comment_id": str(comment_id), "internal": internal, "event": kind}
        if ticket.status != before:
            detail.update({"from": before, "to": ticket.status})
        self.audit(at, actor, "ticket.comment", "ticket", ticket.ref, detail)

    def t_open(self, at: int, ticket: TicketState, _: Any) -> None:
        """`tickets.open_ticket`: the ticket, its "created" event, the automatic acknowledgement."""
        ticket.id = self.ids()
        ticket.ref = str(ticket.id)
        info, kind = ticket.contract.info, ticket.type
        category = kind.rules.category
        ticket.subject = self.text(f"subject:{category if category in SUBJECTS else 'problem'}")
        self.tickets.append(ticket)
        filer = ticket.filer
        self.event(ticket, at, filer, "created", severity=ticket.severity, plan=info.plan_code)
        system = _SYSTEM
        self.add_comment_row(R.comment(
            self.ids(), ticket.id, system.kind, system.ref, f"{info.program.provider} support",
            R.acknowledgement_text(info.program.provider, ticket.subject, ticket.ref), _dt(at), automatic=True,
        ))
        self.event(ticket, at, system, "acknowledged", automatic=True)
        detail: dict[str, object] = {"type": kind.code, "severity": ticket.severity}
        if kind.rules.priority_flag:
            detail["priority_flag"] = True
        self.audit(at, filer, "ticket.create", "ticket", ticket.ref, detail)

    def t_acknowledge(self, at: int, ticket: TicketState, _: Any) -> None:
        if ticket.status == "new":
            self.transition(ticket, at, ticket.engineer, "acknowledged", "acknowledged")

    def t_note(self, at: int, ticket: TicketState, _: Any) -> None:
        if ticket.status != "closed":
            self.add_comment(ticket, at, ticket.engineer, self.text("internal"), internal=True)

    def t_reply(self, at: int, ticket: TicketState, next_update: int | None) -> None:
        """A public reply from support: refused whole when its deduction is (support leaves a note instead)."""
        if ticket.status == "closed":
            return
        engineer = ticket.engineer
        if ticket.exhausted or not self.settle(ticket, at, engineer, opened=True, dry_run=True):
            ticket.exhausted = True
            self.add_comment(ticket, at, engineer, EXHAUSTED_NOTE, internal=True)
            return
        self.add_comment(ticket, at, engineer, self.text("reply"), next_update=next_update)
        ticket.opened = True
        self.settle(ticket, at, engineer, reason=f"reply on ticket {ticket.ref}")

    def t_customer_comment(self, at: int, ticket: TicketState, _: Any) -> None:
        if ticket.status != "closed":
            self.add_comment(ticket, at, ticket.filer, self.text("customer"))

    def t_waiting(self, at: int, ticket: TicketState, _: Any) -> None:
        if ticket.status == "in_progress":
            self.transition(ticket, at, ticket.engineer, "waiting_on_customer", "waiting_on_customer",
                            "We need the request id and the time it happened.")

    def t_severity(self, at: int, ticket: TicketState, severity: str) -> None:
        """`tickets.record_event(kind="severity_changed")`."""
        if ticket.status in ("resolved", "closed"):
            return
        ticket.severity = severity
        self.event(ticket, at, ticket.engineer, "severity_changed", severity=severity)
        self.audit(at, ticket.engineer, "ticket.severity_changed", "ticket", ticket.ref)

    def t_resolve(self, at: int, ticket: TicketState, _: Any) -> None:
        if ticket.status in ("new", "acknowledged"):
            self.transition(ticket, at, ticket.engineer, "in_progress", None)
        if ticket.status in ("in_progress", "waiting_on_customer"):
            self.transition(ticket, at, ticket.engineer, "resolved", "resolved", "Solved; see the last reply.")

    def t_reopen(self, at: int, ticket: TicketState, _: Any) -> None:
        if ticket.status == "resolved" and ticket.resolved_at is not None and at <= ticket.resolved_at + REOPEN_DAYS * DAY:
            self.transition(ticket, at, ticket.filer, "in_progress", "reopened", "The problem is back.")

    def t_close(self, at: int, ticket: TicketState, _: Any) -> None:
        if ticket.status == "resolved":
            actor = ticket.filer if self.rng.random() < 0.7 else ticket.engineer
            self.transition(ticket, at, actor, "closed", "closed")

    def t_log_time(self, at: int, ticket: TicketState, arg: tuple[int, int]) -> None:
        """`deductions.log_time`: a time entry (or a correction of one) and its deduction, refused whole when
        the deduction is."""
        number, minutes = arg
        if ticket.status == "closed":
            return
        corrects = None
        if minutes < 0:
            original = ticket.time_entries.get(number)
            if original is None or original[1] < -minutes:
                return
            corrects = original[0]
        engineer = ticket.engineer
        ticket.logged += minutes
        if not self.settle(ticket, at, engineer, opened=ticket.opened, dry_run=True):
            ticket.logged -= minutes
            return
        zone = ticket.contract.info.zone
        day = self.w.zones.day(zone, at)
        note = _one(self.rng, TIME_NOTES)
        entry_id = self.ids()
        self.add_time_entry(R.time_entry(entry_id, ticket.id, engineer, minutes, note, day, _dt(at), corrects))
        if corrects is None:
            ticket.time_entries[number] = (entry_id, minutes)
        else:
            ticket.time_entries[number] = (corrects, ticket.time_entries[number][1] + minutes)
        what = "correction" if minutes < 0 else "time"
        posted = self.settle(ticket, at, engineer, reason=f"{what} logged on ticket {ticket.ref}: {note}",
                             time_entry_id=entry_id)
        self.audit(at, engineer, "ticket.time_logged", "ticket", ticket.ref, {
            "time_entry": str(entry_id), "minutes": minutes, "work_date": day.isoformat(),
            "corrects": str(corrects) if corrects else None, "deducted": sum(e[5] for e in posted or ()),
        })

    def settle(self, ticket: TicketState, at: int, actor: Actor, *, reason: str = "", opened: bool | None = None,
               dry_run: bool = False, time_entry_id: uuid.UUID | None = None) -> list[tuple] | bool | None:
        """`deductions.settle_ticket`: bring the ticket's deductions to what the plan says it owes. With
        `dry_run`, only whether it would be accepted."""
        contract = ticket.contract
        rules = contract.info.plan.deductions
        if rules is None:
            return True if dry_run else []
        owed = 0 if ticket.type.exempt else max(
            rules.minimum_minutes_per_conversation if (ticket.opened if opened is None else opened) else 0,
            ticket.logged,
        )
        difference = owed - sum(ticket.held.values())
        bucket = rules.bucket
        if difference > 0:
            period = contract.period(bucket, self.w.zones.day(contract.info.zone, at))
            if period is None:
                return False if dry_run else None  # ContractInactive
            remaining = self.remaining(contract, bucket, period)
            from_allowance = min(difference, remaining)
            beyond = difference - from_allowance
            if beyond and rules.when_exhausted == "refuse":
                return False if dry_run else None
            if dry_run:
                return True
            posted = []
            for kind, units in (("consume", from_allowance), ("overage", beyond)):
                if units:
                    posted.append(self._deduct(ticket, at, actor, period, kind, units, reason, time_entry_id))
            return posted
        if dry_run:
            return True
        if difference < 0:  # overage first, then consumption; the latest period first
            minutes, posted = -difference, []
            order = sorted(ticket.held.items(), key=lambda item: (item[0][0] != "overage", -item[0][1].toordinal()))
            for (column, start, end), amount in order:
                if minutes <= 0:
                    break
                units = min(minutes, amount)
                if units <= 0:
                    continue
                kind = "overage" if column == "overage" else "adjust"
                posted.append(self._deduct(ticket, at, actor, Period(0, start, end), kind, -units, reason, time_entry_id))
                minutes -= units
            return posted
        return []

    def _deduct(self, ticket: TicketState, at: int, actor: Actor, period: Period, kind: str, units: int, reason: str,
                time_entry_id: uuid.UUID | None) -> tuple:
        """`ledger.post_in_session` for a ticket's deduction."""
        bucket = ticket.contract.info.plan.deductions.bucket
        request_hash = R.deduction_hash(kind, bucket, units, period.start, reason, ticket.ref,
                                        None if time_entry_id is None else str(time_entry_id))
        column = "overage" if kind == "overage" else "consumed"
        entry = self.post(at, actor, ticket.contract, bucket, period, units, kind, reason, request_hash, column=column,
                          on_behalf_of=self.customer_id, ticket_id=ticket.id, time_entry_id=time_entry_id)
        assert entry is not None, "the balance was checked before posting"
        key = (column, period.start, period.end)
        ticket.held[key] = ticket.held.get(key, 0) + units
        return entry

    def _due(self, ticket: TicketState) -> datetime | None:
        """`tickets.next_due` as the ticket's latest event left it (every event sets it)."""
        info = ticket.contract.info
        if not info.plan.severities:
            return None  # a plan without severities runs no clock
        if ticket.answered and ticket.status in ("resolved", "closed"):
            return None  # answered and resolved: every clock is met (replaying would say the same, 100 times slower)
        view = SimpleNamespace(
            ticket=SimpleNamespace(severity=ticket.severity, created_at=ticket.history[0].at), events=ticket.history,
            plan=SimpleNamespace(record=SimpleNamespace(code=info.plan_code), program=info.program),
        )
        return next_due(view, ticket.history[-1].at)  # type: ignore[arg-type]

    # ---- the rows that hold final states ------------------------------------------------------------------

    def _finish(self) -> None:
        out = self.out
        for ticket in self.tickets:
            kind = ticket.type
            diagnosis = kind.rules.needs_diagnosis
            out.add("tickets", R.ticket(
                ticket.id, self.customer_id, ticket.contract.id, kind.code, ticket.severity, ticket.status,
                ticket.subject, ticket.filer, _dt(ticket.created),
                description=self.text("description"),
                affected_account=f"{self.code}-prod" if diagnosis else None,
                steps_followed="Opened the admin console and ran the job again." if diagnosis else None,
                expected_result="The job finishes without errors." if diagnosis else None,
                priority_flag=kind.rules.priority_flag,
                resolved_at=None if ticket.resolved_at is None else _dt(ticket.resolved_at),
                sla_due_at=self._due(ticket),
            ))
        for b in self.bookings:
            out.add("bookings", R.booking(
                b.id, b.contract.id, self.customer_id, b.offer.code, b.offer.activity.name, b.offer.bucket_code,
                b.offer.units, b.period.start, b.period.end, b.day, b.status, b.requested_by, _dt(b.created),
                note=b.note, starts_at=None if b.ends_at is None else _dt(b.starts_at),
                ends_at=None if b.ends_at is None else _dt(b.ends_at), staff_id=b.staff,
                delivered_at=None if b.delivered_at is None else _dt(b.delivered_at), delivery_note=b.delivery_note,
                cancelled_at=None if b.cancelled_at is None else _dt(b.cancelled_at), cancel_reason=b.cancel_reason,
                revision=b.revision, updated_at=_dt(b.updated),
            ))
        for (contract_id, bucket, start), (end, allowance, consumed, overage, at) in self.balances.items():
            out.add("entitlement_balances", R.balance(contract_id, bucket, start, end, allowance, consumed, overage, _dt(at)))


_SYSTEM = Actor(kind="system", ref="system:entitle", name="Entitle")
_step_order = itemgetter(0, 1)
_ROUNDS, _ROUNDS_WEIGHTS = (0, 1, 2, 3), _cumulative((0.45, 0.3, 0.15, 0.1))
_LOG_COUNTS = tuple(range(len(TIME_LOGS)))
_TIME_LOGS, _TIME_LOGS_EXEMPT = _cumulative(TIME_LOGS), _cumulative(TIME_LOGS_EXEMPT)
