"""outbox.recipient_key: the recipient's mailbox (lower-cased, +tag dropped), indexed, for the
per-address reply limit

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def _key(address: str) -> str:  # as mailbot.recipients.mailbox_key, frozen here
    local, at, domain = address.lower().rpartition("@")
    if not at:
        return address.lower()
    return f"{local.split('+', 1)[0] or local}@{domain}"


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recipient_key', sa.String(length=320), server_default='', nullable=False))
        batch_op.create_index('ix_outbox_recipient_key', ['recipient_key'], unique=False)
    outbox = sa.table('outbox', sa.column('id', sa.Integer), sa.column('recipient', sa.String),
                      sa.column('recipient_key', sa.String))
    connection = op.get_bind()
    rows = connection.execute(sa.select(outbox.c.id, outbox.c.recipient)).all()
    for start in range(0, len(rows), 1000):
        connection.execute(outbox.update().where(outbox.c.id == sa.bindparam('b_id'))
                           .values(recipient_key=sa.bindparam('b_key')),
                           [{'b_id': row.id, 'b_key': _key(row.recipient)} for row in rows[start:start + 1000]])


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_recipient_key')
        batch_op.drop_column('recipient_key')
