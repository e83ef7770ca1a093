"""alerts: delivery recorded per sink (a webhook that got the message is not re-sent while SMTP is down)

Revision ID: 0009_alert_sinks
Revises: 0007_fence
Create Date: 2026-11-30 17:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009_alert_sinks'
down_revision = '0007_fence'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL = no sink has the current state's message yet; rows already delivered keep delivered = 1
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivered_sinks', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_column('delivered_sinks')
