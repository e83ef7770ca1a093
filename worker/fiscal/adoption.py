"""Read the register's documents after the ledger's watermark before sending anything.

Run by a lane at start, after any pause or lease takeover, and whenever the register's last FD is
not the one the ledger expects; and by ``kkt-worker adopt`` (an admin's decision for a register
with a long history). What each document becomes is decided in :mod:`worker.ledger.documents`.

The scan is bounded (``adoption.max_scan_documents``; a real register reads about one document per
0.3–1 s) and resumable: the watermark is committed after every batch, so a crash or a stop costs
at most one batch of reading again.
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import Callable

from kkt_drivers.base import Driver
from kkt_drivers.receipt import DeviceStatus
from worker.errors import WorkerError
from worker.ledger.leases import Fence
from worker.ledger.store import Ledger

log = logging.getLogger(__name__)

#: documents read back per ledger transaction (and per progress line)
SCAN_BATCH = 20

Progress = Callable[[int, int, Counter], None]


class ScanRefused(WorkerError):
    """The lane must not send until an admin decides (history too long, unreadable document, wrong register)."""


class Scanner:
    """Examines one register's documents after the watermark."""

    def __init__(self, register: str, driver: Driver, ledger: Ledger, fence: Callable[[], Fence | None], *,
                 max_documents: int, keep_lease: Callable[[], object] = lambda: None,
                 progress: Progress | None = None, batch: int = SCAN_BATCH) -> None:
        self.register = register
        self.driver = driver
        self.ledger = ledger
        self.fence = fence
        self.max_documents = max_documents
        self.keep_lease = keep_lease
        self.progress = progress
        self.batch = batch

    def start_point(self, fn_serial: str) -> int:
        """The watermark; for a ledger that never scanned this FN, the highest FD it recorded itself
        (0 for a new or lost ledger, which then examines the register's whole history)."""
        wm = self.ledger.watermark(self.register, fn_serial)
        return wm if wm is not None else self.ledger.own_last_fd(fn_serial)

    def needed(self, status: DeviceStatus) -> bool:
        """Whether the register shows documents the ledger has not accounted for."""
        return status.last_fd_number != self.ledger.watermark(self.register, status.fn_serial)

    def sync(self, status: DeviceStatus, *, from_fd: int | None = None, bounded: bool = True) -> Counter:
        """Examine every document after the watermark (or from *from_fd*) up to the register's last FD."""
        fn, last = status.fn_serial, status.last_fd_number
        if not self.driver.reads_documents:
            # a service answering only by our key: nothing to scan (recovery asks by key instead)
            self.ledger.set_watermark(self.register, fn, last, fence=self.fence())
            return Counter()
        start = from_fd - 1 if from_fd is not None else self.start_point(fn)
        if from_fd is not None:
            self.ledger.set_watermark(self.register, fn, start, fence=self.fence())
        if last < start:
            raise ScanRefused(f"register {self.register} (FN {fn}) shows last FD {last}, below the ledger's "
                              f"FD {start}: is this the right register? (`kkt-worker adopt --from-fd` to decide)")
        if bounded and last - start > self.max_documents:
            raise ScanRefused(
                f"register {self.register} (FN {fn}) has {last - start} documents after FD {start} that the ledger "
                f"has not examined (more than adoption.max_scan_documents = {self.max_documents}); nothing is sent "
                f"until an admin runs `kkt-worker adopt --register {self.register} --from-fd N`")
        counts: Counter = Counter()
        if last == start:
            self.ledger.set_watermark(self.register, fn, last, fence=self.fence())
            return counts
        log.info("examining documents %d..%d of register %s (FN %s) before sending", start + 1, last,
                 self.register, fn, extra={"register": self.register})
        pos = start
        while pos < last:
            upto = min(last, pos + self.batch)
            docs = []
            for number in range(pos + 1, upto + 1):
                doc = self.driver.document(number)
                if doc is None:
                    raise ScanRefused(f"document {number} of register {self.register} cannot be read back; "
                                      f"check it on the register, then `kkt-worker adopt --register "
                                      f"{self.register} --from-fd {number + 1}`")
                docs.append(doc)
            self.keep_lease()
            for ex in self.ledger.record_examined(self.register, fn, docs, upto, fence=self.fence()):
                counts[ex.disposition] += 1
            pos = upto
            if self.progress:
                self.progress(pos, last, counts)
        log.info("register %s examined up to FD %d: %s", self.register, last,
                 ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing new",
                 extra={"register": self.register})
        return counts
