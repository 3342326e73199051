"""The ticket list filtered by who filed it reads an index in list order.

Revision ID: 7d1e5a0b1209
Revises: 7d1e5a0b1208
Create Date: 2026-11-30 15:00:00

"""
from typing import Sequence, Union

from alembic import op


# revision identifiers, used by Alembic.
revision: str = '7d1e5a0b1209'
down_revision: Union[str, Sequence[str], None] = '7d1e5a0b1208'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_filed_by_created', ['filed_by_ref', 'created_at', 'id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_filed_by_created')
