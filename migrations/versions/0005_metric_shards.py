"""metrics: counter rows spread over shards so concurrent contacts do not queue on one row

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("metrics_hourly", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shard", sa.SmallInteger(), server_default="0",
                                      nullable=False))
        batch_op.drop_constraint("uq_metrics_hourly_key", type_="unique")
        batch_op.create_unique_constraint(
            "uq_metrics_hourly_key", ["hour", "queue", "channel", "language", "segment", "shard"])


def downgrade():
    # Fold the shards back into shard 0 before the narrower key returns.
    counters = [c.name for c in sa.inspect(op.get_bind()).get_columns("metrics_hourly")
                if c.name not in ("id", "hour", "queue", "channel", "language", "segment",
                                  "shard")]
    keys = "hour, queue, channel, language, segment"
    sums = ", ".join(f"sum({c})" for c in counters)
    op.execute(f"CREATE TEMPORARY TABLE metrics_folded AS SELECT {keys}, {sums} "
               f"FROM metrics_hourly GROUP BY {keys}")
    op.execute("DELETE FROM metrics_hourly")
    op.execute(f"INSERT INTO metrics_hourly ({keys}, {', '.join(counters)}) "
               f"SELECT * FROM metrics_folded")
    op.execute("DROP TABLE metrics_folded")
    with op.batch_alter_table("metrics_hourly", schema=None) as batch_op:
        batch_op.drop_constraint("uq_metrics_hourly_key", type_="unique")
        batch_op.create_unique_constraint(
            "uq_metrics_hourly_key", ["hour", "queue", "channel", "language", "segment"])
        batch_op.drop_column("shard")
