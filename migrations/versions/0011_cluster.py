"""cluster: the workers table (several workers on one PostgreSQL ledger)

Revision ID: 0011_cluster
Revises: 0010_marks
Create Date: 2026-11-30 18:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011_cluster'
down_revision = '0010_marks'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('workers',
    sa.Column('node', sa.String(length=48), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('registers', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('node', name=op.f('pk_workers'))
    )


def downgrade() -> None:
    op.drop_table('workers')
