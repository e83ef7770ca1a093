"""The emulated register's state file: written once per change, padded instead of truncated in place, and
always what a second process over the same directory reads (issue 10: the in-process emulator's saves
were a quarter of its CPU per receipt)."""
from __future__ import annotations

import gc
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from kkt_drivers.emulator import storage
from kkt_drivers.emulator.model import RegisterModel
from kkt_drivers.receipt import Item, Operation, Payment, PaymentType, TaxSystem, Vat


def _item(n: int) -> Item:
    return Item(f"Товар {n}", Decimal("10.00"), Decimal("1"), Decimal("10.00"), Vat.NONE)


@pytest.mark.parametrize("fsync", [False, True])
def test_an_open_receipt_flushed_mid_session_is_what_a_second_model_reads(tmp_path: Path, fsync: bool) -> None:
    """Given a session that opened a receipt and flushed (a step that may be a kill), when a second model
    over the same directory reads the register before that session ends, then it sees the open receipt;
    and a command run after the flush is saved when the session ends (the flush did not mark it saved)."""
    reg = RegisterModel(tmp_path, fsync=fsync)
    reg.open_shift()
    with reg.session():
        reg.open_receipt(Operation.SALE)
        reg.add_item(_item(1))
        reg.flush_session()
        on_disk = json.loads((tmp_path / "state.json").read_text())
        assert [i["name"] for i in on_disk["receipt"]["items"]] == ["Товар 1"]
        reg.add_item(_item(2))   # after the flush: dirty again
    again = RegisterModel(tmp_path, fsync=fsync)
    assert [i["name"] for i in again.open_receipt_snapshot()["items"]] == ["Товар 1", "Товар 2"]


def test_a_shorter_state_is_padded_in_place_and_reads_back_whole(tmp_path: Path) -> None:
    """Given the state file holding an open receipt of 20 items (no-fsync mode: written in place), when
    the receipt closes and the state shrinks, then the file keeps its length (padded with spaces, one
    write: no kill between a write and a truncate can tear it), it parses, and a second model reads
    the closed receipt's state."""
    reg = RegisterModel(tmp_path, fsync=False)
    reg.open_shift()
    reg.open_receipt(Operation.SALE)
    for n in range(20):
        reg.add_item(_item(n))
    long_size = (tmp_path / "state.json").stat().st_size
    doc = reg.close_receipt([Payment(PaymentType.ELECTRONIC, Decimal("200.00"))], TaxSystem.USN_INCOME)
    raw = (tmp_path / "state.json").read_bytes()
    assert len(raw) == long_size and raw.endswith(b" ")
    assert json.loads(raw)["receipt"] is None
    again = RegisterModel(tmp_path, fsync=False)
    st = again.status()
    assert st.last_fd_number == doc["fd"] and not st.receipt_open


def test_a_state_shrunk_beyond_the_padding_limit_is_truncated(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a padding limit smaller than the shrink, when the state shrinks, then the file is cut to the
    new text (no state file grows without bound from one large receipt)."""
    monkeypatch.setattr(storage, "_STATE_PAD_MAX", 16)
    reg = RegisterModel(tmp_path, fsync=False)
    reg.open_shift()
    reg.open_receipt(Operation.SALE)
    for n in range(5):
        reg.add_item(_item(n))
    reg.cancel_receipt()
    raw = (tmp_path / "state.json").read_bytes()
    assert not raw.endswith(b" ") and json.loads(raw)["receipt"] is None


def test_a_model_that_is_gone_leaves_no_open_descriptor(tmp_path: Path) -> None:
    """Given models built and dropped one after another over one register (the CLI builds one per
    command), when each ran a command (which keeps its lock file open), then dropping them closed it."""
    lock = str(tmp_path / "lock")

    def open_on_lock() -> int:   # this process's descriptors of the register's lock file (others may come and go)
        fds = Path("/proc/self/fd")
        count = 0
        for fd in fds.iterdir():
            try:
                count += os.readlink(fd) == lock
            except OSError:   # closed meanwhile
                pass
        return count

    kept = RegisterModel(tmp_path, fsync=False)
    kept.status()
    assert open_on_lock() == 1   # kept open while the model lives
    del kept
    for _ in range(50):
        RegisterModel(tmp_path, fsync=False).status()
    gc.collect()
    assert open_on_lock() == 0
