"""Settings, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

__all__ = ["PROJECT_ROOT", "Settings", "get_settings"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_database_url() -> str:
    return f"sqlite:///{PROJECT_ROOT / 'var' / 'entitle.db'}"


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
    # Where users reach this deployment: links in e-mails and calendar feed URLs start with it.
    public_url: str = "http://127.0.0.1:8000"

    def __post_init__(self) -> None:
        if not 0 <= self.graphql_cache_size <= 100_000:
            raise ValueError(f"ENTITLE_GRAPHQL_CACHE_SIZE must be 0 to 100000, not {self.graphql_cache_size}")
        if not 0 <= self.expiry_warning_days <= 366:
            raise ValueError(f"ENTITLE_EXPIRY_WARNING_DAYS must be 0 to 366 days, not {self.expiry_warning_days}")

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
            public_url=os.environ.get("ENTITLE_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/"),
        )


def get_settings() -> Settings:
    return Settings.from_env()
