"""The ledger's tables (SQLAlchemy Core). Alembic migrations must produce exactly this."""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

MONEY = Numeric(14, 2, asdecimal=True)

#: characters of an error message the ledger keeps (receipts.last_error, attempts.error)
ERROR_MAX_CHARS = 2000
#: widths of the short text columns, so writers cut to them by name
OUTCOME_CHARS = 24        # attempts.outcome
REASON_CHARS = 64         # gap_log.reason
KIND_CHARS = 16           # payments.kind

#: one row per shop row (sale or refund), the exact snapshot it was built from
payments = Table(
    "payments", metadata,
    Column("id", Integer, primary_key=True),
    Column("source_id", BigInteger, nullable=False, unique=True),
    Column("kind", String(KIND_CHARS), nullable=False),
    Column("amount", MONEY, nullable=True),          # None when the shop's value was not a number
    Column("paid_at", DateTime, nullable=True),
    Column("refund_of", BigInteger, nullable=True),
    Column("snapshot", Text, nullable=False),         # ShopPayment.to_json(), Decimals as strings
    Column("ingested_at", DateTime, nullable=False),
    Column("refetched_at", DateTime, nullable=True),
    # the shop row changed or vanished after ingest (the receipt stays what was printed)
    Column("drift", Text, nullable=True),
)

#: the unit of exactly-once: one fiscal document per row
receipts = Table(
    "receipts", metadata,
    Column("id", Integer, primary_key=True),
    Column("payment_id", Integer, ForeignKey("payments.id"), nullable=False),
    Column("stage", String(16), nullable=False),      # worker.receipts.stages.Stage
    Column("part", Integer, nullable=False),
    Column("tag", String(16), nullable=False, unique=True),   # requisite 1192 on the document
    Column("state", String(16), nullable=False),       # worker.ledger.states.State
    Column("operation", Integer, nullable=True),
    Column("total", MONEY, nullable=True),
    Column("body", Text, nullable=True),              # the built Receipt as JSON
    Column("register", String(64), nullable=True),
    # the register group (legal entity / tax system) whose registers may print it (routing)
    Column("register_group", String(32), nullable=False, server_default="default"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime, nullable=False),
    # intent, written before the register is called
    Column("fn_serial", String(32), nullable=True),
    Column("fd_before", Integer, nullable=True),
    Column("intent_at", DateTime, nullable=True),
    # outcome: the requisites of the fiscal document
    Column("fd_number", Integer, nullable=True),
    Column("fiscal_sign", BigInteger, nullable=True),
    Column("shift_number", Integer, nullable=True),
    Column("receipt_number", Integer, nullable=True),
    Column("fiscal_at", DateTime, nullable=True),
    Column("qr", String(256), nullable=True),
    Column("error_class", String(16), nullable=True),
    Column("last_error", Text, nullable=True),
    # a correction receipt: the tag and fiscal sign (ФПД) of the receipt it reverses or replaces
    Column("corrects_tag", String(16), nullable=True),
    Column("corrects_fiscal_sign", BigInteger, nullable=True),
    # the shop's line_no of each line of the body, JSON [1, 1, 2]: refunds mirror the lines as issued
    Column("lines", Text, nullable=True),
    # what must be done first (worker.receipts.stages.Prerequisite): every receipt of shop row
    # waits_for_source (only of stage waits_for_stage, if set); the lanes' due query checks it
    Column("waits_for_source", BigInteger, nullable=True),
    Column("waits_for_stage", String(16), nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("payment_id", "stage", "part", name="uq_receipts_payment_stage_part"),
    Index("ix_receipts_state_next", "state", "next_attempt_at"),
    # the pool's claim: the head of one group's due queue, in ORDER BY order (next_attempt_at, id) so that
    # LIMIT 1 is one index seek — without id, PostgreSQL sorted every receipt of a batch on each claim
    Index("ix_receipts_claim", "state", "register_group", "next_attempt_at", "id"),
)

#: one row per register call (or reconciliation), so every receipt's history is visible
attempts = Table(
    "attempts", metadata,
    Column("id", Integer, primary_key=True),
    Column("receipt_id", Integer, ForeignKey("receipts.id"), nullable=False, index=True),
    Column("register", String(64), nullable=False),
    Column("action", String(16), nullable=False),     # send, reconcile
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime, nullable=True),
    Column("outcome", String(OUTCOME_CHARS), nullable=True),
    Column("fd_before", Integer, nullable=True),
    Column("fd_number", Integer, nullable=True),
    Column("error", Text, nullable=True),
)

#: the polling cursor per source table
ingest_cursor = Table(
    "ingest_cursor", metadata,
    Column("source", String(32), primary_key=True),
    Column("last_id", BigInteger, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

#: ids below the cursor not seen yet (a transaction that has not committed, or rolled back)
ingest_gaps = Table(
    "ingest_gaps", metadata,
    Column("source", String(32), primary_key=True),
    Column("id", BigInteger, primary_key=True),
    Column("first_seen_at", DateTime, nullable=False),
    Column("last_checked_at", DateTime, nullable=False),
    Column("checks", Integer, nullable=False, default=0),
)

#: gaps given up after their grace period, kept for forensics and ``status``
gap_log = Table(
    "gap_log", metadata,
    Column("source", String(32), primary_key=True),
    Column("id", BigInteger, primary_key=True),
    Column("first_seen_at", DateTime, nullable=False),
    Column("expired_at", DateTime, nullable=False),
    Column("reason", String(REASON_CHARS), nullable=False),
)

#: what each lane last saw of its register (for ``status``)
lanes = Table(
    "lanes", metadata,
    Column("name", String(64), primary_key=True),
    Column("state", String(16), nullable=False),      # running, paused, stopped
    Column("reason", Text, nullable=True),
    Column("fn_serial", String(32), nullable=True),
    Column("last_fd", Integer, nullable=True),
    Column("shift_open", Integer, nullable=True),
    Column("heartbeat_at", DateTime, nullable=False),
    # for health and metrics (worker/ops): since when paused, FN validity, OFD backlog, clock skew
    Column("paused_since", DateTime, nullable=True),
    Column("fn_expires_on", Date, nullable=True),
    Column("ofd_unsent", Integer, nullable=True),
    Column("ofd_oldest_at", DateTime, nullable=True),
    Column("clock_skew_s", Float, nullable=True),
)

#: one row per condition that needs a person: alerted once when it starts, once when it ends
alerts = Table(
    "alerts", metadata,
    Column("key", String(96), primary_key=True),     # code[:subject], see worker/ops/health.py
    Column("severity", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("state", String(16), nullable=False),      # firing, resolved
    Column("started_at", DateTime, nullable=False),
    Column("resolved_at", DateTime, nullable=True),
    Column("delivered", Integer, nullable=False),     # 1 once the current state's message went out to every sink
    # sinks (``Sink.name``, comma-separated) that already have the current state's message: a retry
    # after one sink failed goes only to the others (the webhook is not POSTed again while SMTP is down)
    Column("delivered_sinks", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("next_try_at", DateTime, nullable=False),
    Column("last_error", Text, nullable=True),
)

#: shop callbacks: one POST per receipt and final state, retried until the shop answers 2xx
callbacks = Table(
    "callbacks", metadata,
    Column("receipt_id", Integer, ForeignKey("receipts.id"), primary_key=True),
    Column("state", String(16), primary_key=True),    # done, rejected, needs_review
    Column("created_at", DateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_try_at", DateTime, nullable=False),
    Column("delivered_at", DateTime, nullable=True),
    Column("last_error", Text, nullable=True),
)

#: who may talk to a register: a lease with a fencing epoch (the database server's clock decides expiry)
register_leases = Table(
    "register_leases", metadata,
    Column("register", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),    # "<role>@<host>:<pid>:<process start>"
    Column("epoch", Integer, nullable=False),         # bumped by every new holder: the fencing token
    Column("expires_at", DateTime, nullable=False),   # server time (UTC)
    Column("acquired_at", DateTime, nullable=False),
)

#: per register and FN: the highest FD number the ledger has accounted for (made or examined)
register_watermarks = Table(
    "register_watermarks", metadata,
    Column("register", String(64), primary_key=True),
    Column("fn_serial", String(32), primary_key=True),
    Column("last_fd", Integer, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

#: every register document the ledger examined that it did not make in the normal path:
#: adopted ones (ours), service documents (shift reports), foreign ones (other software) and tags waiting for their payment
register_documents = Table(
    "register_documents", metadata,
    Column("fn_serial", String(32), primary_key=True),
    Column("fd_number", Integer, primary_key=True),
    Column("register", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("tag", String(16), nullable=True, index=True),
    Column("operation", Integer, nullable=True),
    Column("total", MONEY, nullable=True),
    Column("fiscal_sign", BigInteger, nullable=True),
    Column("shift_number", Integer, nullable=True),
    Column("receipt_number", Integer, nullable=True),
    Column("issued_at", DateTime, nullable=True),
    Column("disposition", String(16), nullable=False),  # ours, adopted, service, foreign, unclaimed, conflict
    Column("receipt_id", Integer, nullable=True),
    Column("examined_at", DateTime, nullable=False),
)

#: timers that must survive restarts (the anti-entropy sweep)
schedules = Table(
    "schedules", metadata,
    Column("name", String(32), primary_key=True),
    Column("next_at", DateTime, nullable=False),
)

#: the FN's check result (requisite 2106) of every marked line of a receipt, as the register answered
#: it when the receipt was made (a receipt found again by recovery has none: the FN then holds it)
receipt_marks = Table(
    "receipt_marks", metadata,
    Column("receipt_id", Integer, ForeignKey("receipts.id"), primary_key=True),
    Column("line", Integer, primary_key=True),        # index into the receipt body's items
    Column("code", Text, nullable=False),             # base64 of the raw code (GS kept)
    Column("result", Integer, nullable=False),        # 2106
    Column("checked_at", DateTime, nullable=False),
)

#: cluster mode (docs/cluster.md): one row per worker node, its heartbeat by the ledger server's clock
workers = Table(
    "workers", metadata,
    Column("node", String(48), primary_key=True),     # cluster.node (default: the host name)
    Column("holder", String(128), nullable=False),    # its lease holder id "worker@<node>:<pid>:<start>"
    Column("host", String(255), nullable=False),      # the real host name (two hosts sharing a node name show)
    Column("pid", Integer, nullable=False),
    Column("version", String(32), nullable=False),
    Column("registers", Text, nullable=False),        # JSON list: the registers in this worker's settings
    Column("state", String(16), nullable=False),      # running, stopped (a clean stop)
    Column("started_at", DateTime, nullable=False),   # server time (UTC)
    Column("heartbeat_at", DateTime, nullable=False), # server time (UTC)
)
