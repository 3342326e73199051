"""What every service call runs with: the database, the clock, the settings, and who is acting."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from api.config import Settings
from api.db import Database

__all__ = ["Actor", "AppContext", "Clock", "FixedClock", "SystemClock"]

ActorKind = Literal["system", "staff", "customer", "partner"]


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock that stands still until moved; for tests and reproducible demos."""

    instant: datetime

    def now(self) -> datetime:
        return self.instant


@dataclass(frozen=True)
class Actor:
    """Who is acting, passed to every service function; the access policy decides from it alone.

    `roles` holds the staff roles (admin, client_manager, support_engineer) and "integrator" for a
    provider-scoped API token. `interface` says where the request came in, for the audit log."""

    kind: ActorKind
    ref: str
    name: str
    customer_id: uuid.UUID | None = None
    partner_id: uuid.UUID | None = None
    roles: frozenset[str] = frozenset()
    user_id: uuid.UUID | None = None
    token_id: uuid.UUID | None = None
    read_only: bool = False
    interface: str = "api"

    @classmethod
    def system(cls, ref: str, interface: str = "cli") -> Actor:
        return cls(kind="system", ref=f"system:{ref}", name=ref, roles=frozenset({"admin"}), interface=interface)

    @property
    def is_provider(self) -> bool:
        # A staff actor holds its powers through its roles: one without any may do nothing.
        return self.kind == "system" or (self.kind == "staff" and bool(self.roles))

    def via(self, interface: str) -> Actor:
        return replace(self, interface=interface)


@dataclass
class AppContext:
    db: Database
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)

    def now(self) -> datetime:
        return self.clock.now()

    def today(self, timezone: str) -> date:
        return self.now().astimezone(ZoneInfo(timezone)).date()
