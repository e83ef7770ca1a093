"""Register leases: a new holder bumps the epoch, a stale epoch can write nothing, a live holder is
refused with its name, a dead holder on this host is taken over at once (both backends)."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from worker.errors import LeaseHeld, LeaseLost
from worker.ledger.leases import holder_id
from worker.ledger.store import Ledger


def test_takeover_bumps_the_epoch_and_fences_the_old_holder(ledger: Ledger) -> None:
    """Given A holds kkt1 and its lease expires, when B takes it, then A can neither renew nor write."""
    a = ledger.acquire_lease("kkt1", "worker@elsewhere:1:1", ttl_s=0.5)
    assert a.epoch == 1
    with pytest.raises(LeaseHeld, match="held by worker@elsewhere:1:1"):
        ledger.acquire_lease("kkt1", "worker@elsewhere:2:2", ttl_s=0.5)
    time.sleep(1.2)                                    # expiry by the server's clock
    b = ledger.acquire_lease("kkt1", "worker@elsewhere:2:2", ttl_s=30)
    assert b.epoch == 2
    with pytest.raises(LeaseLost):
        ledger.renew_lease(a, ttl_s=30)
    with pytest.raises(LeaseLost):
        ledger.set_watermark("kkt1", "FN1", 5, fence=a)
    ledger.set_watermark("kkt1", "FN1", 5, fence=b)
    assert ledger.watermark("kkt1", "FN1") == 5
    ledger.release_lease(b)
    assert ledger.acquire_lease("kkt1", "admin@elsewhere:3:3", ttl_s=30).epoch == 3   # released: free at once


def test_a_dead_holder_on_this_host_is_taken_over_at_once(ledger: Ledger) -> None:
    """Given a process that held the lease and died (kill -9), the next holder need not wait for expiry."""
    code = ("import sys; from worker.ledger.leases import holder_id; print(holder_id('worker'))")
    dead = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    ledger.acquire_lease("kkt1", dead, ttl_s=600)
    assert ledger.acquire_lease("kkt1", holder_id("worker"), ttl_s=30).epoch == 2
    with pytest.raises(LeaseHeld):                     # but a live one (this process) is respected
        ledger.acquire_lease("kkt1", "worker@elsewhere:9:9", ttl_s=30)
