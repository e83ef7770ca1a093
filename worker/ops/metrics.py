"""Prometheus metrics: ledger-wide gauges read at scrape time, in-process counters and histograms.

The gauges come from the same :class:`~worker.ops.health.Snapshot` that ``status`` and the alerts
use, taken when Prometheus scrapes (the ledger is read once per scrape, never per receipt). The
counters and the latency histogram are fed by the lanes as receipts finish.

Names (all prefixed ``kkt_``): ``receipts{state}``, ``worker_up``, ``lane_up{register}``,
``lane_info{register,state}``, ``gaps_open``, ``gaps_expired_recent``, ``fn_days_left{register}``,
``ofd_unsent_documents{register}``, ``ofd_oldest_unsent_age_seconds{register}``,
``register_clock_skew_seconds{register}``, ``problems{code}``, ``ledger_free_bytes``,
``receipt_latency_seconds`` (histogram: intent → recorded), ``attempts_total{outcome}``.
"""
from __future__ import annotations

from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from worker.ledger.states import State
from worker.ops.health import LANE_STOPPED, Snapshot, Thresholds, evaluate, worker_running

#: latency buckets in seconds: a real register takes ~1 s per receipt, a retry minutes
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600)


class LedgerCollector(Collector):
    """Gauges computed from a fresh snapshot at every scrape."""

    def __init__(self, snapshot: Callable[[], Snapshot], thresholds: Thresholds = Thresholds()) -> None:
        self.snapshot = snapshot
        self.thresholds = thresholds

    def collect(self) -> Iterator[GaugeMetricFamily]:
        s = self.snapshot()
        receipts = GaugeMetricFamily("kkt_receipts", "Receipts in the ledger by state", labels=["state"])
        for state in State:
            receipts.add_metric([state.value], s.counts.get(state.value, 0))
        yield receipts
        yield GaugeMetricFamily("kkt_worker_up", "1 while a lane heartbeat is fresh",
                                value=int(worker_running(s, self.thresholds)))
        up = GaugeMetricFamily("kkt_lane_up", "1 while the lane is running (not paused or stopped)",
                               labels=["register"])
        info = GaugeMetricFamily("kkt_lane_info", "The lane's state as a label", labels=["register", "state"])
        fn_days = GaugeMetricFamily("kkt_fn_days_left", "Days until the FN's validity ends", labels=["register"])
        unsent = GaugeMetricFamily("kkt_ofd_unsent_documents", "Documents not yet sent to the OFD",
                                   labels=["register"])
        oldest = GaugeMetricFamily("kkt_ofd_oldest_unsent_age_seconds", "Age of the oldest unsent document",
                                   labels=["register"])
        skew = GaugeMetricFamily("kkt_register_clock_skew_seconds", "Register clock minus server clock",
                                 labels=["register"])
        for lane in s.lanes:
            up.add_metric([lane.name], int(lane.state == "running"))
            info.add_metric([lane.name, lane.state], 1)
            if lane.fn_expires_on is not None:
                fn_days.add_metric([lane.name], (lane.fn_expires_on - s.now.date()).days)
            if lane.ofd_unsent is not None:
                unsent.add_metric([lane.name], lane.ofd_unsent)
            if lane.ofd_oldest_at is not None and lane.ofd_unsent:
                oldest.add_metric([lane.name], (s.now - lane.ofd_oldest_at).total_seconds())
            if lane.clock_skew_s is not None:
                skew.add_metric([lane.name], lane.clock_skew_s)
        yield from (up, info, fn_days, unsent, oldest, skew)
        yield GaugeMetricFamily("kkt_gaps_open", "Shop ids below the cursor not seen yet", value=s.open_gaps)
        yield GaugeMetricFamily("kkt_gaps_expired_recent", "Shop ids given up within the alert window",
                                value=sum(1 for at in s.expired_gaps_at
                                          if (s.now - at).days < self.thresholds.gap_window_days))
        problems = GaugeMetricFamily("kkt_problems", "Conditions that need a person, by code", labels=["code"])
        by_code: dict[str, int] = {}
        for p in evaluate(s, self.thresholds):
            by_code[p.code] = by_code.get(p.code, 0) + 1
        for code, n in sorted(by_code.items()):
            problems.add_metric([code], n)
        yield problems
        if s.free_bytes is not None:
            yield GaugeMetricFamily("kkt_ledger_free_bytes", "Free bytes where the ledger lives", value=s.free_bytes)


class WorkerMetrics:
    """The worker's own registry: ledger gauges plus what the lanes report as they go."""

    def __init__(self, snapshot: Callable[[], Snapshot] | None = None,
                 thresholds: Thresholds = Thresholds()) -> None:
        self.registry = CollectorRegistry()
        if snapshot is not None:
            self.registry.register(LedgerCollector(snapshot, thresholds))
        self.latency = Histogram("kkt_receipt_latency_seconds", "From the intent to the recorded outcome",
                                 buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.attempts = Counter("kkt_attempts", "Register calls by outcome and error class",
                                ["outcome"], registry=self.registry)

    def receipt_finished(self, outcome: str, seconds: float | None = None) -> None:
        """Count one attempt (``done``, ``transient``, ``device``, ``rejected``, ``unknown``…)."""
        self.attempts.labels(outcome=outcome).inc()
        if seconds is not None and outcome == "done":
            self.latency.observe(seconds)


__all__ = ["LANE_STOPPED", "LedgerCollector", "WorkerMetrics"]
