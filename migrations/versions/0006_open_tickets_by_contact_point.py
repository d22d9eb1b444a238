"""tickets: a sender's open ticket is read from an index of open tickets alone

The phone look-up of intake asks for a contact point's latest open ticket. With one
index per column, the planner could combine the contact point's index with the status
index, reading every open ticket's entry on each message. A partial index of open
tickets by contact point serves it alone (a number has few tickets). Last activity is
left out of it: the ticket touched on every message stays a HOT update.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OPEN = "status IN ('new', 'open', 'pending_citizen')"


def upgrade():
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index("ix_tickets_open_by_contact_point",
                              ["contact_point_id"], unique=False,
                              postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))


def downgrade():
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_open_by_contact_point")
