"""A lane reads its register's status no more often than it needs to: each read is a register command
(~0.1 s on a serial Shtrih-M), and a 200-register farm starts all its lanes at once."""
from __future__ import annotations

from pathlib import Path

from kkt_drivers.emulator.driver import EmulatorDriver
from kkt_drivers.receipt import Operation
from tests.ledger.test_fiscalize import drain, make_lane
from tests.ledger.test_ledger import entry, ingest
from worker.ledger.states import State
from worker.ledger.store import Ledger


def _count_status(driver: EmulatorDriver) -> list[int]:
    calls: list[int] = []
    real = driver.status
    driver.status = lambda: (calls.append(1), real())[1]  # type: ignore[method-assign]
    return calls


def test_a_start_on_an_open_shift_reads_the_status_once(ledger: Ledger, tmp_path: Path) -> None:
    """Given a register whose shift is open, when a lane starts and sends S1, then the status the start-up
    sync read is the one the preparation uses: one status read in all (it was three)."""
    EmulatorDriver.from_url(f"emulator://{tmp_path / 'reg'}").open_shift()
    ingest(ledger, [entry(1)], cursor=1)
    lane = make_lane(ledger, tmp_path / "reg")
    calls = _count_status(lane.driver)
    drain(lane)
    assert ledger.list_receipts()[0].state is State.DONE
    assert len(calls) == 1


def test_a_receipt_left_open_is_cancelled_and_the_status_read_again(ledger: Ledger, tmp_path: Path) -> None:
    """Given a register with a receipt left open (not ours: nothing is "sending"), when a lane starts, then it
    cancels that receipt and reads the status again before it sends S1 (the preparation changed the
    register), and S1 is printed once."""
    other = EmulatorDriver.from_url(f"emulator://{tmp_path / 'reg'}")
    other.open_shift()
    other.register.open_receipt(Operation.SALE)
    ingest(ledger, [entry(1)], cursor=1)
    lane = make_lane(ledger, tmp_path / "reg")
    calls = _count_status(lane.driver)
    drain(lane)
    assert len(calls) == 2
    rec = ledger.list_receipts()[0]
    assert rec.state is State.DONE and rec.fd_number == 2 and not other.status().receipt_open
    assert [d["tag"] for d in other.register.documents() if d["kind"] == "receipt"] == ["S1"]
