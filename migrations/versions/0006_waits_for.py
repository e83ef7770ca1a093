"""receipts: what each receipt waits for (waits_for_source, waits_for_stage)

The lanes used to re-derive, row by row, whether a refund waits for its sale, a settlement for its
prepayment, a correction for the parts before it; the rule is now stored with the receipt when it
is planned (worker.receipts.stages) and the due query checks it. Existing rows get the same values
the planner would give them now, so a receipt already queued keeps waiting as before.

Revision ID: 0006_waits
Revises: 0005_rcpt
Create Date: 2026-11-30 15:00:00
"""
import json

from alembic import op
import sqlalchemy as sa


revision = '0006_waits'
down_revision = '0005_rcpt'
branch_labels = None
depends_on = None

#: 1214 values of an advance (full/partial prepayment, advance): a refund of these waits for the prepayment
_PREPAID_METHODS = {1, 2, 3}


def upgrade() -> None:
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('waits_for_source', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('waits_for_stage', sa.String(length=16), nullable=True))

    # the same rule as worker.receipts.stages.prerequisite, written out so the migration never changes
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT r.id, r.stage, r.part, r.body, p.source_id, p.refund_of FROM receipts r "
        "JOIN payments p ON p.id = r.payment_id WHERE r.stage IN ('refund', 'settlement', 'correction')")).all()
    for rid, stage, part, body, source_id, refund_of in rows:
        waits = None
        if stage == 'refund' and refund_of is not None:
            items = json.loads(body)["items"] if body else []
            prepaid = any(int(it["payment_method"]) in _PREPAID_METHODS for it in items)
            waits = (refund_of, 'prepayment' if prepaid else None)
        elif stage == 'settlement':
            waits = (source_id, 'prepayment')
        elif stage == 'correction' and part > 1:
            waits = (source_id, 'correction')
        if waits is not None:
            conn.execute(sa.text("UPDATE receipts SET waits_for_source = :s, waits_for_stage = :st WHERE id = :id"),
                         {"s": waits[0], "st": waits[1], "id": rid})


def downgrade() -> None:
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.drop_column('waits_for_stage')
        batch_op.drop_column('waits_for_source')
