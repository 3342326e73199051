"""Login throttling per account and source address.

Revision ID: 7d1e5a0b11e5
Revises: 7d1e5a0b11d4
Create Date: 2026-11-30 11:30:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '7d1e5a0b11e5'
down_revision: Union[str, Sequence[str], None] = '7d1e5a0b11d4'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    # Failures kept from before count against one shared "unknown" source until they leave the window.
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_address', sa.String(length=64), nullable=False, server_default='unknown'))
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.alter_column('source_address', server_default=None)
        batch_op.create_index('ix_login_failures_source_failed', ['source_address', 'failed_at'], unique=False)
        batch_op.create_index('ix_login_failures_failed', ['failed_at'], unique=False)

    op.create_table('login_alerts',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('alerted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_login_alerts_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_login_alerts'))
    )

    # A failed-logins alert to a staff or partner user belongs to no customer.
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.alter_column('customer_id', existing_type=sa.Uuid(), nullable=True)


def downgrade() -> None:
    """Downgrade schema."""
    # Messages that belong to no customer cannot be kept under the older schema.
    op.execute("DELETE FROM outbox_messages WHERE customer_id IS NULL")
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.alter_column('customer_id', existing_type=sa.Uuid(), nullable=False)

    op.drop_table('login_alerts')

    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_login_failures_failed')
        batch_op.drop_index('ix_login_failures_source_failed')
        batch_op.drop_column('source_address')
