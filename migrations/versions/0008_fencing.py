"""fencing: register leases with an epoch, watermarks, examined register documents, schedules, drift

Revision ID: 0007_fence
Revises: 0005_pool
Create Date: 2026-11-30 15:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_fence'
down_revision = '0005_pool'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('register_leases',
    sa.Column('register', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('acquired_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('register', name=op.f('pk_register_leases'))
    )
    op.create_table('register_watermarks',
    sa.Column('register', sa.String(length=64), nullable=False),
    sa.Column('fn_serial', sa.String(length=32), nullable=False),
    sa.Column('last_fd', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('register', 'fn_serial', name=op.f('pk_register_watermarks'))
    )
    op.create_table('register_documents',
    sa.Column('fn_serial', sa.String(length=32), nullable=False),
    sa.Column('fd_number', sa.Integer(), nullable=False),
    sa.Column('register', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('tag', sa.String(length=16), nullable=True),
    sa.Column('operation', sa.Integer(), nullable=True),
    sa.Column('total', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('fiscal_sign', sa.BigInteger(), nullable=True),
    sa.Column('shift_number', sa.Integer(), nullable=True),
    sa.Column('receipt_number', sa.Integer(), nullable=True),
    sa.Column('issued_at', sa.DateTime(), nullable=True),
    sa.Column('disposition', sa.String(length=16), nullable=False),
    sa.Column('receipt_id', sa.Integer(), nullable=True),
    sa.Column('examined_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('fn_serial', 'fd_number', name=op.f('pk_register_documents'))
    )
    with op.batch_alter_table('register_documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_register_documents_register_documents_tag'), ['tag'], unique=False)
    op.create_table('schedules',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('next_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_schedules'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('drift', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_column('drift')
    op.drop_table('schedules')
    with op.batch_alter_table('register_documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_register_documents_register_documents_tag'))
    op.drop_table('register_documents')
    op.drop_table('register_watermarks')
    op.drop_table('register_leases')
