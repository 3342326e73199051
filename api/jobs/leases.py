"""A work queue whose rows senders lease: outbox messages and webhook deliveries share its shape.

A row is due when it is open (waiting, or leased by a sender whose lease has expired) and its
`next_attempt_at` has come: while a row is leased, `next_attempt_at` holds the lease's end, so one indexed
range finds both. Taking a lease repeats the due condition in its UPDATE, so of two senders that read the same
row only one takes it; every later change a sender makes is guarded by its lease (`held_by`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, update

__all__ = ["LeasedQueue"]


@dataclass(frozen=True)
class LeasedQueue:
    model: Any  # a mapped class with id, status, lease_owner, leased_until and next_attempt_at
    open: tuple[Any, ...]  # the statuses a due row may have: waiting, and the leased one
    leased: Any  # the status of a row a sender holds

    def due(self, now: datetime) -> tuple[ColumnElement[bool], ...]:
        return self.model.status.in_(self.open), self.model.next_attempt_at <= now

    def held_by(self, row_id: uuid.UUID, owner: str) -> tuple[ColumnElement[bool], ...]:
        return self.model.id == row_id, self.model.lease_owner == owner, self.model.status == self.leased

    async def take(
        self, session: Any, ids: Iterable[uuid.UUID], *, now: datetime, owner: str, until: datetime
    ) -> set[uuid.UUID]:
        """Lease those of `ids` still due to `owner` until `until`; the ids it got."""
        taken = await session.execute(
            update(self.model)
            .where(self.model.id.in_(list(ids)), *self.due(now))
            .values(status=self.leased, lease_owner=owner, leased_until=until, next_attempt_at=until)
            .returning(self.model.id)
            .execution_options(synchronize_session=False)
        )
        return set(taken.scalars())
