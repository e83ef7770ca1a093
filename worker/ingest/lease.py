"""Ingest once at a time across a cluster: the ingest lease (docs/cluster.md).

In cluster mode every worker runs the poll loop, but only the holder of the ingest lease — a row
named :data:`~worker.defaults.INGEST_LEASE` in the same ``register_leases`` table, with its own
fencing epoch — reads the shop and writes cursor, gaps and new payments. Every such write checks the
epoch in its own transaction (:meth:`IngestWrites.apply_ingest`), so an ex-ingester that froze or lost
its link can never move the cursor back once another worker took the lease over. The others stand
by and try to take the lease each poll interval; they get it when it expired by the ledger server's
clock (or at once when its holder on the same node is certainly dead).
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from worker.defaults import INGEST_LEASE
from worker.errors import LeaseHeld, LeaseLost
from worker.ledger.leases import Fence
from worker.ledger.store import Ledger

log = logging.getLogger(__name__)

#: renew when this share of the TTL has passed since the last renewal started (the poll loop turns
#: every ``source.poll_interval_s``, far more often than that)
RENEW_AT = 0.5


class IngestLease:
    """This worker's hold on the cluster's ingest lease: acquire, renew in time, stand by."""

    def __init__(self, ledger: Ledger, holder: str, ttl_s: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ledger = ledger
        self.holder = holder
        self.ttl_s = ttl_s
        self.clock = clock
        self.fence: Fence | None = None
        self._since = 0.0
        self._held_by: str | None = None

    def ensure(self) -> bool:
        """True while this worker holds the ingest lease (taken or renewed now if due); False while another
        live worker has it. A lease taken over behind our back is logged and given up (False)."""
        started = self.clock()
        if self.fence is None:
            try:
                self.fence = self.ledger.acquire_lease(INGEST_LEASE, self.holder, self.ttl_s)
            except LeaseHeld as exc:
                if self._held_by != exc.holder:
                    log.info("ingest standing by: %s ingests", exc.holder)
                    self._held_by = exc.holder
                return False
            self._since, self._held_by = started, None
            log.warning("ingest lease taken: epoch %d; this worker ingests for the cluster", self.fence.epoch)
            return True
        if started - self._since >= self.ttl_s * RENEW_AT:
            try:
                self.fence = self.ledger.renew_lease(self.fence, self.ttl_s)
            except LeaseLost as exc:
                self.lost(exc)
                return False
            self._since = started
        return True

    def current(self) -> Fence | None:
        """The fence every ingest write carries (None while not holding: such a write is refused)."""
        return self.fence if self.fence is not None else _NOT_HELD

    def lost(self, exc: BaseException) -> None:
        """Our ingest lease was taken over (we froze or our link stalled): ingest no more until we get it back."""
        log.error("ingest lease lost, this worker stops ingesting: %s", exc)
        self.fence = None

    def release(self) -> None:
        """Give the lease back on a clean stop, so a standby ingests at once instead of after expiry."""
        if self.fence is not None:
            try:
                self.ledger.release_lease(self.fence)
            except Exception:   # it then simply expires
                log.debug("ingest lease not released", exc_info=True)
            self.fence = None


#: a fence no lease row ever matches: a write attempted without the lease fails its check (never unfenced)
_NOT_HELD = Fence(INGEST_LEASE, "(not held)", -1, None)  # type: ignore[arg-type]
