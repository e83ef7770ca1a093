"""The pool's in-process parts: doorbells lose no ring and wake no herd; lane states are written in batches."""
from __future__ import annotations

import threading

from worker.defaults import LANE_HEARTBEAT_SECONDS
from worker.fiscal.pool import Doorbell, Pool


def test_a_ring_before_the_wait_is_not_lost_and_rings_are_capped() -> None:
    bell = Doorbell()
    bell.cap = 2
    bell.ring(5)
    assert bell.wait(0) and bell.wait(0) and not bell.wait(0)   # kept, but never more than the lanes


def test_one_ring_wakes_one_waiting_lane() -> None:
    pool = Pool()
    bell = pool.join("a", "g")
    pool.join("b", "g")
    woke: list[bool] = []
    threads = [threading.Thread(target=lambda: woke.append(bell.wait(2))) for _ in range(2)]
    for t in threads:
        t.start()
    pool.ring("g")
    for t in threads:
        t.join()
    assert sorted(woke) == [False, True]


def test_health_is_per_group() -> None:
    pool = Pool()
    pool.join("a1", "ooo")
    pool.join("a2", "ooo")
    pool.join("b1", "ip")
    pool.set_health("a2", False)
    assert not pool.others_healthy("a1") and pool.others_healthy("a2") and not pool.others_healthy("b1")


def test_lane_states_are_flushed_on_change_and_all_together_periodically() -> None:
    pool = Pool(batched=True)
    written: list[list[str]] = []
    write = lambda rows: written.append([r["name"] for r in rows])  # noqa: E731
    for name in ("a", "b", "c"):
        pool.join(name, "g")
        pool.report(name, True, state="running", reason=None)
    pool.flush(write, now=1000.0)                                   # first flush: everyone, one call
    pool.report("b", False, state="running", reason=None)          # unchanged: nothing to write now
    pool.flush(write, now=1001.0)
    pool.report("c", True, state="paused", reason="paper out")     # changed: written at once
    pool.flush(write, now=1002.0)
    pool.flush(write, now=1000.0 + LANE_HEARTBEAT_SECONDS)         # the periodic full heartbeat
    assert written == [["a", "b", "c"], ["c"], ["a", "b", "c"]]
