"""matching tables and columns

Case: citizen_name_key (+ index with created_at), match_text, match_agencies,
co_recipients; table case_key (agency file numbers and MinHash band keys).
Cases recorded before this migration are not back-filled: they are still found by
reference, Message-ID and citizen address, and their empty match_text scores 0.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('citizen_name_key', sa.String(length=200), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('match_text', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('match_agencies', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('co_recipients', sa.JSON(), server_default='[]', nullable=False))
        batch_op.create_index('ix_case_name_key_created', ['citizen_name_key', 'created_at'], unique=False)

    op.create_table('case_key',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('case_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_key_case_id'), ['case_id'], unique=False)
        batch_op.create_index('ix_case_key_lookup', ['kind', 'value', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('case_key', schema=None) as batch_op:
        batch_op.drop_index('ix_case_key_lookup')
        batch_op.drop_index(batch_op.f('ix_case_key_case_id'))

    op.drop_table('case_key')
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.drop_index('ix_case_name_key_created')
        batch_op.drop_column('co_recipients')
        batch_op.drop_column('match_agencies')
        batch_op.drop_column('match_text')
        batch_op.drop_column('citizen_name_key')
