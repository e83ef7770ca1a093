"""What needs a person, decided from one snapshot of the ledger (pure: no I/O here).

``status --check``, ``/readyz``, the metrics and the alerts all ask :func:`evaluate`, so they can
never disagree. A condition is a :class:`Problem` with a stable ``key`` (code + subject): an alert
is sent when a key appears and resolved when it disappears.

| code                  | when                                                                 |
|-----------------------|----------------------------------------------------------------------|
| worker_down           | no lane heartbeat newer than ``heartbeat_stale_s`` (or every lane stopped) |
| node_down             | cluster mode: a worker node's heartbeat is older than ``heartbeat_stale_s`` |
| lane_paused           | a lane paused longer than ``lane_paused_s`` (paper, FN, link, shift)  |
| receipts_failed       | receipts that ran out of attempts                                     |
| receipts_needs_review | receipts recovery could not settle (possible duplicate, FN changed)   |
| receipts_rejected     | payments without a receipt because their data was refused            |
| gaps_expired          | shop ids given up within ``gap_window_days`` (a row may be lost)      |
| fn_expiring           | the FN's validity ends within ``fn_expiry_days``                      |
| ofd_backlog           | the oldest document not yet sent to the OFD is older than ``ofd_backlog_days`` |
| clock_skew            | the register's clock is off by more than ``clock_skew_s``             |
| disk_low              | less than ``min_free_bytes`` free where the ledger lives              |
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

CRITICAL = "critical"
WARNING = "warning"

#: lane states written by the lanes (worker/fiscal/lane.py)
LANE_STOPPED = "stopped"
LANE_PAUSED = "paused"


@dataclass(frozen=True)
class Thresholds:
    """When a condition needs a person; every value with its unit (settings: ``health.*``)."""

    heartbeat_stale_s: float = 90.0
    lane_paused_s: float = 600.0
    fn_expiry_days: int = 30
    ofd_backlog_days: float = 3.0
    clock_skew_s: float = 60.0
    min_free_bytes: int = 200 * 1024 * 1024
    gap_window_days: float = 7.0


@dataclass(frozen=True)
class LaneView:
    """What a lane last wrote about itself and its register (the ``lanes`` table)."""

    name: str
    state: str
    heartbeat_at: dt.datetime | None
    reason: str | None = None
    paused_since: dt.datetime | None = None
    fn_serial: str | None = None
    fn_expires_on: dt.date | None = None
    ofd_unsent: int | None = None
    ofd_oldest_at: dt.datetime | None = None
    clock_skew_s: float | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything :func:`evaluate` looks at; times naive UTC like the ledger's."""

    now: dt.datetime
    counts: dict[str, int] = field(default_factory=dict)
    lanes: tuple[LaneView, ...] = ()
    #: when each expired gap was given up
    expired_gaps_at: tuple[dt.datetime, ...] = ()
    open_gaps: int = 0
    free_bytes: int | None = None
    #: cluster mode: (node, seconds since its heartbeat) of every node that is running but stale
    nodes_down: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Problem:
    """One condition that needs a person."""

    code: str
    subject: str
    message: str
    severity: str = CRITICAL

    @property
    def key(self) -> str:
        return f"{self.code}:{self.subject}" if self.subject else self.code


def worker_running(s: Snapshot, t: Thresholds = Thresholds()) -> bool:
    """True when at least one lane wrote a heartbeat recently and not every lane says "stopped"."""
    fresh = [lane for lane in s.lanes if lane.heartbeat_at is not None
             and (s.now - lane.heartbeat_at).total_seconds() <= t.heartbeat_stale_s]
    return bool(fresh) and any(lane.state != LANE_STOPPED for lane in fresh)


def evaluate(s: Snapshot, t: Thresholds = Thresholds()) -> list[Problem]:
    """Every condition that needs a person now, most serious first."""
    out: list[Problem] = []
    running = worker_running(s, t)
    if not running:
        last = max((lane.heartbeat_at for lane in s.lanes if lane.heartbeat_at), default=None)
        since = f"last heartbeat {last:%Y-%m-%d %H:%M:%S} UTC" if last else "no heartbeat ever"
        out.append(Problem("worker_down", "", f"the worker is not running ({since})"))
    for state, code, what in (("failed", "receipts_failed", "ran out of attempts"),
                              ("needs_review", "receipts_needs_review", "need review (recovery could not settle them)"),
                              ("rejected", "receipts_rejected", "were rejected: those payments have no receipt")):
        n = s.counts.get(state, 0)
        if n:
            out.append(Problem(code, "", f"{n} receipt(s) {what}"))
    window = dt.timedelta(days=t.gap_window_days)
    recent = [at for at in s.expired_gaps_at if s.now - at <= window]
    if recent:
        out.append(Problem("gaps_expired", "", f"{len(recent)} shop id(s) given up in the last "
                                               f"{t.gap_window_days:g} days: a committed row may be missing",
                           WARNING))
    for node, age in s.nodes_down:
        out.append(Problem("node_down", node, f"cluster node {node} is down (heartbeat {age:.0f} s ago): its pinned "
                                              "registers print nothing; its network registers move to a standby "
                                              "once their leases expire"))
    for lane in s.lanes:
        out.extend(_lane_problems(lane, s, t, running))
    if s.free_bytes is not None and s.free_bytes < t.min_free_bytes:
        out.append(Problem("disk_low", "", f"{s.free_bytes // (1024 * 1024)} MiB free where the ledger lives "
                                           f"(threshold {t.min_free_bytes // (1024 * 1024)} MiB)"))
    return sorted(out, key=lambda p: (p.severity != CRITICAL, p.code, p.subject))


def _lane_problems(lane: LaneView, s: Snapshot, t: Thresholds, running: bool) -> list[Problem]:
    out: list[Problem] = []
    if running and lane.state == LANE_PAUSED and lane.paused_since is not None:
        paused = (s.now - lane.paused_since).total_seconds()
        if paused > t.lane_paused_s:
            out.append(Problem("lane_paused", lane.name, f"lane {lane.name} paused for {paused / 60:.0f} min: "
                                                         f"{lane.reason or 'no reason recorded'}"))
    if lane.fn_expires_on is not None:
        left = (lane.fn_expires_on - s.now.date()).days
        if left <= t.fn_expiry_days:
            out.append(Problem("fn_expiring", lane.name, f"FN {lane.fn_serial or '?'} of {lane.name} expires on "
                                                         f"{lane.fn_expires_on:%Y-%m-%d} ({left} days left)",
                               CRITICAL if left <= 3 else WARNING))
    if lane.ofd_unsent and lane.ofd_oldest_at is not None:
        age = s.now - lane.ofd_oldest_at
        if age > dt.timedelta(days=t.ofd_backlog_days):
            out.append(Problem("ofd_backlog", lane.name, f"{lane.ofd_unsent} document(s) of {lane.name} not sent "
                                                         f"to the OFD, the oldest for {age.days} days"))
    if lane.clock_skew_s is not None and abs(lane.clock_skew_s) > t.clock_skew_s:
        out.append(Problem("clock_skew", lane.name, f"the clock of {lane.name} is off by "
                                                    f"{lane.clock_skew_s:+.0f} s", WARNING))
    return out
