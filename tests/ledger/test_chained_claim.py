"""The outcome of receipt N and the claim of receipt N+1 in one durable write (issue 10: one commit per
receipt on a backlog): what the lane must do with a receipt it claimed that way."""
from __future__ import annotations

from pathlib import Path

import pytest

from kkt_drivers.errors import TransientError
from tests.ledger.test_fiscalize import drain, make_lane
from tests.ledger.test_ledger import entry, ingest
from tests.shop import receipts_by_tag
from worker.ledger.states import State
from worker.ledger.store import Ledger


def by_tag(ledger: Ledger) -> dict:
    return {r.tag: r for r in ledger.list_receipts()}


def test_a_receipts_outcome_claims_the_next_one_in_the_same_write(ledger: Ledger, tmp_path: Path) -> None:
    """Given three queued receipts, one step prints S1 and leaves S2 claimed by the same write: "sending"
    on this register with S1's FD as its fd_before and an open attempt; the next step sends S2 without
    claiming again."""
    ingest(ledger, [entry(i) for i in range(1, 4)], cursor=3)
    lane = make_lane(ledger, tmp_path / "reg")
    lane.step()
    rec = by_tag(ledger)
    assert rec["S1"].state is State.DONE
    assert rec["S2"].state is State.SENDING and rec["S2"].register == "kkt1"
    assert rec["S2"].fd_before == rec["S1"].fd_number
    assert [a["outcome"] for a in ledger.attempts_of(rec["S2"].id)] == [None]
    assert rec["S3"].state is State.QUEUED
    lane.step()
    rec = by_tag(ledger)
    assert rec["S2"].state is State.DONE and rec["S2"].fd_number == rec["S1"].fd_number + 1
    assert rec["S3"].state is State.SENDING
    drain(lane)
    docs = receipts_by_tag(tmp_path / "reg")
    assert {t: len(d) for t, d in docs.items()} == {"S1": 1, "S2": 1, "S3": 1}


def test_the_last_receipt_of_a_backlog_claims_nothing(ledger: Ledger, tmp_path: Path) -> None:
    """An empty queue behind the outcome: nothing is left sending, the lane goes idle."""
    ingest(ledger, [entry(1)], cursor=1)
    lane = make_lane(ledger, tmp_path / "reg")
    lane.step()
    assert by_tag(ledger)["S1"].state is State.DONE and ledger.sending("kkt1") == []
    lane.step()
    assert lane.idle


def test_a_stopping_lane_claims_nothing_more_with_its_outcome(ledger: Ledger, tmp_path: Path) -> None:
    """A stop requested before the outcome: the outcome is recorded alone; nothing is left sending."""
    ingest(ledger, [entry(1), entry(2)], cursor=2)
    lane = make_lane(ledger, tmp_path / "reg")
    lane.stop.set()
    lane.step()
    rec = by_tag(ledger)
    assert rec["S1"].state is State.DONE and rec["S2"].state is State.QUEUED


def test_a_claimed_receipt_is_sent_even_when_the_stop_comes_after_its_claim(ledger: Ledger, tmp_path: Path) -> None:
    """The stop comes after S2 was claimed with S1's outcome: run() sends S2 before it returns (its intent
    is committed), and claims nothing after it."""
    ingest(ledger, [entry(i) for i in range(1, 4)], cursor=3)
    lane = make_lane(ledger, tmp_path / "reg")
    lane.step()
    assert by_tag(ledger)["S2"].state is State.SENDING
    lane.stop.set()
    lane.run()
    rec = by_tag(ledger)
    assert rec["S2"].state is State.DONE and rec["S3"].state is State.QUEUED
    assert ledger.sending() == []


def test_a_step_failing_before_it_sends_the_claimed_receipt_reconciles_it_first(
        ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The link fails at connect, before the claimed S2 reached the register: the lane leaves the pool,
    and its next step reconciles S2 (not on the register → queued again) before claiming anything;
    every tag ends on the register exactly once."""
    ingest(ledger, [entry(i) for i in range(1, 4)], cursor=3)
    lane = make_lane(ledger, tmp_path / "reg")
    lane.step()
    connect = lane.driver.connect
    calls = {"n": 0}

    def failing_connect() -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TransientError("link down (injected)")
        connect()

    monkeypatch.setattr(lane.driver, "connect", failing_connect)
    lane.step()
    assert by_tag(ledger)["S2"].state is State.SENDING and not lane.healthy
    lane.step()          # recovery first: S2 was never printed, so it is queued again, then claimed
    drain(lane)
    rec = by_tag(ledger)
    assert all(r.state is State.DONE for r in rec.values())
    outcomes = [a["outcome"] for a in ledger.attempts_of(rec["S2"].id)]
    assert outcomes == [None, "reconciled_retry", "done"]   # the claim, its reconciliation, the send
    docs = receipts_by_tag(tmp_path / "reg")
    assert {t: len(d) for t, d in docs.items()} == {"S1": 1, "S2": 1, "S3": 1}
