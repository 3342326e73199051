"""Outbox delivery: leases, attempts, backoff, Message-ID, HTML part, delivery states.

Revision ID: 7d1e5a0b11a1
Revises: 58bcc55cb401
Create Date: 2026-11-30 10:00:00

"""
import hashlib
import os
from email.utils import parseaddr
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '7d1e5a0b11a1'
down_revision: Union[str, Sequence[str], None] = '58bcc55cb401'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_STATUS = sa.Enum('queued', 'sending', 'sent', 'failed', name='outbox_status', native_enum=False,
                  create_constraint=True, length=16)


def _message_id(dedupe_key: str, domain: str) -> str:
    # The same derivation as api.services.mail.message_id_for, frozen here for the rows already queued.
    return f"<{hashlib.sha256(dedupe_key.encode()).hexdigest()[:32]}@{domain}>"


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('extra_emails', sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
        batch_op.add_column(sa.Column('html_body', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('message_id', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('status', _STATUS, nullable=True))
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('send_started_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('crash_resends', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True))

    # Messages queued before delivery existed: sent ones stay sent, the rest are due now.
    outbox = sa.table(
        'outbox_messages', sa.column('id', sa.Uuid()), sa.column('dedupe_key', sa.String()),
        sa.column('message_id', sa.String()), sa.column('status', sa.String()),
        sa.column('sent_at', sa.DateTime(timezone=True)), sa.column('created_at', sa.DateTime(timezone=True)),
        sa.column('next_attempt_at', sa.DateTime(timezone=True)),
    )
    connection = op.get_bind()
    connection.execute(
        outbox.update().values(
            status=sa.case((outbox.c.sent_at.is_(None), 'queued'), else_='sent'),
            next_attempt_at=outbox.c.created_at,
        )
    )
    domain = parseaddr(os.environ.get('ENTITLE_MAIL_FROM') or 'entitle@localhost')[1].rpartition('@')[2] or 'localhost'
    rows = connection.execute(sa.select(outbox.c.id, outbox.c.dedupe_key)).all()
    if rows:
        connection.execute(
            outbox.update().where(outbox.c.id == sa.bindparam('row_id')).values(message_id=sa.bindparam('mid')),
            [{'row_id': row.id, 'mid': _message_id(row.dedupe_key, domain)} for row in rows],
        )

    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.alter_column('message_id', existing_type=sa.String(length=200), nullable=False)
        batch_op.alter_column('status', existing_type=_STATUS, nullable=False)
        batch_op.alter_column('next_attempt_at', existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.create_check_constraint(batch_op.f('ck_outbox_messages_attempts_not_negative'), 'attempts >= 0')
        batch_op.drop_index('ix_outbox_messages_pending')
        batch_op.create_index('ix_outbox_messages_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_outbox_messages_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_outbox_messages_status_created', ['status', 'created_at'], unique=False)
        batch_op.create_index('ix_outbox_messages_customer_created', ['customer_id', 'created_at'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_messages_customer_created')
        batch_op.drop_index('ix_outbox_messages_status_created')
        batch_op.drop_index('ix_outbox_messages_created')
        batch_op.drop_index('ix_outbox_messages_due')
        batch_op.create_index('ix_outbox_messages_pending', ['sent_at', 'created_at'], unique=False)
        batch_op.drop_constraint(batch_op.f('ck_outbox_messages_attempts_not_negative'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_outbox_messages_outbox_status'), type_='check')
        batch_op.drop_column('failed_at')
        batch_op.drop_column('crash_resends')
        batch_op.drop_column('send_started_at')
        batch_op.drop_column('lease_owner')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('status')
        batch_op.drop_column('message_id')
        batch_op.drop_column('html_body')
        batch_op.drop_column('extra_emails')
