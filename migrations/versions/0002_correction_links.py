"""correction receipts: link to the receipt they correct

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 23:55:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('corrects_tag', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('corrects_fiscal_sign', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.drop_column('corrects_fiscal_sign')
        batch_op.drop_column('corrects_tag')
