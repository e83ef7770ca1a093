"""shop callbacks

Revision ID: 0004_cb
Revises: 0003_ops
Create Date: 2026-11-30 15:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_cb'
down_revision = '0003_ops'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('callbacks',
    sa.Column('receipt_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_try_at', sa.DateTime(), nullable=False),
    sa.Column('delivered_at', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['receipt_id'], ['receipts.id'], name=op.f('fk_callbacks_receipt_id_receipts')),
    sa.PrimaryKeyConstraint('receipt_id', 'state', name=op.f('pk_callbacks'))
    )


def downgrade() -> None:
    op.drop_table('callbacks')
