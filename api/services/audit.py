"""Writing and reading the audit log. Every change records itself here, in its own transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.models import AuditEntry
from api.services import inputs, policy
from api.services.context import Actor, AppContext
from api.services.paging import cut_page, encode_cursor, newest_first

__all__ = ["AuditPage", "audit_page", "record"]

async def record(
    session: AsyncSession,
    ctx: AppContext,
    actor: Actor,
    action: str,
    *,
    target_type: str,
    target_id: object,
    on_behalf_of_customer_id: uuid.UUID | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an audit entry to the caller's transaction: it commits, or vanishes, with the change."""
    session.add(
        AuditEntry(
            occurred_at=ctx.now(),
            actor_kind=actor.kind,
            actor_ref=actor.ref,
            actor_name=actor.name,
            partner_id=actor.partner_id,
            on_behalf_of_customer_id=on_behalf_of_customer_id,
            interface=actor.interface,
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            detail=detail or {},
        )
    )


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    has_next_page: bool
    end_cursor: str | None


async def audit_page(
    ctx: AppContext,
    actor: Actor,
    *,
    first: int = 50,
    after: str | None = None,
    customer_id: uuid.UUID | None = None,
    action: str | None = None,
) -> AuditPage:
    """Newest first, optionally for one customer or one action."""
    policy.require(actor, "audit.read")
    inputs.optional_text(ctx, action, "action")
    query = newest_first(policy.visible_audit(actor), AuditEntry.occurred_at, AuditEntry.id, first=first, after=after)
    if customer_id is not None:
        query = query.where(AuditEntry.on_behalf_of_customer_id == customer_id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    async with ctx.db.read() as session:
        entries = list(await session.scalars(query))
    return AuditPage(*cut_page(entries, first, lambda entry: encode_cursor(entry.occurred_at, entry.id)))
