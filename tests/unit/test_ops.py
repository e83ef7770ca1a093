"""Operations room: the health conditions, sd_notify and the watchdog."""
from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path

import pytest

from worker.ops import systemd
from worker.ops.health import LaneView, Snapshot, Thresholds, evaluate, worker_running

NOW = dt.datetime(2026, 11, 30, 12, 0, 0)


def lane(**kw) -> LaneView:
    base = dict(name="kkt1", state="running", heartbeat_at=NOW - dt.timedelta(seconds=5))
    return LaneView(**{**base, **kw})


def codes(snapshot: Snapshot, t: Thresholds = Thresholds()) -> set[str]:
    return {p.key for p in evaluate(snapshot, t)}


def test_a_healthy_worker_has_no_problems() -> None:
    assert codes(Snapshot(NOW, {"done": 10}, (lane(),))) == set()


def test_a_stale_heartbeat_means_the_worker_is_down_even_if_the_row_says_running() -> None:
    s = Snapshot(NOW, {}, (lane(heartbeat_at=NOW - dt.timedelta(seconds=91)),))
    assert not worker_running(s) and codes(s) == {"worker_down"}
    assert "last heartbeat 2026-11-30 11:58:29 UTC" in evaluate(s)[0].message


def test_no_lane_ever_and_every_lane_stopped_are_down() -> None:
    assert codes(Snapshot(NOW)) == {"worker_down"}
    assert codes(Snapshot(NOW, {}, (lane(state="stopped"),))) == {"worker_down"}


def test_failed_review_and_rejected_receipts_each_need_a_person() -> None:
    s = Snapshot(NOW, {"failed": 16, "needs_review": 1, "rejected": 2, "done": 5}, (lane(),))
    assert codes(s) == {"receipts_failed", "receipts_needs_review", "receipts_rejected"}
    assert any("16 receipt(s) ran out of attempts" == p.message for p in evaluate(s))


def test_a_lane_paused_longer_than_the_threshold_is_named_with_its_reason() -> None:
    short = lane(state="paused", reason="paper out", paused_since=NOW - dt.timedelta(minutes=5))
    long = lane(state="paused", reason="paper out", paused_since=NOW - dt.timedelta(minutes=11))
    assert codes(Snapshot(NOW, {}, (short,))) == set()
    problems = evaluate(Snapshot(NOW, {}, (long,)))
    assert [p.key for p in problems] == ["lane_paused:kkt1"] and "paper out" in problems[0].message


def test_fn_expiry_ofd_backlog_clock_skew_and_disk() -> None:
    reg = lane(fn_serial="9999078900001234", fn_expires_on=NOW.date() + dt.timedelta(days=29), ofd_unsent=7,
               ofd_oldest_at=NOW - dt.timedelta(days=3, hours=1), clock_skew_s=-75.0)
    s = Snapshot(NOW, {}, (reg,), free_bytes=100 * 1024 * 1024)
    assert codes(s) == {"fn_expiring:kkt1", "ofd_backlog:kkt1", "clock_skew:kkt1", "disk_low"}
    fine = lane(fn_expires_on=NOW.date() + dt.timedelta(days=31), ofd_unsent=7,
                ofd_oldest_at=NOW - dt.timedelta(days=2), clock_skew_s=59.0)
    assert codes(Snapshot(NOW, {}, (fine,), free_bytes=10 ** 12)) == set()


def test_expired_gaps_count_only_within_the_window() -> None:
    s = Snapshot(NOW, {}, (lane(),), expired_gaps_at=(NOW - dt.timedelta(days=8), NOW - dt.timedelta(days=1)))
    problems = evaluate(s)
    assert [p.key for p in problems] == ["gaps_expired"] and problems[0].message.startswith("1 shop id(s)")


# -- systemd ---------------------------------------------------------------------------------

@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield sock
    sock.close()


def test_notify_sends_one_datagram(notify_socket: socket.socket) -> None:
    assert systemd.notify("READY=1", "STATUS=2 lanes running")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=2 lanes running"


def test_notify_outside_systemd_is_a_quiet_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "120000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval_s() == 60.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert systemd.watchdog_interval_s() is None


def test_watchdog_is_petted_only_while_every_loop_is_alive(notify_socket: socket.socket) -> None:
    alive = {"ok": True}
    t = {"now": 0.0}
    dog = systemd.Watchdog(lambda: alive["ok"], interval_s=10, clock=lambda: t["now"])
    assert dog.tick() and notify_socket.recv(64) == b"WATCHDOG=1"
    t["now"] = 5
    assert not dog.tick()            # not due yet
    t["now"] = 11
    alive["ok"] = False
    assert not dog.tick()            # a stuck lane: no petting, systemd will restart us
    alive["ok"] = True
    assert dog.tick()
