"""The staff queue reads open tickets by due instant from a partial index instead of sorting every open one.

Revision ID: 7d1e5a0b1208
Revises: 7d1e5a0b1207
Create Date: 2026-11-30 14:30:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '7d1e5a0b1208'
down_revision: Union[str, Sequence[str], None] = '7d1e5a0b1207'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OPEN = "status IN ('new', 'acknowledged', 'in_progress', 'waiting_on_customer')"


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_status_sla_due')
        batch_op.create_index(
            'ix_tickets_open_due', ['sla_due_at', 'created_at', 'id'], unique=False,
            postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN),
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_open_due', postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
        batch_op.create_index('ix_tickets_status_sla_due', ['status', 'sla_due_at'], unique=False)
