"""A lane's own shift-open document is accounted for without reading it back — and only when it is
the one document past the watermark (the 200-register farm's start-up read back 200 documents)."""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from kkt_drivers.emulator.driver import EmulatorDriver
from tests.ledger.test_fiscalize import drain, make_lane
from tests.ledger.test_ledger import entry, ingest
from tests.shop import receipts_by_tag
from worker.ledger.schema import register_documents
from worker.ledger.states import State
from worker.ledger.store import Ledger


def _examined(ledger: Ledger) -> list[tuple[int, str]]:
    with ledger.engine.connect() as c:
        return [tuple(r) for r in c.execute(sa.select(register_documents.c.fd_number, register_documents.c.disposition)
                                            .order_by(register_documents.c.fd_number))]


def test_own_shift_open_is_recorded_without_a_read_back(ledger: Ledger, tmp_path: Path) -> None:
    """Given a fresh register with its shift closed, when the lane opens the shift and sends S1, then the
    shift-open document is recorded as examined ("service") and the watermark passed it, with no
    document read back from the register."""
    ingest(ledger, [entry(1)], cursor=1)
    lane = make_lane(ledger, tmp_path / "reg")
    read_back: list[int] = []
    real = lane.driver.document
    lane.driver.document = lambda n: (read_back.append(n), real(n))[1]  # type: ignore[method-assign]
    drain(lane)
    st = lane.driver.status()
    assert read_back == []
    assert _examined(ledger) == [(1, "service")]
    rec = ledger.list_receipts()[0]
    assert rec.state is State.DONE and rec.fd_before == 1 and rec.fd_number == 2
    assert ledger.watermark("kkt1", st.fn_serial) == 2


def test_documents_made_before_our_shift_open_are_still_examined(ledger: Ledger, tmp_path: Path) -> None:
    """Given another program opens a shift, prints S1's receipt (our tag) and closes the shift between the
    lane's sync and its own shift opening, then the lane reads those documents back and adopts S1: the
    shortcut does not apply (our shift-open is not the FD right after the watermark), nothing is printed twice."""
    ingest(ledger, [entry(1)], cursor=1)
    lane = make_lane(ledger, tmp_path / "reg")
    other = EmulatorDriver.from_url(f"emulator://{tmp_path / 'reg'}")
    real_open = lane.driver.open_shift

    def open_after_another_program(cashier: str | None = None):  # type: ignore[no-untyped-def]
        lane.driver.open_shift = real_open  # type: ignore[method-assign]
        other.open_shift()
        other.fiscalize(ledger.list_receipts()[0].receipt())
        other.close_shift()
        return real_open(cashier)

    lane.driver.open_shift = open_after_another_program  # type: ignore[method-assign]
    drain(lane)
    assert {t: len(d) for t, d in receipts_by_tag(tmp_path / "reg").items()} == {"S1": 1}
    rec = ledger.list_receipts()[0]
    assert rec.state is State.DONE and rec.fd_number == 2
    assert _examined(ledger) == [(1, "service"), (2, "adopted"), (3, "service"), (4, "service")]
