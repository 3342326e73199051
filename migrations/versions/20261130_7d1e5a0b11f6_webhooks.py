"""Webhook subscriptions and their deliveries.

Revision ID: 7d1e5a0b11f6
Revises: 7d1e5a0b11e5
Create Date: 2026-11-30 11:30:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '7d1e5a0b11f6'
down_revision: Union[str, Sequence[str], None] = '7d1e5a0b11e5'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    pass


def downgrade() -> None:
    """Downgrade schema."""
    pass
