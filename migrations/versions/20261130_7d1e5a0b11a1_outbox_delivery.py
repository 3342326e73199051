"""Outbox delivery: leases, attempts, backoff, Message-ID, HTML part, delivery states.

Revision ID: 7d1e5a0b11a1
Revises: 58bcc55cb401
Create Date: 2026-11-30 10:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '7d1e5a0b11a1'
down_revision: Union[str, Sequence[str], None] = '58bcc55cb401'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    pass


def downgrade() -> None:
    """Downgrade schema."""
    pass
