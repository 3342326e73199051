"""Tickets keep their next SLA due instant, so the staff queue sorts by it in SQL; filled in for the tickets
already there by replaying their events.

Revision ID: 7d1e5a0b11d4
Revises: 7d1e5a0b11c3
Create Date: 2026-11-30 11:00:00

"""
from collections import defaultdict
from types import SimpleNamespace
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '7d1e5a0b11d4'
down_revision: Union[str, Sequence[str], None] = '7d1e5a0b11c3'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sla_due_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_tickets_status_sla_due', ['status', 'sla_due_at'], unique=False)
    _fill_in()


def _fill_in() -> None:
    """Each open ticket's due instant as of its latest event, computed by the service's own rule (read through
    table stubs: the models may have moved on since this revision)."""
    from api.models.base import UTCDateTime
    from api.programs.schema import Program
    from api.services.tickets import next_due

    tickets = sa.table(
        "tickets", sa.column("id", sa.Uuid()), sa.column("severity", sa.String()), sa.column("status", sa.String()),
        sa.column("contract_id", sa.Uuid()), sa.column("sla_due_at", UTCDateTime()),
    )
    events = sa.table(
        "ticket_events", sa.column("ticket_id", sa.Uuid()), sa.column("position", sa.Integer()),
        sa.column("kind", sa.String()), sa.column("at", UTCDateTime()), sa.column("severity", sa.String()),
        sa.column("plan", sa.String()), sa.column("automatic", sa.Boolean()),
        sa.column("next_update_at", UTCDateTime()),
    )
    contracts = sa.table("contracts", sa.column("id", sa.Uuid()), sa.column("plan_id", sa.Uuid()))
    plans = sa.table("plans", sa.column("id", sa.Uuid()), sa.column("code", sa.String()), sa.column("program_id", sa.Uuid()))
    programs = sa.table("programs", sa.column("id", sa.Uuid()), sa.column("document", sa.JSON()))

    bind = op.get_bind()
    open_tickets = bind.execute(
        sa.select(tickets.c.id, tickets.c.severity, plans.c.code, programs.c.id.label("program_id"), programs.c.document)
        .join(contracts, contracts.c.id == tickets.c.contract_id)
        .join(plans, plans.c.id == contracts.c.plan_id)
        .join(programs, programs.c.id == plans.c.program_id)
        .where(tickets.c.status.not_in(("resolved", "closed")))
    ).all()
    if not open_tickets:
        return
    history = defaultdict(list)
    for row in bind.execute(
        sa.select(events.c.ticket_id, events.c.kind, events.c.at, events.c.severity, events.c.plan,
                  events.c.automatic, events.c.next_update_at).order_by(events.c.ticket_id, events.c.position)
    ):
        history[row.ticket_id].append(SimpleNamespace(**row._mapping))
    parsed: dict[object, Program] = {}
    for ticket in open_tickets:
        if not history[ticket.id]:
            continue
        if ticket.program_id not in parsed:
            parsed[ticket.program_id] = Program.model_validate(ticket.document)
        view = SimpleNamespace(
            ticket=SimpleNamespace(severity=ticket.severity),
            events=history[ticket.id],
            plan=SimpleNamespace(record=SimpleNamespace(code=ticket.code), program=parsed[ticket.program_id]),
        )
        due = next_due(view, history[ticket.id][-1].at)  # type: ignore[arg-type]
        bind.execute(tickets.update().where(tickets.c.id == ticket.id).values(sla_due_at=due))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_status_sla_due')
        batch_op.drop_column('sla_due_at')
