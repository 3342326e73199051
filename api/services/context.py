"""What every service call runs with: the database, the clock, the settings, and who is acting."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from api.config import Settings
from api.db import Database

__all__ = ["Actor", "AppContext", "Clock", "FixedClock", "SystemClock"]

ActorKind = Literal["system", "staff", "customer", "partner", "integrator"]


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
    """Who is acting, passed to every service function; the access policy decides from it."""

    kind: ActorKind
    ref: str
    name: str
    customer_id: uuid.UUID | None = None
    partner_id: uuid.UUID | None = None
    roles: frozenset[str] = frozenset()

    @classmethod
    def system(cls, ref: str) -> Actor:
        return cls(kind="system", ref=ref, name=ref, roles=frozenset({"admin"}))

    @property
    def is_provider(self) -> bool:
        return self.kind in ("system", "staff")


@dataclass
class AppContext:
    db: Database
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)

    def now(self) -> datetime:
        return self.clock.now()

    def today(self, timezone: str) -> date:
        return self.now().astimezone(ZoneInfo(timezone)).date()
