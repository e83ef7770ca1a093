"""receipts: the shop line number of each receipt line (refunds mirror the receipt as issued)

Revision ID: 0005_rcpt
Revises: 0004_cb
Create Date: 2026-11-30 15:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_rcpt'
down_revision = '0004_cb'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lines', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.drop_column('lines')
