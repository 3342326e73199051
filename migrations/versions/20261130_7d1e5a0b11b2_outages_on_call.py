"""Availability outages and on-call reservations.

Revision ID: 7d1e5a0b11b2
Revises: 7d1e5a0b11a1
Create Date: 2026-11-30 10:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '7d1e5a0b11b2'
down_revision: Union[str, Sequence[str], None] = '7d1e5a0b11a1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    pass


def downgrade() -> None:
    """Downgrade schema."""
    pass
