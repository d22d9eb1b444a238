"""routing clocks on agents and work items

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idle_since', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('wrap_up_until', sa.DateTime(), nullable=True))
    with op.batch_alter_table('work_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queued_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('sla_due_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('sla_breached', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('overflow_stage', sa.Integer(), nullable=False,
                                      server_default='0'))


def downgrade():
    with op.batch_alter_table('work_items', schema=None) as batch_op:
        batch_op.drop_column('overflow_stage')
        batch_op.drop_column('sla_breached')
        batch_op.drop_column('sla_due_at')
        batch_op.drop_column('queued_at')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('wrap_up_until')
        batch_op.drop_column('idle_since')
