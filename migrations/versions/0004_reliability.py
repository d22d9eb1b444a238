"""reliability: jobs whose enqueue failed while Redis was unreachable

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "pending_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("func", sa.String(length=200), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("job_id", sa.String(length=100), nullable=True),
        sa.Column("queue", sa.String(length=20), nullable=False),
        sa.Column("delay_seconds", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_jobs")),
        sa.UniqueConstraint("job_id", name=op.f("uq_pending_jobs_job_id")),
    )


def downgrade():
    op.drop_table("pending_jobs")
