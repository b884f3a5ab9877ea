"""operations tables and columns: indexes for the digest, report and retention windows

Revision ID: 0003
Revises: 0002
"""
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_message_received_at', 'message', ['received_at'], unique=False)
    op.create_index('ix_case_created_at', 'case', ['created_at'], unique=False)
    op.create_index('ix_case_closed_at', 'case', ['closed_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_case_closed_at', table_name='case')
    op.drop_index('ix_case_created_at', table_name='case')
    op.drop_index('ix_message_received_at', table_name='message')
