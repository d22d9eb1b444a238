"""metrics: hourly contact-center counters

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COUNTERS = ["contacts", "outbound", "tickets", "escalated", "offered", "answered",
            "answered_in_sla", "wait_sum", "abandoned", "abandoned_in_sla", "callbacks",
            "handled", "handle_sum", "resolved", "resolved_first_contact", "resolution_sum",
            "surveys", "survey_points", "kb_queries", "kb_self_served"]
BIG = {"wait_sum", "handle_sum", "resolution_sum"}


def upgrade():
    op.create_table(
        "metrics_hourly",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(), nullable=False),
        sa.Column("queue", sa.String(length=50), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("segment", sa.String(length=50), nullable=False),
        *[sa.Column(name, sa.BigInteger() if name in BIG else sa.Integer(),
                    server_default="0", nullable=False) for name in COUNTERS],
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metrics_hourly")),
        sa.UniqueConstraint("hour", "queue", "channel", "language", "segment",
                            name="uq_metrics_hourly_key"),
    )
    with op.batch_alter_table("metrics_hourly", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_metrics_hourly_hour"), ["hour"], unique=False)


def downgrade():
    with op.batch_alter_table("metrics_hourly", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_metrics_hourly_hour"))
    op.drop_table("metrics_hourly")
