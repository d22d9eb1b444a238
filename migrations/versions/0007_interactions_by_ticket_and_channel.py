"""interactions: a ticket's messages on one channel are read from one index

Replies and follow-ups ask for a ticket's last inbound message on a channel (the
address and thread to answer) and whether a text acknowledged it already. With one
index on the ticket and another on (channel, provider id), the planner could combine
the two, reading every message of the channel on each question, as it did on a young
database whose statistics were not yet gathered. One index on (ticket, channel, id)
serves these questions alone, newest first, and everything the ticket's own index
served (it replaces that index, so a message still updates as many indexes).

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.create_index("ix_interactions_ticket_channel",
                              ["ticket_id", "channel", "id"], unique=False)
        batch_op.drop_index("ix_interactions_ticket_id")


def downgrade():
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.create_index("ix_interactions_ticket_id", ["ticket_id"], unique=False)
        batch_op.drop_index("ix_interactions_ticket_channel")
