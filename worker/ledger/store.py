"""The ledger: every read and write, one class per concern, assembled here.

The ledger is the only place the two stages meet: ingest writes payments and planned receipts
(:mod:`~worker.ledger.ingest_writes`), lanes move receipts through :mod:`worker.ledger.states`
(:mod:`~worker.ledger.lane_writes`), the CLI reads it (:mod:`~worker.ledger.reads`), operations keep their alerts
(:mod:`~worker.ledger.ops_writes`) and the shop's callbacks (:mod:`~worker.ledger.callback_writes`). Every state
change is a compare-and-set on the expected state (:mod:`~worker.ledger.base`). Times are naive UTC.
"""
from __future__ import annotations

from worker.ledger.callback_writes import CallbackWrites
from worker.ledger.cluster_writes import ClusterWrites
from worker.ledger.ingest_writes import IngestWrites
from worker.ledger.leases import Fence
from worker.ledger.ops_writes import OpsWrites
from worker.ledger.reads import AdminReads
from worker.ledger.records import (
    Gap,
    IngestEntry,
    PlannedRow,
    ReceiptRecord,
    SettlementEntry,
    utcnow,
)

__all__ = ["Ledger", "Fence", "Gap", "IngestEntry", "PlannedRow", "ReceiptRecord",
           "SettlementEntry", "utcnow"]


class Ledger(IngestWrites, ClusterWrites, AdminReads, OpsWrites, CallbackWrites):
    """The ledger at one database URL."""
