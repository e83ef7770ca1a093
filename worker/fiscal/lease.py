"""A lane's hold on its register's lease: acquire, renew in time, refuse to send on a stale lease.

The register itself cannot check a fencing token, so the last line of defence is time: a lane
renews when a quarter of the lease has passed and sends a receipt only while less than half of it
has passed since its last successful renewal *started* (measured on the monotonic clock, so the
local estimate is never later than the server's expiry). A takeover needs the old lease to have
expired by the server's clock, a full TTL after that renewal; the old holder would have to freeze
for more than TTL/2 exactly between this check and its first byte to the register.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from worker.errors import LeaseHeld, LeaseLost
from worker.ledger.leases import Fence
from worker.ledger.store import Ledger

log = logging.getLogger(__name__)

#: renew when this share of the TTL has passed since the last renewal started (an idle lane wakes every
#: TTL/3, so it renews by 2/3 of the TTL at the latest; a lane about to send renews first: SEND_DEADLINE)
RENEW_AT = 0.5
#: never start sending a receipt later than this share of the TTL after the last renewal started
SEND_DEADLINE = 0.5


class LeaseKeeper:
    """Holds (or waits for) one register's lease for one process."""

    def __init__(self, ledger: Ledger, register: str, holder: str, ttl_s: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ledger = ledger
        self.register = register
        self.holder = holder
        self.ttl_s = ttl_s
        self.clock = clock
        self.fence: Fence | None = None
        self._since = 0.0                 # monotonic time the last successful renewal started
        self.held_by: LeaseHeld | None = None

    def ensure(self) -> bool:
        """Hold the lease (acquire or renew when due). False while another live holder has it.

        Raises LeaseLost when a held lease was taken over; DBAPIError when the ledger is away.
        """
        started = self.clock()
        if self.fence is None:
            try:
                self.fence = self.ledger.acquire_lease(self.register, self.holder, self.ttl_s)
            except LeaseHeld as exc:
                if self.held_by is None or self.held_by.holder != exc.holder:
                    log.warning("standing by: %s", exc, extra={"register": self.register})
                self.held_by = exc
                return False
            self.held_by = None
            self._since = started
            log.info("lease taken: epoch %d until %s UTC", self.fence.epoch, self.fence.expires_at,
                     extra={"register": self.register})
            return True
        if started - self._since >= self.ttl_s * RENEW_AT:
            try:
                self.fence = self.ledger.renew_lease(self.fence, self.ttl_s)
            except LeaseLost:
                self.fence = None
                raise
            self._since = started
        return True

    def current(self) -> Fence | None:
        """The fence every write of this lane carries."""
        return self.fence

    def check_send(self) -> None:
        """LeaseLost unless a receipt may be sent now (the lease was renewed recently enough)."""
        if self.fence is None:
            raise LeaseLost(f"register {self.register}: no lease")
        if self.clock() - self._since >= self.ttl_s * SEND_DEADLINE:
            # a lane that stalled since its last renewal renews first: never send on an old renewal
            started = self.clock()
            try:
                self.fence = self.ledger.renew_lease(self.fence, self.ttl_s)
            except LeaseLost:
                self.fence = None
                raise
            self._since = started

    def lost(self) -> None:
        """Forget the lease (it was taken over)."""
        self.fence = None

    def release(self) -> None:
        """Give the lease back on a clean stop, so the next holder need not wait for it to expire."""
        if self.fence is not None:
            try:
                self.ledger.release_lease(self.fence)
            except Exception:  # the lease then simply expires
                log.debug("lease not released", exc_info=True)
            self.fence = None
