"""The ingest stage as the poll loop sees it: one poll of every shop table, the sweep, close.

:class:`LocalIngest` runs the pollers in the calling thread; :class:`worker.ingest.process.ProcessIngest`
runs the same :class:`LocalIngest` in a child process (the default for ``run``: docs/pool.md, "ingest in
its own process"). The poll loop holds either one and cannot tell them apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from worker.ingest.poller import DeliveryIngestor, Ingestor, PollResult


@dataclass(frozen=True)
class Polled:
    """What one turn of the pollers did: the payments' poll and, in the prepayment flow, the deliveries'."""

    payments: PollResult
    deliveries: PollResult | None = None

    @property
    def added(self) -> int:
        """Receipts (or settlements) added by this turn."""
        return self.payments.added + (self.deliveries.added if self.deliveries else 0)

    @property
    def fetched(self) -> int:
        """Shop rows read by this turn."""
        return self.payments.fetched + (self.deliveries.fetched if self.deliveries else 0)

    def full(self, batch_size: int) -> bool:
        """True when a table gave a whole batch: there is probably more, poll again at once."""
        deliveries = self.deliveries.fetched if self.deliveries else 0
        return self.payments.fetched >= batch_size or deliveries >= batch_size


class IngestStage(Protocol):
    """What the poll loop asks of ingest."""

    name: str
    batch_size: int

    def poll(self) -> Polled:
        """Poll every shop table once (rows past the cursor, open gaps) into the ledger."""

    def sweep(self, window: int) -> int:
        """Anti-entropy below the cursor (:meth:`Ingestor.sweep`); the rows added."""

    def close(self) -> None:
        """Release the shop connection (and the ledger, where the stage opened its own)."""


class LocalIngest:
    """The pollers, run in the calling thread."""

    def __init__(self, payments: Ingestor, deliveries: DeliveryIngestor | None,
                 closers: Sequence[Callable[[], None]] = ()) -> None:
        self.payments = payments
        self.deliveries = deliveries
        self.name = payments.name
        self.batch_size = payments.batch_size
        self._closers = list(closers)

    def poll(self) -> Polled:
        """See :class:`IngestStage`."""
        return Polled(self.payments.poll_once(),
                      self.deliveries.poll_once() if self.deliveries is not None else None)

    def sweep(self, window: int) -> int:
        """See :class:`IngestStage`."""
        return self.payments.sweep(window)

    def close(self) -> None:
        """See :class:`IngestStage`."""
        for close in self._closers:
            close()
        self._closers.clear()
