"""The worker: the poller in the main thread, one lane thread per register, warm shutdown."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, OperationalError

from kkt_drivers import open_driver
from worker import signals
from worker.errors import ConfigError, SourceConfigError, SourceUnavailable
from worker.fiscal.lane import Lane
from worker.ingest.planner import DeliveryPlanner, Planner
from worker.ingest.poller import DeliveryIngestor, Ingestor
from worker.ledger.states import State
from worker.ledger.store import Ledger
from worker.receipts.config import FLOW_PREPAYMENT
from worker.settings import Settings
from worker.wiring import open_shop_source, receipt_config

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run did (printed by ``run --burst``)."""

    ingested: int = 0
    polls: int = 0
    done: int = 0


class Worker:
    """Polls the shop into the ledger and fiscalizes through one lane per register."""

    def __init__(self, settings: Settings, ledger: Ledger, *, burst: bool = False,
                 burst_timeout_s: float | None = None) -> None:
        self.settings = settings
        self.ledger = ledger
        self.burst = burst
        self.burst_timeout_s = burst_timeout_s
        self.stop = threading.Event()
        self.summary = RunSummary()
        self.deliveries: DeliveryIngestor | None = None   # the prepayment flow's second poller

    def run(self, *, install_signals: bool = True) -> int:
        """Run until stopped (or drained, with burst). Returns the process exit code."""
        if install_signals:
            signals.install(self.stop)
        source = open_shop_source(self.settings)
        config = receipt_config(self.settings)
        # a refund of a sale before go-live reads that sale from the shop (worker.ingest.planner)
        planner = Planner(self.ledger, config, start_after_id=self.settings.source.start_after_id,
                          fetch_sale=lambda sid: next(iter(source.fetch_by_ids([sid])), None))
        ingestor = Ingestor(source, self.ledger, planner,
                            batch_size=self.settings.source.batch_size,
                            gap_timeout_s=self.settings.source.gap_timeout_s,
                            max_gap_span=self.settings.source.max_gap_span,
                            start_after_id=self.settings.source.start_after_id)
        # the prepayment flow also polls the shop's deliveries, with its own cursor and gaps
        self.deliveries = None if config.flow != FLOW_PREPAYMENT else DeliveryIngestor(
            source, self.ledger,
            DeliveryPlanner(self.ledger, config, source, planner, start_after_id=self.settings.source.start_after_id),
            batch_size=self.settings.source.batch_size, gap_timeout_s=self.settings.source.gap_timeout_s,
            max_gap_span=self.settings.source.max_gap_span)
        lanes = [Lane(r.name, open_driver(r.url), self.ledger, self.settings.retry, self.settings.shifts, self.stop)
                 for r in self.settings.enabled_registers()]
        threads = [threading.Thread(target=lane.run, name=f"lane-{lane.name}", daemon=True) for lane in lanes]
        for t in threads:
            t.start()
        code = 0
        try:
            code = self._poll_loop(ingestor)
        finally:
            self.stop.set()
            for t in threads:
                t.join()
            source.close()
            self.summary.done = sum(lane.processed for lane in lanes)
        return code

    def _poll_loop(self, ingestor: Ingestor) -> int:
        backoff = 0.0
        started = time.monotonic()
        cap = self.settings.retry.source_backoff_max_s
        next_sweep = time.monotonic() + self.settings.source.sweep_interval_s
        while not self.stop.is_set():
            try:
                result = ingestor.poll_once()
                delivered = self.deliveries.poll_once() if self.deliveries is not None else None
                if time.monotonic() >= next_sweep:
                    self.summary.ingested += ingestor.sweep(self.settings.source.sweep_window)
                    next_sweep = time.monotonic() + self.settings.source.sweep_interval_s
            except SourceConfigError as exc:
                log.critical("the shop database refuses us: %s", exc)
                return 2
            except (SourceUnavailable, OperationalError, DBAPIError) as exc:
                backoff = min(cap, max(0.5, backoff * 2))
                log.warning("poll failed (%s); next try in %.1f s", exc.__class__.__name__, backoff,
                            extra={"source": ingestor.name})
                self.stop.wait(backoff)
                continue
            backoff = 0.0
            self.summary.polls += 1
            self.summary.ingested += result.added
            fetched = result.fetched + (delivered.fetched if delivered else 0)
            if self.burst and fetched == 0 and self._drained():
                log.info("burst: nothing left to do")
                return 0
            if self.burst and self.burst_timeout_s and time.monotonic() - started > self.burst_timeout_s:
                log.warning("burst: timed out with work left")
                return 3
            full = result.fetched >= ingestor.batch_size or (delivered and delivered.fetched >= ingestor.batch_size)
            self.stop.wait(0 if full else (0.2 if self.burst else self.settings.source.poll_interval_s))
        return 0

    def _drained(self) -> bool:
        counts = self.ledger.counts()
        return counts.get(State.QUEUED.value, 0) == 0 and counts.get(State.SENDING.value, 0) == 0


def check_ledger_ready(ledger: Ledger) -> None:
    """Refuse to run on a ledger that is not at the latest migration."""
    from worker.ledger.migrate import current_revision, head_revision

    cur, head = current_revision(ledger.engine), head_revision()
    if cur != head:
        raise ConfigError(f"ledger is at revision {cur}, code expects {head}: run `kkt-worker migrate`")
