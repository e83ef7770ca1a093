"""The worker: the poll loop in the main thread (ingest in a child process by default), one lane thread
per register, warm shutdown.

The parts come from the composition root (:func:`worker.app.build_worker`); this module only runs
them: start the lanes, poll until stopped (or drained, with burst), stop and join the lanes.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

from worker.app import WorkerGraph, build_ops, build_pool, build_worker
from worker.defaults import BURST_POLL_SECONDS, LANE_HEARTBEAT_SECONDS, SOURCE_BACKOFF_MIN_SECONDS
from worker.errors import (ConfigError, IngestProcessLost, LeaseLost, SourceConfigError, SourceUnavailable,
                           StateConflict)
from worker.ledger.cluster_writes import Member
from worker.ledger.space import free_mb
from worker.ledger.store import Ledger, utcnow
from worker.log import OutageLog
from worker.ops import systemd
from worker.ops.runner import OpsRunner, loops_alive
from worker.settings import Settings
from worker.signals import on_dump, on_reload, on_stop

log = logging.getLogger(__name__)

#: exit statuses of ``run``
EXIT_OK = 0
EXIT_CONFIG = 2          # the shop refuses us, or every lane stopped on a register configuration error
EXIT_BURST_TIMEOUT = 3   # --burst gave up with work left
#: the anti-entropy sweep's timer in the ledger's schedules table (so restarts do not reset it)
SWEEP_SCHEDULE = "sweep:payments"
#: how often the run lock's session is checked (a PostgreSQL session can end under us)
RUNLOCK_CHECK_SECONDS = 5.0


@dataclass
class RunSummary:
    """What a run did (printed by ``run --burst``)."""

    ingested: int = 0
    polls: int = 0
    done: int = 0


class Worker:
    """Polls the shop into the ledger and fiscalizes through one lane per register."""

    def __init__(self, settings: Settings, ledger: Ledger, *, burst: bool = False,
                 burst_timeout_s: float | None = None, settings_path: str | None = None,
                 runlock: Any = None) -> None:
        self.settings = settings
        self.runlock = runlock
        self.space_short = False
        self.ledger = ledger
        self.burst = burst
        self.burst_timeout_s = burst_timeout_s
        self.stop = threading.Event()
        self.summary = RunSummary()
        self.settings_path = settings_path
        #: monotonic time of the poll loop's last turn (the systemd watchdog watches it)
        self.poll_beat = time.monotonic()
        self.pool = build_pool()   # the lanes' doorbells, health and states (docs/pool.md)
        self.member: Member | None = None   # cluster mode: this worker's row in `workers`
        self._member_beat = float("-inf")

    def run(self, *, install_signals: bool = True) -> int:
        """Run until stopped (or drained, with burst). Returns the process exit code."""
        with on_stop(self.stop) if install_signals else contextlib.nullcontext(), \
                on_reload(self.reload) if install_signals else contextlib.nullcontext(), \
                on_dump() if install_signals else contextlib.nullcontext():
            graph = build_worker(self.settings, self.ledger, self.stop, self.pool)
            self.member = graph.member
            if graph.member is not None:   # cluster mode: this node's row in `workers` (status shows the cluster)
                self.ledger.join_cluster(graph.member, stale_s=self.settings.health.heartbeat_stale_s)
                log.info("cluster node %s joined (%d register(s) in its settings)", graph.member.node,
                         len(graph.member.registers))
            # one durable commit serves many lanes' intents and outcomes (SQLite has one writer)
            self.ledger.enable_group_commit()
            threads = [threading.Thread(target=lane.run, name=f"lane-{lane.name}", daemon=True)
                       for lane in graph.lanes]
            ops = None if self.burst else self._start_ops(graph)
            for t in threads:
                t.start()
            systemd.notify("READY=1", f"STATUS={len(graph.lanes)} lane(s) running")
            try:
                return self._poll_loop(graph)
            finally:
                systemd.notify("STOPPING=1")
                self.stop.set()
                self.pool.wake_all()
                for t in threads:
                    t.join()
                self.ledger.disable_group_commit()
                self._flush_lane_states()
                self._leave_cluster(graph)
                if ops is not None:
                    ops.close()
                graph.close()
                self.summary.done = sum(lane.processed for lane in graph.lanes)

    def _start_ops(self, graph: WorkerGraph) -> OpsRunner | None:
        """HTTP endpoints, alerts, callbacks and the watchdog; a failure here never stops the receipts."""
        beats = [lambda: self.poll_beat] + [lambda lane=lane: lane.beat for lane in graph.lanes]
        try:
            ops = build_ops(self.settings, self.ledger, loops_alive(beats), self.stop).start()
        except Exception as exc:
            log.error("operations endpoints not started (%s): receipts go on; fix http.* / alerts.*", exc)
            return None
        for lane in graph.lanes:
            lane.observer = ops.metrics.receipt_finished
        return ops

    def reload(self) -> None:
        """SIGHUP: re-read the log level and format from the settings file, reopen the log stream."""
        from worker import log as wlog
        from worker.settings import load_settings

        systemd.notify("RELOADING=1")
        try:
            if self.settings_path:
                fresh = load_settings(self.settings_path)
                wlog.setup(fresh.log.level, fresh.log.format)
                log.info("SIGHUP: log settings reloaded from %s (other settings need a restart)", self.settings_path)
            else:
                wlog.setup(self.settings.log.level, self.settings.log.format)
                log.info("SIGHUP: log stream reopened")
        finally:
            systemd.notify("READY=1")

    def _poll_loop(self, graph: WorkerGraph) -> int:
        ingest = graph.ingest
        backoff = 0.0
        started = time.monotonic()
        cap = self.settings.retry.source_backoff_max_s
        interval = dt.timedelta(seconds=self.settings.source.sweep_interval_s)
        next_sweep: dt.datetime | None = None
        next_lock_check = time.monotonic() + RUNLOCK_CHECK_SECONDS
        outage = OutageLog("polling (shop database or ledger)", log)
        while not self.stop.is_set():
            self.poll_beat = time.monotonic()
            if graph.lanes and all(lane.stopped for lane in graph.lanes):
                log.critical("every lane stopped on a register configuration error; see `kkt-worker status`")
                return EXIT_CONFIG
            try:
                if self.runlock is not None and time.monotonic() >= next_lock_check:
                    self.runlock.check()
                    next_lock_check = time.monotonic() + RUNLOCK_CHECK_SECONDS
                if graph.ingest_lease is not None and not graph.ingest_lease.ensure():
                    # cluster mode: another worker ingests; wake our lanes for the receipts it queued
                    self._ring_due(graph)
                    self._flush_lane_states()
                    # with --burst a standby never decides "drained" itself: the ingester exits when the shop and
                    # the queue are empty and gives its lease back; the standby takes it, polls, and exits the same way
                    self.stop.wait(self.settings.source.poll_interval_s)
                    continue
                if self._ledger_disk_short():
                    # outcomes and recovery go first: the lanes keep the little space there is
                    self._flush_lane_states()   # an upsert of existing rows: the lanes still show alive
                    self.stop.wait(self.settings.source.poll_interval_s)
                    continue
                polled = ingest.poll()
                if next_sweep is None:   # kept in the ledger: a worker restarted often still sweeps
                    next_sweep = self.ledger.schedule_at(SWEEP_SCHEDULE) or utcnow() + interval
                    self.ledger.set_schedule(SWEEP_SCHEDULE, next_sweep)
                if utcnow() >= next_sweep:
                    self.summary.ingested += ingest.sweep(self.settings.source.sweep_window)
                    next_sweep = utcnow() + interval
                    self.ledger.set_schedule(SWEEP_SCHEDULE, next_sweep)
            except SourceConfigError as exc:
                log.critical("the shop database refuses us: %s", exc)
                return EXIT_CONFIG
            except LeaseLost as exc:   # cluster: our ingest lease was taken over while we froze: stand by
                if graph.ingest_lease is not None:
                    graph.ingest_lease.lost(exc)
                continue
            except StateConflict as exc:   # another worker's ingest moved the cursor first: read again
                log.info("%s; polling again", exc)
                continue
            except (SourceUnavailable, IngestProcessLost, OperationalError, DBAPIError) as exc:
                backoff = min(cap, max(SOURCE_BACKOFF_MIN_SECONDS, backoff * 2))
                # the shop's database or the ledger: the cause once per outage, then "recovered after N s"
                outage.failed(exc, source=ingest.name)
                self.stop.wait(backoff)
                continue
            outage.ok(source=ingest.name)
            backoff = 0.0
            self.summary.polls += 1
            self.summary.ingested += polled.payments.added
            self._flush_lane_states()
            if polled.added:
                # as many idle lanes per group as there are new receipts (capped at the group's lanes);
                # a lane that finds work rings once more, so a larger backlog pulls in the rest
                self.pool.ring(n=polled.added)
            if self.burst and polled.fetched == 0 and self._drained():
                log.info("burst: nothing left to do")
                return EXIT_OK
            if self.burst and self.burst_timeout_s and time.monotonic() - started > self.burst_timeout_s:
                log.warning("burst: timed out with work left")
                return EXIT_BURST_TIMEOUT
            full = polled.full(ingest.batch_size)
            self.stop.wait(0 if full else (BURST_POLL_SECONDS if self.burst else self.settings.source.poll_interval_s))
        return EXIT_OK

    def _flush_lane_states(self) -> None:
        """Lane states (and, in cluster mode, this worker's heartbeat) in one transaction."""
        member = self.member
        try:
            if member is None:
                self.pool.flush(self.ledger.lane_heartbeats)
                return

            def write(rows: list[dict[str, Any]]) -> None:
                self.ledger.cluster_heartbeat(member, rows)
                self._member_beat = time.monotonic()

            self.pool.flush(write)
            if time.monotonic() - self._member_beat >= LANE_HEARTBEAT_SECONDS:
                write([])   # no lane to report (every one stands by): the worker still beats
        except Exception:  # informational (``status``); the ledger being away is the lanes' business
            log.debug("lane states not recorded", exc_info=True)

    def _ring_due(self, graph: WorkerGraph) -> None:
        """Cluster mode, not ingesting: ring each group whose queue has a receipt due now (another worker
        queued it). One read per group per poll interval; lanes that find work pull in their siblings."""
        now = utcnow()
        for group in sorted({lane.group for lane in graph.lanes if lane.lease.fence is not None}):
            nxt = self.ledger.next_due_at(group)
            if nxt is not None and nxt <= now:
                self.pool.ring(group, n=self.pool.lanes_in(group))

    def _leave_cluster(self, graph: WorkerGraph) -> None:
        """A clean stop: give the ingest lease back (a standby ingests at once) and mark this node stopped."""
        if graph.ingest_lease is not None:
            graph.ingest_lease.release()
        if self.member is not None:
            try:
                self.ledger.leave_cluster(self.member)
            except Exception:   # status then calls this node down once its heartbeat is stale
                log.debug("cluster leave not recorded", exc_info=True)

    def _ledger_disk_short(self) -> bool:
        """True (and logged once per episode) while the ledger's disk is below ``ledger.min_free_mb``."""
        free = free_mb(self.settings.ledger_url)
        short = free is not None and free < self.settings.ledger.min_free_mb
        if short != self.space_short:
            if short:
                log.error("ledger disk has %.0f MB free (< ledger.min_free_mb %d): ingest paused; registers "
                          "keep recording outcomes", free, self.settings.ledger.min_free_mb)
            else:
                log.warning("ledger disk has %.0f MB free again: ingest resumes", free or 0)
            self.space_short = short
        return short

    def _drained(self) -> bool:
        return not self.ledger.has_unfinished()


def check_ledger_ready(ledger: Ledger) -> None:
    """Refuse to run on a ledger that is not at the latest migration."""
    from worker.ledger.migrate import current_revision, head_revision

    cur, head = current_revision(ledger.engine), head_revision()
    if cur != head:
        raise ConfigError(f"ledger is at revision {cur}, code expects {head}: run `kkt-worker migrate`")
