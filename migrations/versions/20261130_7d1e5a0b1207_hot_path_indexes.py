"""Indexes for the hot read paths: the ticket list's order and filters, and what the query-plan test needs.

Revision ID: 7d1e5a0b1207
Revises: 7d1e5a0b11f6
Create Date: 2026-11-30 14:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '7d1e5a0b1207'
down_revision: Union[str, Sequence[str], None] = '7d1e5a0b11f6'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_created', ['created_at', 'id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_created')
