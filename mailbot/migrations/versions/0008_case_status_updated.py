"""case (status, updated_at) index: the digest's open cases idle for `digest.idle_after_days`
and `mailbot status`'s count of them, read by ranges of the last activity

Revision ID: 0008
Revises: 0007
"""
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_case_status_updated', 'case', ['status', 'updated_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_case_status_updated', table_name='case')
