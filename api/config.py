"""Settings, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

__all__ = ["DEFAULT_SERVE_URL", "PROJECT_ROOT", "Settings", "get_settings"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Where `entitle serve` listens unless told otherwise.
DEFAULT_SERVE_URL = "http://127.0.0.1:8000"


def _default_database_url() -> str:
    return f"sqlite:///{PROJECT_ROOT / 'var' / 'entitle.db'}"


def _number(name: str, default, kind=int):  # type: ignore[no-untyped-def]
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name} must be a {'whole ' if kind is int else ''}number, not {value!r}") from None


def _day(name: str, default: date) -> date:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{name} must be a date written YYYY-MM-DD, not {value!r}") from None


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=_default_database_url)
    environment: str = "development"
    programs_dir: Path = PROJECT_ROOT / "programs"
    graphql_max_depth: int = 12
    graphql_max_aliases: int = 30
    # Parsed and validated query documents kept for reuse (per process); 0 turns the caches off.
    graphql_cache_size: int = 256
    # Request limits (api/graphql/limits.py, api/middleware.py): an operation's cost (fields, multiplied by
    # page sizes down the tree) and the weight of a list without paging in it; lexical tokens in a document;
    # the body's size (bytes) and its JSON's nesting; how long one GraphQL request and one database statement
    # of the web process may take (seconds).
    graphql_max_cost: int = 50_000
    graphql_list_size: int = 20
    graphql_max_tokens: int = 2_000
    max_body_bytes: int = 1_048_576
    max_json_depth: int = 32
    request_timeout_seconds: float = 10.0
    statement_timeout_seconds: float = 5.0
    # `entitle serve`: worker processes (WEB_CONCURRENCY), and how long a stopping server lets in-flight
    # requests finish (seconds).
    web_concurrency: int = 1
    shutdown_timeout_seconds: float = 30.0
    # Input rules (api/domain/inputs.py): the longest reason or note and the longest description or comment
    # (characters), the sane range of every date taken as input, the longest contract term (years), and how
    # large (characters) and deeply nested a program file may be.
    max_note_length: int = 2_000
    max_text_length: int = 20_000
    earliest_date: date = date(2000, 1, 1)
    latest_date: date = date(2100, 12, 31)
    max_term_years: int = 10
    program_max_size: int = 1_000_000
    program_max_depth: int = 20
    sql_echo: bool = False
    # An SLA clock is "at risk" once this share of its target has elapsed.
    sla_at_risk_share: Decimal = Decimal("0.8")
    # A resolved ticket may be reopened for this many days after its resolution; after that, file a new one.
    ticket_reopen_days: int = 14
    # A period is "expiring soon" (and its reminder is sent) this many days before it ends with units
    # left, unless the plan says otherwise (expiry_warning_days).
    expiry_warning_days: int = 30
    # Where users reach this deployment (ENTITLE_PUBLIC_URL): links in e-mails and calendar feed URLs start
    # with it. Unset, the portal uses the address a request came in on, and `link_base` the one below.
    public_url: str | None = None
    # The address `entitle serve` was started on (set by the command, never from the environment).
    served_url: str | None = None
    # The day of the month (1-28) from which the worker queues the previous month's reports.
    report_day: int = 1
    # E-mail delivery: over SMTP when a host is set, else each message is written to outbox_dir as .eml.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: str = "starttls"  # starttls, tls (implicit, usually port 465) or none
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_timeout_seconds: float = 30.0  # bounds each whole send, connection included
    mail_from: str = "Entitle <entitle@localhost>"
    outbox_dir: Path = PROJECT_ROOT / "var" / "outbox"
    mail_max_attempts: int = 6  # sends of one message before it is marked failed
    mail_retry_seconds: int = 300  # first retry's delay; each later one doubles, up to 6 hours
    mail_batch: int = 100  # messages one sender leases at a time
    # How long a leased message is a sender's alone; a lease that expires is picked up again.
    mail_lease_seconds: int = 300
    mail_interval_seconds: int = 30  # how often the worker's deliver-outbox job runs
    # Login throttling (api/domain/login_throttle.py): failures are counted over a sliding window per
    # (account, address), per address and per account; a source past its allowance waits login_delay_seconds,
    # doubling with each further failure up to login_max_delay_seconds. No account is ever locked.
    login_window_seconds: int = 3600
    login_attempts: int = 5  # failures from one address for one account before it waits
    login_account_attempts: int = 20  # failures of one account from all addresses: then each address waits after 1
    login_address_attempts: int = 100  # failures from one address across all accounts before it waits
    login_delay_seconds: int = 30
    login_max_delay_seconds: int = 900
    login_alert_attempts: int = 5  # failures of one account within the window that e-mail its owner (once a window)
    # Proxies whose X-Forwarded-For (and X-Forwarded-Proto) are believed: addresses or networks. Empty: none.
    trusted_proxies: tuple[str, ...] = ()
    # Webhooks: each attempt is bounded by the timeout; a failed one waits webhook_retry_seconds, doubling
    # after each further failure (up to 6 hours), until webhook_max_attempts have been made.
    webhook_timeout_seconds: float = 10.0
    webhook_max_attempts: int = 12
    webhook_retry_seconds: int = 60
    webhook_batch: int = 50  # deliveries one sender leases at a time
    webhook_concurrency: int = 8  # requests one sender has in flight at once
    webhook_lease_seconds: int = 120  # how long a leased delivery is its sender's alone
    webhook_interval_seconds: int = 10  # how often the worker's deliver-webhooks job runs
    webhook_max_subscriptions: int = 10  # active subscriptions per owner (a customer, a partner, the provider)
    webhook_retention_days: int = 30  # delivered and failed deliveries are deleted this long after they were queued

    def __post_init__(self) -> None:
        if not 0 <= self.graphql_cache_size <= 100_000:
            raise ValueError(f"ENTITLE_GRAPHQL_CACHE_SIZE must be 0 to 100000, not {self.graphql_cache_size}")
        if not 0 <= self.expiry_warning_days <= 366:
            raise ValueError(f"ENTITLE_EXPIRY_WARNING_DAYS must be 0 to 366 days, not {self.expiry_warning_days}")
        if not 1 <= self.report_day <= 28:
            raise ValueError(f"ENTITLE_REPORT_DAY must be a day of the month from 1 to 28, not {self.report_day}")
        self._check_mail()
        self._check_limits()
        self._check_inputs()
        self._check_login()
        self._check_webhooks()

    def _check_limits(self) -> None:
        for name, value, low, high in (
            ("ENTITLE_GRAPHQL_MAX_COST", self.graphql_max_cost, 1, 100_000_000),
            ("ENTITLE_GRAPHQL_LIST_SIZE", self.graphql_list_size, 1, 10_000),
            ("ENTITLE_GRAPHQL_MAX_TOKENS", self.graphql_max_tokens, 100, 100_000),
            ("ENTITLE_MAX_BODY_BYTES", self.max_body_bytes, 1_024, 1_073_741_824),
            # Parsing JSON recurses once per level: far below the interpreter's recursion limit.
            ("ENTITLE_MAX_JSON_DEPTH", self.max_json_depth, 4, 200),
            ("WEB_CONCURRENCY", self.web_concurrency, 1, 64),
        ):
            if not low <= value <= high:
                raise ValueError(f"{name} must be {low} to {high}, not {value}")
        for name, seconds, high in (
            ("ENTITLE_REQUEST_TIMEOUT", self.request_timeout_seconds, 3600),
            ("ENTITLE_DB_STATEMENT_TIMEOUT", self.statement_timeout_seconds, 3600),
        ):
            if not 0 < seconds <= high:
                raise ValueError(f"{name} must be more than 0 and at most {high} seconds, not {seconds:g}")
        if not 0 <= self.shutdown_timeout_seconds <= 3600:
            raise ValueError(f"ENTITLE_SHUTDOWN_TIMEOUT must be 0 to 3600 seconds, not {self.shutdown_timeout_seconds:g}")

    def _check_inputs(self) -> None:
        for name, value, low, high in (
            ("ENTITLE_MAX_NOTE_LENGTH", self.max_note_length, 1, 1_000_000),
            ("ENTITLE_MAX_TEXT_LENGTH", self.max_text_length, 1, 1_000_000),
            ("ENTITLE_MAX_TERM_YEARS", self.max_term_years, 1, 100),
            ("ENTITLE_PROGRAM_MAX_SIZE", self.program_max_size, 1_000, 100_000_000),
            ("ENTITLE_PROGRAM_MAX_DEPTH", self.program_max_depth, 8, 200),
        ):
            if not low <= value <= high:
                raise ValueError(f"{name} must be {low} to {high}, not {value}")
        # Within these years every date computation (periods, terms, time zones) stays far from year 1 and 9999.
        if not date(1900, 1, 1) <= self.earliest_date < self.latest_date <= date(2999, 12, 31):
            raise ValueError(
                f"ENTITLE_EARLIEST_DATE ({self.earliest_date}) must come before ENTITLE_LATEST_DATE ({self.latest_date}), "
                "both from 1900-01-01 to 2999-12-31"
            )

    def _check_mail(self) -> None:
        from email.utils import parseaddr

        if self.smtp_security not in {"starttls", "tls", "none"}:
            raise ValueError(f"ENTITLE_SMTP_SECURITY must be starttls, tls or none, not {self.smtp_security!r}")
        if not 1 <= self.smtp_port <= 65535:
            raise ValueError(f"ENTITLE_SMTP_PORT must be 1 to 65535, not {self.smtp_port}")
        if (self.smtp_user is None) != (self.smtp_password is None):
            raise ValueError("ENTITLE_SMTP_USER and ENTITLE_SMTP_PASSWORD are set together or not at all")
        address = parseaddr(self.mail_from)[1]
        local, _, domain = address.rpartition("@")
        if not local or not domain or any(c in self.mail_from for c in "\r\n"):
            raise ValueError(f"ENTITLE_MAIL_FROM must be an address such as 'Entitle <entitle@example.com>', not {self.mail_from!r}")
        if not 1 <= self.mail_max_attempts <= 100:
            raise ValueError(f"ENTITLE_MAIL_MAX_ATTEMPTS must be 1 to 100, not {self.mail_max_attempts}")
        if not 1 <= self.mail_batch <= 10_000:
            raise ValueError(f"ENTITLE_MAIL_BATCH must be 1 to 10000, not {self.mail_batch}")
        if not 1 <= self.mail_retry_seconds <= 86_400:
            raise ValueError(f"ENTITLE_MAIL_RETRY_SECONDS must be 1 to 86400, not {self.mail_retry_seconds}")
        if not 1 <= self.mail_interval_seconds <= 86_400:
            raise ValueError(f"ENTITLE_MAIL_INTERVAL_SECONDS must be 1 to 86400, not {self.mail_interval_seconds}")
        if not 0 < self.smtp_timeout_seconds <= 600:
            raise ValueError(f"ENTITLE_SMTP_TIMEOUT must be more than 0 and at most 600 seconds, not {self.smtp_timeout_seconds}")
        # A send must end, and its result be committed, well before its lease lets another sender in.
        if self.mail_lease_seconds < 2 * self.smtp_timeout_seconds:
            raise ValueError(
                f"ENTITLE_MAIL_LEASE_SECONDS ({self.mail_lease_seconds}) must be at least twice "
                f"ENTITLE_SMTP_TIMEOUT ({self.smtp_timeout_seconds:g})"
            )

    def _check_webhooks(self) -> None:
        if not 0 < self.webhook_timeout_seconds <= 120:
            raise ValueError(f"ENTITLE_WEBHOOK_TIMEOUT must be more than 0 and at most 120 seconds, not {self.webhook_timeout_seconds}")
        for name, value, low, high in (
            ("ENTITLE_WEBHOOK_MAX_ATTEMPTS", self.webhook_max_attempts, 1, 100),
            ("ENTITLE_WEBHOOK_RETRY_SECONDS", self.webhook_retry_seconds, 1, 86_400),
            ("ENTITLE_WEBHOOK_BATCH", self.webhook_batch, 1, 10_000),
            ("ENTITLE_WEBHOOK_CONCURRENCY", self.webhook_concurrency, 1, 100),
            ("ENTITLE_WEBHOOK_INTERVAL_SECONDS", self.webhook_interval_seconds, 1, 86_400),
            ("ENTITLE_WEBHOOK_MAX_SUBSCRIPTIONS", self.webhook_max_subscriptions, 1, 1000),
            ("ENTITLE_WEBHOOK_RETENTION_DAYS", self.webhook_retention_days, 1, 3650),
        ):
            if not low <= value <= high:
                raise ValueError(f"{name} must be {low} to {high}, not {value}")
        # A request must end, and its result be committed, well before its lease lets another sender in.
        if self.webhook_lease_seconds < 2 * self.webhook_timeout_seconds:
            raise ValueError(
                f"ENTITLE_WEBHOOK_LEASE_SECONDS ({self.webhook_lease_seconds}) must be at least twice "
                f"ENTITLE_WEBHOOK_TIMEOUT ({self.webhook_timeout_seconds:g})"
            )

    def _check_login(self) -> None:
        import ipaddress

        for name, value, low, high in (
            ("ENTITLE_LOGIN_WINDOW_SECONDS", self.login_window_seconds, 60, 86_400),
            ("ENTITLE_LOGIN_ATTEMPTS", self.login_attempts, 1, 1000),
            ("ENTITLE_LOGIN_ACCOUNT_ATTEMPTS", self.login_account_attempts, 1, 1_000_000),
            ("ENTITLE_LOGIN_ADDRESS_ATTEMPTS", self.login_address_attempts, 1, 1_000_000),
            ("ENTITLE_LOGIN_DELAY_SECONDS", self.login_delay_seconds, 1, 3600),
            ("ENTITLE_LOGIN_ALERT_ATTEMPTS", self.login_alert_attempts, 1, 1_000_000),
        ):
            if not low <= value <= high:
                raise ValueError(f"{name} must be {low} to {high}, not {value}")
        # A wait longer than the window would outlast the failures it is counted from.
        if not self.login_delay_seconds <= self.login_max_delay_seconds <= self.login_window_seconds:
            raise ValueError(
                f"ENTITLE_LOGIN_MAX_DELAY_SECONDS must be from ENTITLE_LOGIN_DELAY_SECONDS ({self.login_delay_seconds}) "
                f"to ENTITLE_LOGIN_WINDOW_SECONDS ({self.login_window_seconds}), not {self.login_max_delay_seconds}"
            )
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"ENTITLE_TRUSTED_PROXIES must list IP addresses or networks (e.g. 127.0.0.1, 10.0.0.0/8), not {proxy!r}"
                ) from None

    @property
    def link_base(self) -> str:
        """Where links made outside a request (e-mails, calendar entries) point: ENTITLE_PUBLIC_URL, else the
        address this server was started on, else the default address of `entitle serve`."""
        return self.public_url or self.served_url or DEFAULT_SERVE_URL

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ.get("DATABASE_URL") or _default_database_url(),
            environment=os.environ.get("ENTITLE_ENV", "development"),
            programs_dir=Path(os.environ.get("ENTITLE_PROGRAMS_DIR", PROJECT_ROOT / "programs")),
            graphql_max_depth=int(os.environ.get("ENTITLE_GRAPHQL_MAX_DEPTH", "12")),
            graphql_max_aliases=int(os.environ.get("ENTITLE_GRAPHQL_MAX_ALIASES", "30")),
            graphql_cache_size=int(os.environ.get("ENTITLE_GRAPHQL_CACHE_SIZE", "256")),
            graphql_max_cost=_number("ENTITLE_GRAPHQL_MAX_COST", 50_000),
            graphql_list_size=_number("ENTITLE_GRAPHQL_LIST_SIZE", 20),
            graphql_max_tokens=_number("ENTITLE_GRAPHQL_MAX_TOKENS", 2_000),
            max_body_bytes=_number("ENTITLE_MAX_BODY_BYTES", 1_048_576),
            max_json_depth=_number("ENTITLE_MAX_JSON_DEPTH", 32),
            request_timeout_seconds=_number("ENTITLE_REQUEST_TIMEOUT", 10.0, float),
            statement_timeout_seconds=_number("ENTITLE_DB_STATEMENT_TIMEOUT", 5.0, float),
            web_concurrency=_number("WEB_CONCURRENCY", 1),
            shutdown_timeout_seconds=_number("ENTITLE_SHUTDOWN_TIMEOUT", 30.0, float),
            # Set by `entitle serve` for the processes it starts (never by hand).
            served_url=os.environ.get("ENTITLE_SERVED_URL") or None,
            sql_echo=_flag("ENTITLE_SQL_ECHO", False),
            max_note_length=_number("ENTITLE_MAX_NOTE_LENGTH", 2_000),
            max_text_length=_number("ENTITLE_MAX_TEXT_LENGTH", 20_000),
            earliest_date=_day("ENTITLE_EARLIEST_DATE", date(2000, 1, 1)),
            latest_date=_day("ENTITLE_LATEST_DATE", date(2100, 12, 31)),
            max_term_years=_number("ENTITLE_MAX_TERM_YEARS", 10),
            program_max_size=_number("ENTITLE_PROGRAM_MAX_SIZE", 1_000_000),
            program_max_depth=_number("ENTITLE_PROGRAM_MAX_DEPTH", 20),
            sla_at_risk_share=Decimal(os.environ.get("ENTITLE_SLA_AT_RISK_SHARE", "0.8")),
            ticket_reopen_days=int(os.environ.get("ENTITLE_TICKET_REOPEN_DAYS", "14")),
            expiry_warning_days=int(os.environ.get("ENTITLE_EXPIRY_WARNING_DAYS", "30")),
            public_url=os.environ.get("ENTITLE_PUBLIC_URL", "").strip().rstrip("/") or None,
            report_day=int(os.environ.get("ENTITLE_REPORT_DAY", "1")),
            smtp_host=os.environ.get("ENTITLE_SMTP_HOST") or None,
            smtp_port=_number("ENTITLE_SMTP_PORT", 587),
            smtp_security=os.environ.get("ENTITLE_SMTP_SECURITY", "starttls").strip().lower(),
            smtp_user=os.environ.get("ENTITLE_SMTP_USER") or None,
            smtp_password=os.environ.get("ENTITLE_SMTP_PASSWORD") or None,
            smtp_timeout_seconds=_number("ENTITLE_SMTP_TIMEOUT", 30.0, float),
            mail_from=os.environ.get("ENTITLE_MAIL_FROM") or "Entitle <entitle@localhost>",
            outbox_dir=Path(os.environ.get("ENTITLE_OUTBOX_DIR") or PROJECT_ROOT / "var" / "outbox"),
            mail_max_attempts=_number("ENTITLE_MAIL_MAX_ATTEMPTS", 6),
            mail_retry_seconds=_number("ENTITLE_MAIL_RETRY_SECONDS", 300),
            mail_batch=_number("ENTITLE_MAIL_BATCH", 100),
            mail_lease_seconds=_number("ENTITLE_MAIL_LEASE_SECONDS", 300),
            mail_interval_seconds=_number("ENTITLE_MAIL_INTERVAL_SECONDS", 30),
            login_window_seconds=_number("ENTITLE_LOGIN_WINDOW_SECONDS", 3600),
            login_attempts=_number("ENTITLE_LOGIN_ATTEMPTS", 5),
            login_account_attempts=_number("ENTITLE_LOGIN_ACCOUNT_ATTEMPTS", 20),
            login_address_attempts=_number("ENTITLE_LOGIN_ADDRESS_ATTEMPTS", 100),
            login_delay_seconds=_number("ENTITLE_LOGIN_DELAY_SECONDS", 30),
            login_max_delay_seconds=_number("ENTITLE_LOGIN_MAX_DELAY_SECONDS", 900),
            login_alert_attempts=_number("ENTITLE_LOGIN_ALERT_ATTEMPTS", 5),
            trusted_proxies=tuple(
                p.strip() for p in os.environ.get("ENTITLE_TRUSTED_PROXIES", "").split(",") if p.strip()
            ),
            webhook_timeout_seconds=_number("ENTITLE_WEBHOOK_TIMEOUT", 10.0, float),
            webhook_max_attempts=_number("ENTITLE_WEBHOOK_MAX_ATTEMPTS", 12),
            webhook_retry_seconds=_number("ENTITLE_WEBHOOK_RETRY_SECONDS", 60),
            webhook_batch=_number("ENTITLE_WEBHOOK_BATCH", 50),
            webhook_concurrency=_number("ENTITLE_WEBHOOK_CONCURRENCY", 8),
            webhook_lease_seconds=_number("ENTITLE_WEBHOOK_LEASE_SECONDS", 120),
            webhook_interval_seconds=_number("ENTITLE_WEBHOOK_INTERVAL_SECONDS", 10),
            webhook_max_subscriptions=_number("ENTITLE_WEBHOOK_MAX_SUBSCRIPTIONS", 10),
            webhook_retention_days=_number("ENTITLE_WEBHOOK_RETENTION_DAYS", 30),
        )


def get_settings() -> Settings:
    return Settings.from_env()
