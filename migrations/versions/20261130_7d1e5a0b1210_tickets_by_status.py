"""The ticket list filtered by status reads an index in list order (a status with no old tickets no longer
makes a deep page read every older ticket).

Revision ID: 7d1e5a0b1210
Revises: 7d1e5a0b1209
Create Date: 2026-11-30 15:05:00

"""
from typing import Sequence, Union

from alembic import op


# revision identifiers, used by Alembic.
revision: str = '7d1e5a0b1210'
down_revision: Union[str, Sequence[str], None] = '7d1e5a0b1209'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_status_created', ['status', 'created_at', 'id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_status_created')
