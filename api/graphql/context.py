"""Per-request GraphQL context: the application context, the acting identity and fresh dataloaders."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import TypeVar

from strawberry.dataloader import DataLoader

from api.domain.sla import TargetClock
from api.models import CalendarFeed, Contract, Customer, TicketComment, User
from api.services import bookings, calendar_feeds, contracts, parties, policy, programs, tickets
from api.services.context import Actor, AppContext
from api.services.contracts import EntitlementPeriod
from api.services.programs import PlanView

__all__ = ["Loaders", "RequestContext", "SharedLoader"]

K = TypeVar("K")
V = TypeVar("V")


class SharedLoader(DataLoader[K, V]):
    """A DataLoader whose callers each await their own shield of the one future per key. When a non-null
    field fails, graphql-core cancels the sibling fields still running; a cancelled caller awaiting the
    shared future directly would cancel it for every other field loading the same key (whose request then
    dies with CancelledError) and, once all are cancelled, the batch's query mid-flight."""

    def load(self, key: K) -> Awaitable[V]:
        return asyncio.shield(super().load(key))


@dataclass
class Loaders:
    """Batching loaders, built per request; each batch runs in its own read transaction, so sibling
    fields resolving concurrently never share a session."""

    app: AppContext
    actor: Actor
    customer: DataLoader[uuid.UUID, Customer | None] = field(init=False)
    plan: DataLoader[uuid.UUID, PlanView | None] = field(init=False)
    entitlements: DataLoader[tuple[uuid.UUID, date | None], list[EntitlementPeriod]] = field(init=False)
    staff: DataLoader[uuid.UUID, User | None] = field(init=False)
    sla: DataLoader[uuid.UUID, list[TargetClock]] = field(init=False)
    contract: DataLoader[uuid.UUID, Contract | None] = field(init=False)
    last_comment: DataLoader[uuid.UUID, TicketComment | None] = field(init=False)
    ticket_record: DataLoader[uuid.UUID, tickets.TicketRecord] = field(init=False)
    booking_details: DataLoader[uuid.UUID, bookings.BookingDetails] = field(init=False)
    calendar_feeds: DataLoader[uuid.UUID, list[CalendarFeed]] = field(init=False)
    # Tickets a list or lookup of this request has read with their events and plans: their SLA clocks are
    # replayed from these instead of being read again.
    ticket_views: dict[uuid.UUID, tickets.TicketView] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.customer = SharedLoader(self._customers)
        self.plan = SharedLoader(self._plans)
        self.entitlements = SharedLoader(self._entitlements)
        self.staff = SharedLoader(self._staff)
        self.sla = SharedLoader(self._sla)
        self.contract = SharedLoader(self._contracts)
        self.last_comment = SharedLoader(self._last_comments)
        self.ticket_record = SharedLoader(self._ticket_records)
        self.booking_details = SharedLoader(self._booking_details)
        self.calendar_feeds = SharedLoader(self._calendar_feeds)

    async def _customers(self, ids: list[uuid.UUID]) -> list[Customer | None]:
        found = await parties.get_customers_by_ids(self.app, self.actor, ids)
        return [found.get(i) for i in ids]

    async def _plans(self, ids: list[uuid.UUID]) -> list[PlanView | None]:
        found = await programs.get_plans_by_ids(self.app, self.actor, ids)
        return [found.get(i) for i in ids]

    async def _staff(self, ids: list[uuid.UUID]) -> list[User | None]:
        found = await contracts.get_staff_by_ids(self.app, self.actor, ids)
        return [found.get(i) for i in ids]

    def read_tickets(self, views: Iterable[tickets.TicketView]) -> None:
        """Tickets the caller was just given (so may read), with their events and plans: kept for their SLA
        clocks, and their plans primed (for a caller who may read programs)."""
        may_read_plans = policy.may(self.actor, "program.read")
        for view in views:
            self.ticket_views[view.ticket.id] = view
            if may_read_plans:
                self.plan.prime(view.plan.record.id, view.plan)

    async def _sla(self, ids: list[uuid.UUID]) -> list[list[TargetClock]]:
        missing = [i for i in ids if i not in self.ticket_views]
        found = await tickets.sla_for_tickets(self.app, self.actor, missing) if missing else {}
        found.update(tickets.sla_of_views(self.app, (self.ticket_views[i] for i in ids if i in self.ticket_views)))
        return [found.get(i, []) for i in ids]

    async def _contracts(self, ids: list[uuid.UUID]) -> list[Contract | None]:
        found = await contracts.get_contracts_by_ids(self.app, self.actor, ids)
        return [found.get(i) for i in ids]

    async def _ticket_records(self, ids: list[uuid.UUID]) -> list[tickets.TicketRecord]:
        found = await tickets.ticket_records(self.app, self.actor, ids)
        return [found.get(i, tickets.TicketRecord([], [], [])) for i in ids]

    async def _booking_details(self, ids: list[uuid.UUID]) -> list[bookings.BookingDetails]:
        found = await bookings.booking_details(self.app, self.actor, ids)
        return [found.get(i, bookings.BookingDetails()) for i in ids]

    async def _calendar_feeds(self, ids: list[uuid.UUID]) -> list[list[CalendarFeed]]:
        found = await calendar_feeds.list_feeds(self.app, self.actor, ids)
        return [found.get(i, []) for i in ids]

    async def _last_comments(self, ids: list[uuid.UUID]) -> list[TicketComment | None]:
        found = await tickets.last_comments(self.app, self.actor, ids)
        return [found.get(i) for i in ids]

    async def _entitlements(self, keys: list[tuple[uuid.UUID, date | None]]) -> list[list[EntitlementPeriod]]:
        found = await contracts.entitlements_for_contracts(self.app, self.actor, keys)
        return [found[key] for key in keys]


@dataclass
class RequestContext:
    app: AppContext
    actor: Actor
    loaders: Loaders
    base_url: str | None = None  # the address the request came in on, for links when ENTITLE_PUBLIC_URL is unset
