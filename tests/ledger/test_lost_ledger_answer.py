"""The ledger's answer to an outcome write is lost after the write landed (a COMMIT, or on PostgreSQL a
statement committing itself, done while the link dropped). The retry's guard then finds the receipt already
moved: the lane must reconcile at once — not pause as after a bug — and every receipt stays exactly once.
On both ledgers, through the group commit as in the worker (on PostgreSQL the write is the statement that
commits itself)."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kkt_drivers import open_driver
from tests.ledger.test_ledger import entry, ingest
from tests.shop import receipts_by_tag
from tests.unit.test_lane_memory import POLICY
from worker.fiscal import processor
from worker.fiscal.lane import Lane
from worker.ledger.states import State
from worker.ledger.store import Ledger
from worker.settings import ShiftSettings


def test_a_landed_outcome_whose_answer_was_lost_is_reconciled_without_a_pause(
        ledger: Ledger, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    """S1..S5 queued; the first outcome-and-next-claim write commits, then its caller gets a lost-link
    error. Every receipt is printed once and done, the lane never pauses, and it says why it reconciles."""
    ingest(ledger, [entry(i) for i in range(1, 6)], cursor=5)
    ledger.enable_group_commit()
    request.addfinalizer(ledger.disable_group_commit)
    real = ledger.record_done_and_claim
    landed: list[Any] = []

    def landed_then_lost(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)   # committed
        landed.append(out)
        if len(landed) == 1:
            raise sa.exc.OperationalError("COMMIT", None, Exception("server closed the connection unexpectedly"))
        return out
    monkeypatch.setattr(ledger, "record_done_and_claim", landed_then_lost)
    monkeypatch.setattr(processor, "RECORD_RETRY_FIRST_SECONDS", 0.01)
    lane = Lane("kkt1", open_driver(f"emulator://{tmp_path / 'reg'}?fsync=0"), ledger, POLICY, ShiftSettings(),
                threading.Event())
    caplog.set_level(logging.WARNING)

    waits = [lane.step() for _ in range(8)]

    assert landed and landed[0][1] is not None   # the lost write had claimed S2 too
    assert {tag: len(docs) for tag, docs in receipts_by_tag(tmp_path / "reg").items()} == {
        f"S{i}": 1 for i in range(1, 6)}
    assert [r.state for r in ledger.list_receipts()] == [State.DONE] * 5
    assert waits[:5] == [0.0] * 5, waits   # one step per receipt, none paused (a bug's path pauses the lane)
    messages = [r.getMessage() for r in caplog.records]
    assert any("lost its answer" in m and "reconciling" in m for m in messages), messages
    assert not any("lane step failed" in m for m in messages), messages
