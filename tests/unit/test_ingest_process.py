"""The ingest process (worker.ingest.process): a real child process behind the poll loop's interface.

The child runs a stand-in stage built by :func:`build` below (the real pollers are exercised by every
``run`` in the suite, tests/chaos/test_ingest_process.py kills them); these tests hold the contract the
poll loop relies on: results, the fence and errors cross the pipe unchanged, a dead child is reported
and replaced, a child never outlives its worker.
"""
from __future__ import annotations

import datetime as dt
import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from tests.shop import alive
from worker.errors import IngestProcessLost, SourceConfigError, SourceUnavailable, StateConflict
from worker.ingest.poller import PollResult
from worker.ingest.process import ProcessIngest, portable
from worker.ingest.stage import Polled
from worker.ledger.leases import Fence

ROOT = Path(__file__).resolve().parents[2]


class StandInStage:
    """A stage whose poll reports the fence's epoch as ``added`` and its own pid as ``cursor``."""

    def __init__(self, mode: str, fence) -> None:  # type: ignore[no-untyped-def]
        self.mode = mode
        self.fence = fence
        self.polls = 0

    def poll(self) -> Polled:
        self.polls += 1
        if self.mode == "conflict":
            raise StateConflict("another worker's ingest moved the cursor first")
        if self.mode == "stalls-after-first" and self.polls > 1:
            time.sleep(60)   # a poll stuck on the shop's database
        fence = self.fence()
        return Polled(PollResult(added=fence.epoch if fence else 0, fetched=1, cursor=os.getpid(), new_gaps=0,
                                 filled_gaps=0, expired_gaps=0, open_gaps=0))

    def sweep(self, window: int) -> int:
        return 2 * window

    def close(self) -> None:
        pass


_BUILDS = Path(os.environ.get("KKT_TEST_BUILD_COUNT", "/nonexistent"))


def build(mode: str, fence) -> StandInStage:  # type: ignore[no-untyped-def]
    """The child's builder (pickled by reference: this module is imported in the child)."""
    if mode == "unreachable-once" and not _BUILDS.exists():
        _BUILDS.write_text("1")
        raise SourceConfigError("SELECT command denied to user 'kkt_ro' for table 'payments'")
    return StandInStage(mode, fence)


def fence(epoch: int) -> Fence:
    return Fence("ingest", "worker@test", epoch, dt.datetime(2026, 12, 1))


@pytest.fixture
def ingest():  # type: ignore[no-untyped-def]
    made: list[ProcessIngest] = []

    def make(mode: str = "ok", **kw) -> ProcessIngest:  # type: ignore[no-untyped-def]
        stage = ProcessIngest(functools.partial(build, mode), name="payments", batch_size=500, **kw)
        made.append(stage)
        return stage

    yield make
    for stage in made:
        stage.close()


def test_results_and_the_fence_of_each_call_cross_the_pipe(ingest) -> None:  # type: ignore[no-untyped-def]
    """Given an ingest process and a fence that changes between polls, then each poll runs in the child
    (another pid) with the fence of that call, and the sweep's result comes back."""
    current = [fence(7)]
    stage = ingest(fence=lambda: current[0])
    first = stage.poll()
    assert first.payments.added == 7 and first.payments.cursor == stage.pid != os.getpid()
    current[0] = fence(8)
    assert stage.poll().payments.added == 8
    assert stage.sweep(5) == 10 and stage.starts == 1


def test_an_error_arrives_as_the_type_the_poll_loop_catches(ingest) -> None:  # type: ignore[no-untyped-def]
    """Given a child whose poll raises StateConflict, then the caller gets a StateConflict carrying the
    child's traceback as a note, and the child keeps serving."""
    stage = ingest("conflict")
    with pytest.raises(StateConflict, match="moved the cursor first") as info:
        stage.poll()
    assert any("raised in the ingest process" in note for note in info.value.__notes__)
    assert stage.sweep(1) == 2 and stage.starts == 1


def test_a_failure_to_open_is_the_first_polls_error_then_retried(  # type: ignore[no-untyped-def]
        ingest, tmp_path, monkeypatch) -> None:
    """Given a build that fails once (the shop refuses us), then that poll raises SourceConfigError (the
    poll loop's exit-code case) and the next poll builds again in the same child."""
    monkeypatch.setenv("KKT_TEST_BUILD_COUNT", str(tmp_path / "builds"))
    stage = ingest("unreachable-once")
    with pytest.raises(SourceConfigError, match="SELECT command denied"):
        stage.poll()
    assert stage.poll().payments.fetched == 1 and stage.starts == 1


def test_unpicklable_errors_become_what_the_poll_loop_backs_off_on() -> None:
    """Given errors that do not survive pickling, then a database error becomes SourceUnavailable (backoff,
    as for the original) and anything else a RuntimeError naming its type."""

    class Local(Exception):   # a class defined in a function cannot be unpickled
        pass

    db = OperationalError("SELECT 1", {}, Local("server has gone away"))
    assert isinstance(portable(db), SourceUnavailable) and "server has gone away" in str(portable(db))
    other = portable(Local("odd"))
    assert type(other) is RuntimeError and str(other) == "Local: odd"
    picklable = StateConflict("x")
    assert portable(picklable) is picklable


def test_a_killed_child_is_reported_once_and_replaced(ingest) -> None:  # type: ignore[no-untyped-def]
    """Given a running ingest process killed with SIGKILL, then the next call raises IngestProcessLost with
    its exit code (the poll loop's backoff), and the call after starts a new child."""
    stage = ingest()
    first = stage.poll().payments.cursor
    os.kill(first, signal.SIGKILL)
    with pytest.raises(IngestProcessLost, match=r"exited \(code -9\)"):
        stage.poll()
    second = stage.poll().payments.cursor
    assert second != first and stage.starts == 2 and not alive(first)


def test_sigterm_is_ignored_and_close_ends_the_child(ingest) -> None:  # type: ignore[no-untyped-def]
    """Given a child that received SIGTERM (systemd signals the whole group), then it still answers; and
    close() ends it."""
    stage = ingest()
    pid = stage.poll().payments.cursor
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGINT)
    assert stage.poll().payments.cursor == pid
    stage.close()
    assert not alive(pid) and stage.pid is None


PARENT = """
import functools, sys, time
from tests.unit.test_ingest_process import build
from worker.ingest.process import ProcessIngest
stage = ProcessIngest(functools.partial(build, "stalls-after-first"), name="payments", batch_size=500)
print(stage.poll().payments.cursor, flush=True)
stage.poll()
"""


def test_the_child_dies_with_its_worker() -> None:
    """Given a worker process whose ingest child is in the middle of a poll (stuck for a minute), when the
    worker is killed with SIGKILL (no clean-up of its own), then the kernel ends the child at once, not
    when its poll returns and it finds the pipe closed: no ingest is left writing behind a new worker."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())   # type: ignore[union-attr]
        time.sleep(0.3)   # the second poll has reached the child
        assert alive(child)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child)
    finally:
        parent.kill()
        parent.wait(10)
