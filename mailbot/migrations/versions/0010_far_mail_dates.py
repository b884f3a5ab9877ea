"""Mail dates no reader can hold: a Date header past the year 9999 in UTC (`31 Dec 9999
23:59:59 -1200`) was stored by PostgreSQL as a moment of the year 10000, and every query
that loads the message then failed (the digest, `case list --json`, `case show`). Mail read
since is kept without such a date (`office_time.storable`); this clears the ones stored before.

Revision ID: 0010
Revises: 0009
"""
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

# The last moment every time zone can show, as `office_time.storable` has it.
_LAST = '9999-12-31 00:00:00+00:00'


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return  # SQLite kept the wall time, a year Python reads
    for column in ('sent_at', 'original_date'):
        op.execute(f"UPDATE message SET {column} = NULL WHERE {column} >= TIMESTAMPTZ '{_LAST}'")


def downgrade() -> None:
    pass  # the dates cleared could not be read back
