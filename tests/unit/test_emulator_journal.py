"""The emulated register keeps its documents in its journal file, not in memory (issue 10: the
worker's peak RSS grew with every receipt printed on the in-process emulator)."""
from __future__ import annotations

from pathlib import Path

from kkt_drivers.emulator.model import RegisterModel


def test_documents_are_read_back_from_the_journal_and_memory_holds_one_offset_each(tmp_path: Path) -> None:
    """Given a register that opened and closed shifts, when its documents are asked for by number, then
    each comes back from the journal as written, a second model over the same directory reads the
    same, and the model itself holds only an 8-byte offset per document."""
    reg = RegisterModel(tmp_path, fsync=False)
    for _ in range(30):
        reg.open_shift()
        reg.close_shift()
    every = reg.documents()
    assert [d["fd"] for d in every] == list(range(1, 61))
    assert [d["kind"] for d in every[:2]] == ["open_shift", "close_shift"]
    assert all(reg.document(d["fd"]) == d for d in every)
    assert reg.document(0) is None and reg.document(61) is None
    fn = every[0]["fn"]
    offsets = reg._offsets[fn]
    assert len(offsets) == 60 and offsets.itemsize == 8
    again = RegisterModel(tmp_path, fsync=False)
    again.status()   # loads the state and indexes the journal
    assert again.documents() == every and again.document(37) == every[36]
