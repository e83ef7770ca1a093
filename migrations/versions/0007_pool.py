"""register pool: a register group per receipt (routing) and the claim index

Revision ID: 0005_pool
Revises: 0006_waits
Create Date: 2026-11-30 15:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_pool'
down_revision = '0006_waits'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('register_group', sa.String(length=32), nullable=False,
                                      server_default='default'))
        batch_op.create_index('ix_receipts_claim', ['state', 'register_group', 'next_attempt_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.drop_index('ix_receipts_claim')
        batch_op.drop_column('register_group')
