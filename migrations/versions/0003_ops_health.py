"""operations: lane health columns, alerts

Revision ID: 0003_ops
Revises: 0002
Create Date: 2026-11-30 14:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_ops'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('lanes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paused_since', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('fn_expires_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('ofd_unsent', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('ofd_oldest_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('clock_skew_s', sa.Float(), nullable=True))
    op.create_table('alerts',
    sa.Column('key', sa.String(length=96), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.Column('delivered', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_try_at', sa.DateTime(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_alerts'))
    )


def downgrade() -> None:
    op.drop_table('alerts')
    with op.batch_alter_table('lanes', schema=None) as batch_op:
        for col in ('clock_skew_s', 'ofd_oldest_at', 'ofd_unsent', 'fn_expires_on', 'paused_since'):
            batch_op.drop_column(col)
