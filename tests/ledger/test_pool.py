"""The register pool: each receipt claimed once, bound to its register after the intent, routed by
group, a failing register leaves the pool and comes back. Runs on SQLite and PostgreSQL."""
from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest

from kkt_drivers import open_driver
from tests.ledger.test_fiscalize import RETRY
from tests.ledger.test_ledger import doc, entry, ingest
from tests.shop import receipts_by_tag
from worker.fiscal.lane import Lane
from worker.fiscal.pool import Pool
from worker.ledger.states import State
from worker.ledger.store import IngestEntry, Ledger, utcnow
from worker.settings import ShiftSettings


def grouped(source_id: int, group: str) -> IngestEntry:
    e = entry(source_id)
    return IngestEntry(e.payment, tuple(dataclasses.replace(p, group=group) for p in e.planned))


@pytest.mark.parametrize("group_commit", [False, True], ids=["own-commits", "group-commit"])
def test_many_lanes_in_many_threads_claim_each_receipt_once(ledger: Ledger, group_commit: bool) -> None:
    """Given 60 queued receipts and 8 lanes claiming from 8 threads at once, every receipt is claimed by
    exactly one lane and every claim carries its own intent (attempt row, register, fd_before) — with
    each lane committing alone, and with the worker's group commit sharing transactions."""
    n = 60
    if group_commit:
        ledger.enable_group_commit()
    ingest(ledger, [entry(i) for i in range(1, n + 1)], cursor=n)
    claimed: dict[str, list[int]] = {f"kkt{i}": [] for i in range(8)}
    start = threading.Barrier(8)

    def lane(name: str) -> None:
        start.wait()
        while (c := ledger.claim(name, "default", fn_serial="FN", fd_before=1)) is not None:
            assert c.record.state is State.SENDING and c.record.register == name
            claimed[name].append(c.record.id)
            time.sleep(0.002)   # the register's time: the other lanes claim meanwhile
            ledger.record_done(c.record.id, doc(c.record.id + 10, c.record.tag), attempt_id=c.attempt_id)

    threads = [threading.Thread(target=lane, args=(name,)) for name in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ledger.disable_group_commit()
    ids = [i for got in claimed.values() for i in got]
    assert len(ids) == n and len(set(ids)) == n          # all claimed, none twice
    assert sum(1 for got in claimed.values() if got) > 1  # and really shared
    for r in ledger.list_receipts():
        sends = [a for a in ledger.attempts_of(r.id) if a["action"] == "send"]
        assert r.state is State.DONE and len(sends) == 1 and sends[0]["register"] == r.register


def test_a_receipt_with_an_intent_stays_bound_to_its_register(ledger: Ledger) -> None:
    """Given lane A claimed a receipt (intent written), then no other lane can claim it and only A's
    recovery sees it; once its outcome is known to be "not fiscalized" any lane may take it again."""
    ingest(ledger, [entry(1)], cursor=1)
    a = ledger.claim("A", "default", fn_serial="FN", fd_before=5)
    assert a is not None and a.record.fd_before == 5
    assert ledger.claim("B", "default", fn_serial="FN", fd_before=9) is None
    assert [r.id for r in ledger.sending("A")] == [a.record.id] and ledger.sending("B") == []
    ledger.record_retry(a.record.id, attempt_id=a.attempt_id, new=State.QUEUED, attempts=1,
                        next_attempt_at=utcnow(), error="link down", error_class="transient")
    b = ledger.claim("B", "default", fn_serial="FN", fd_before=9)
    assert b is not None and b.record.id == a.record.id and b.record.register == "B"


def test_claims_follow_the_register_group(ledger: Ledger) -> None:
    """A lane of group "ip" never takes a receipt routed to group "ooo", and the reverse."""
    ingest(ledger, [grouped(1, "ooo"), grouped(2, "ip")], cursor=2)
    ip = ledger.claim("ip1", "ip", fn_serial="FN", fd_before=1)
    assert ip is not None and ip.record.tag == "S2" and ip.record.register_group == "ip"
    assert ledger.claim("ip1", "ip", fn_serial="FN", fd_before=1) is None
    ooo = ledger.claim("ooo1", "ooo", fn_serial="FN", fd_before=1)
    assert ooo is not None and ooo.record.tag == "S1"


def lane(ledger: Ledger, reg: Path, name: str, pool: Pool, query: str = "", inn: str | None = None) -> Lane:
    drv = open_driver(f"emulator://{reg}?serial={name}{'&' + query if query else ''}")
    return Lane(name, drv, ledger, RETRY, ShiftSettings(), threading.Event(), pool=pool, inn=inn)


def test_a_register_in_device_error_leaves_the_pool_and_comes_back(ledger: Ledger, tmp_path: Path) -> None:
    """Given a register whose FN fails once: its lane stops claiming (status says why), its receipt is not
    burnt and is taken by the healthy sibling; after the probe succeeds the lane rejoins by itself."""
    ingest(ledger, [entry(i) for i in (1, 2, 3)], cursor=3)
    pool = Pool()
    bad = lane(ledger, tmp_path / "bad", "bad", pool, "fn_error=first:1")
    good = lane(ledger, tmp_path / "good", "good", pool)
    wait = bad.step()
    assert not bad.healthy and wait > 0 and not pool.others_healthy("good")
    row = {r["name"]: r for r in ledger.status_details()["lanes"]}["bad"]
    assert row["state"] == "paused" and "next probe" in row["reason"]   # what `status` shows, and why
    first = ledger.list_receipts()[0]
    assert first.state is State.QUEUED and first.attempts == 0        # a device error burns no attempt
    good.step()
    assert [r.register for r in ledger.list_receipts() if r.state is State.DONE] == ["good"]
    bad.step()                                                         # the probe: the FN answers again
    assert bad.healthy and pool.others_healthy("good")
    for _ in range(4):
        bad.step()
        good.step()
    assert all(r.state is State.DONE for r in ledger.list_receipts())
    tags = [t for reg in ("bad", "good") for t, docs in receipts_by_tag(tmp_path / reg).items() for _ in docs]
    assert sorted(tags) == ["S1", "S2", "S3"]


def test_a_transiently_failing_register_hands_its_receipt_to_the_pool(ledger: Ledger, tmp_path: Path) -> None:
    """One register whose link fails: the receipt it could not send is due again at once for the healthy
    register (not after the retry delay), and it is printed once."""
    ingest(ledger, [entry(1)], cursor=1)
    pool = Pool()
    bad = lane(ledger, tmp_path / "bad", "bad", pool, "fail_before_send=1.0")
    good = lane(ledger, tmp_path / "good", "good", pool)
    bad.step()
    rec = ledger.list_receipts()[0]
    assert rec.state is State.QUEUED and rec.attempts == 1 and rec.next_attempt_at <= utcnow()
    good.step()
    assert ledger.list_receipts()[0].state is State.DONE
    assert list(receipts_by_tag(tmp_path / "good")) == ["S1"] and receipts_by_tag(tmp_path / "bad") == {}


def test_a_register_of_another_inn_prints_nothing(ledger: Ledger, tmp_path: Path) -> None:
    """Settings say INN 7701234567, the register reports 500100732259: the lane never claims."""
    ingest(ledger, [entry(1)], cursor=1)
    wrong = lane(ledger, tmp_path / "r", "r1", Pool(), "inn=500100732259", inn="7701234567")
    wrong.step()
    assert not wrong.healthy and ledger.list_receipts()[0].state is State.QUEUED
    right = lane(ledger, tmp_path / "r2", "r2", Pool(), "inn=7701234567", inn="7701234567")
    right.step()
    assert ledger.list_receipts()[0].state is State.DONE
