"""The register pool: doorbells that wake idle lanes, and who in each group is healthy.

Lanes do not poll the ledger while idle. The poller rings a group's :class:`Doorbell` when it added
receipts; one idle lane wakes, claims, and — having found work — rings once more, so a backlog pulls
in as many lanes as it needs and a single new payment wakes one lane, not two hundred. An idle lane
still looks at the queue every ``LANE_IDLE_MAX_SECONDS`` (or when its earliest retry falls due), so a
receipt requeued by another process (``kkt-worker resend``) is never stranded.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from worker.defaults import LANE_HEARTBEAT_SECONDS


class Doorbell:
    """A counting wake-up for the idle lanes of one group (no lost rings, no thundering herd)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending = 0
        self.cap = 1   # rings kept for lanes not waiting yet: never more than the group has lanes

    def ring(self, n: int = 1) -> None:
        """Wake up to *n* waiting lanes (or let the next *n* waits return at once)."""
        with self._cond:
            self._pending = min(self._pending + n, self.cap)
            self._cond.notify(n)

    def wait(self, timeout: float) -> bool:
        """Sleep until rung or *timeout* seconds pass; True when rung."""
        with self._cond:
            if self._pending == 0:
                self._cond.wait(timeout)
            if self._pending > 0:
                self._pending -= 1
                return True
            return False

    def drain(self) -> None:
        """Forget rings nobody took (a lane that claimed nothing must not wake its siblings for nothing)."""
        with self._cond:
            self._pending = 0


@dataclass
class Pool:
    """Every lane's group and health, shared by the lanes of one worker process."""

    doorbells: dict[str, Doorbell] = field(default_factory=dict)
    #: True when the worker flushes lane states in one transaction (:meth:`flush`); else lanes write them
    batched: bool = False
    _healthy: dict[str, tuple[str, bool]] = field(default_factory=dict)   # lane → (group, healthy)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    _dirty: set[str] = field(default_factory=set)
    _flushed_at: float = 0.0

    def report(self, lane: str, changed: bool, **state: Any) -> None:
        """Keep *lane*'s latest state for the next :meth:`flush` (at once if it *changed*)."""
        with self._lock:
            self._reports[lane] = state
            if changed:
                self._dirty.add(lane)

    def flush(self, write: Callable[[list[dict[str, Any]]], None], *, now: float | None = None) -> int:
        """Write changed lane states now, and every lane's every ``LANE_HEARTBEAT_SECONDS``, in ONE
        ledger transaction (200 idle lanes cost one small write per interval, not 200)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            full = now - self._flushed_at >= LANE_HEARTBEAT_SECONDS
            names = set(self._reports) if full else set(self._dirty)
            rows = [{"name": n, **self._reports[n]} for n in sorted(names) if n in self._reports]
            self._dirty.clear()
            if full:
                self._flushed_at = now
        if rows:
            write(rows)
        return len(rows)

    def forget(self, lane: str) -> None:
        """Stop writing *lane*'s state: it does not hold its register's lease (another worker's lane does, and
        writes the register's row in ``lanes``; a standby must not overwrite it every heartbeat)."""
        with self._lock:
            self._reports.pop(lane, None)
            self._dirty.discard(lane)

    def join(self, lane: str, group: str) -> Doorbell:
        """Register *lane* in *group*; returns the group's doorbell."""
        with self._lock:
            self._healthy[lane] = (group, True)
            bell = self.doorbells.setdefault(group, Doorbell())
            bell.cap = sum(1 for g, _ in self._healthy.values() if g == group)
            return bell

    def set_health(self, lane: str, healthy: bool) -> None:
        """Record whether *lane* may claim."""
        with self._lock:
            group, _ = self._healthy[lane]
            self._healthy[lane] = (group, healthy)

    def others_healthy(self, lane: str) -> bool:
        """Whether another lane of *lane*'s group can take its receipts now."""
        with self._lock:
            group, _ = self._healthy[lane]
            return any(g == group and ok and name != lane for name, (g, ok) in self._healthy.items())

    def ring(self, group: str | None = None, n: int = 1) -> None:
        """Ring one group's doorbell, or every group's."""
        for g, bell in list(self.doorbells.items()):
            if group is None or g == group:
                bell.ring(n)

    def wake_all(self) -> None:
        """Wake every lane (shutdown)."""
        with self._lock:
            sizes: dict[str, int] = {}
            for g, _ in self._healthy.values():
                sizes[g] = sizes.get(g, 0) + 1
        for g, n in sizes.items():
            self.doorbells[g].ring(n)

    def lanes_in(self, group: str) -> int:
        """How many lanes serve *group* (a doorbell's useful ring count)."""
        with self._lock:
            return sum(1 for g, _ in self._healthy.values() if g == group)
