"""marking results: the FN's 2106 of every marked line, per receipt (receipt_marks)

Revision ID: 0010_marks
Revises: 0009_alert_sinks
Create Date: 2026-11-30 18:10:00

(Chained after main's head 0009_alert_sinks at the time of writing; re-chain at merge if another lands first.)
"""
from alembic import op
import sqlalchemy as sa


revision = '0010_marks'
down_revision = '0009_alert_sinks'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('receipt_marks',
    sa.Column('receipt_id', sa.Integer(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('result', sa.Integer(), nullable=False),
    sa.Column('checked_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['receipt_id'], ['receipts.id'], name=op.f('fk_receipt_marks_receipt_id_receipts')),
    sa.PrimaryKeyConstraint('receipt_id', 'line', name=op.f('pk_receipt_marks'))
    )


def downgrade() -> None:
    op.drop_table('receipt_marks')
