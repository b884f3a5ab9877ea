"""case.duplicate_of_id index: `mailbot case show` lists the duplicates of a case by it,
instead of reading every case

Revision ID: 0009
Revises: 0008
"""
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_case_duplicate_of', 'case', ['duplicate_of_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_case_duplicate_of', table_name='case')
