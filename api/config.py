"""Settings, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
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

    def __post_init__(self) -> None:
        if not 0 <= self.graphql_cache_size <= 100_000:
            raise ValueError(f"ENTITLE_GRAPHQL_CACHE_SIZE must be 0 to 100000, not {self.graphql_cache_size}")
        if not 0 <= self.expiry_warning_days <= 366:
            raise ValueError(f"ENTITLE_EXPIRY_WARNING_DAYS must be 0 to 366 days, not {self.expiry_warning_days}")
        if not 1 <= self.report_day <= 28:
            raise ValueError(f"ENTITLE_REPORT_DAY must be a day of the month from 1 to 28, not {self.report_day}")
        self._check_mail()

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
            sql_echo=_flag("ENTITLE_SQL_ECHO", False),
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
        )


def get_settings() -> Settings:
    return Settings.from_env()
