"""A lane against the emulated register: intent before send, faults, reconciliation by tag."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kkt_drivers import open_driver
from kkt_drivers.emulator.driver import EmulatorDriver
from tests.ledger.test_ledger import entry, ingest
from tests.shop import receipts_by_tag
from worker.fiscal.lane import Lane
from worker.ledger.states import State
from worker.ledger.store import Ledger
from worker.settings import RetrySettings, ShiftSettings

RETRY = RetrySettings(max_attempts=3, base_delay_s=0.0001, max_delay_s=0.0001, device_pause_s=0.01)


def make_lane(ledger: Ledger, reg_dir: Path, query: str = "", name: str = "kkt1") -> Lane:
    drv = open_driver(f"emulator://{reg_dir}?seed=3{'&' + query if query else ''}")
    return Lane(name, drv, ledger, RETRY, ShiftSettings(), threading.Event())


def drain(lane: Lane, steps: int = 60) -> None:
    for _ in range(steps):
        lane.step()
        if lane.idle:
            return
    raise AssertionError("lane did not drain")


def test_each_payment_becomes_exactly_one_document(ledger: Ledger, tmp_path: Path) -> None:
    """Given 5 queued payments, when the lane drains, then the journal has one document per tag."""
    ingest(ledger, [entry(i) for i in range(1, 6)], cursor=5)
    lane = make_lane(ledger, tmp_path / "reg")
    drain(lane)
    docs = receipts_by_tag(tmp_path / "reg")
    assert sorted(docs) == [f"S{i}" for i in range(1, 6)] and all(len(d) == 1 for d in docs.values())
    for r in ledger.list_receipts():
        assert r.state is State.DONE and r.fd_number == docs[r.tag][0]["fd"] and r.fd_before is not None


def test_transient_failure_is_retried_then_succeeds(ledger: Ledger, tmp_path: Path) -> None:
    """A link that fails twice before sending then recovers: one document, two failed attempts recorded."""
    ingest(ledger, [entry(1)], cursor=1)
    lane = make_lane(ledger, tmp_path / "reg", "fail_before_send=first:2")
    drain(lane)
    rec = ledger.list_receipts()[0]
    assert rec.state is State.DONE
    assert [a["outcome"] for a in ledger.attempts_of(rec.id)] == ["transient", "transient", "done"]
    assert len(receipts_by_tag(tmp_path / "reg")["S1"]) == 1


def test_transient_failures_exhaust_into_failed(ledger: Ledger, tmp_path: Path) -> None:
    """A register that never answers: after max_attempts the receipt is failed, nothing fiscalized."""
    ingest(ledger, [entry(1)], cursor=1)
    lane = make_lane(ledger, tmp_path / "reg", "fail_before_send=1.0")
    drain(lane)
    assert ledger.list_receipts()[0].state is State.FAILED
    assert receipts_by_tag(tmp_path / "reg") == {}


def test_lost_reply_after_close_is_reconciled_to_done(ledger: Ledger, tmp_path: Path) -> None:
    """The close worked but its answer was lost: reconciliation finds our tag; no second document."""
    ingest(ledger, [entry(1), entry(2)], cursor=2)
    lane = make_lane(ledger, tmp_path / "reg", "lose_reply_after_close=first:1")
    drain(lane)
    docs = receipts_by_tag(tmp_path / "reg")
    assert {t: len(d) for t, d in docs.items()} == {"S1": 1, "S2": 1}
    s1 = [r for r in ledger.list_receipts() if r.tag == "S1"][0]
    assert s1.state is State.DONE and s1.fd_number == docs["S1"][0]["fd"]
    assert [a["outcome"] for a in ledger.attempts_of(s1.id)] == [None, "reconciled_done"]


def test_lost_close_is_reconciled_to_a_safe_resend(ledger: Ledger, tmp_path: Path) -> None:
    """The close never arrived (receipt left open): reconciliation cancels it and sends again, once."""
    ingest(ledger, [entry(1)], cursor=1)
    lane = make_lane(ledger, tmp_path / "reg", "lose_reply_before_close=first:1")
    drain(lane)
    assert ledger.list_receipts()[0].state is State.DONE
    assert len(receipts_by_tag(tmp_path / "reg")["S1"]) == 1


def test_paper_out_mid_receipt_pauses_without_burning_attempts(ledger: Ledger, tmp_path: Path) -> None:
    """Paper runs out during the items: the open receipt is cancelled, the lane waits, then prints once."""
    ingest(ledger, [entry(1)], cursor=1)
    lane = make_lane(ledger, tmp_path / "reg", "paper_out_mid_receipt=first:1")
    lane.step()
    rec = ledger.list_receipts()[0]
    assert rec.state is State.QUEUED and rec.attempts == 0 and rec.error_class == "device"
    EmulatorDriver.from_url(f"emulator://{tmp_path / 'reg'}").register.load_paper()
    drain(lane)
    assert ledger.list_receipts()[0].state is State.DONE
    assert len(receipts_by_tag(tmp_path / "reg")["S1"]) == 1


def test_expired_shift_is_closed_and_reopened(ledger: Ledger, tmp_path: Path) -> None:
    """A shift over 24 h: the lane closes it (Z report), opens a new one, then fiscalizes."""
    reg = EmulatorDriver.from_url(f"emulator://{tmp_path / 'reg'}").register
    reg.open_shift()
    reg.advance_clock(25 * 3600)
    ingest(ledger, [entry(1)], cursor=1)
    drain(make_lane(ledger, tmp_path / "reg"))
    kinds = [d["kind"] for d in reg.documents()]
    assert kinds == ["open_shift", "close_shift", "open_shift", "receipt"]
    assert ledger.list_receipts()[0].shift_number == 2


def _leave_sending(ledger: Ledger, fd_before: int, fn: str) -> int:
    rec = ledger.list_receipts()[0]
    ledger.record_intent(rec.id, register="kkt1", fn_serial=fn, fd_before=fd_before)
    return rec.id


def test_duplicate_documents_go_to_review(ledger: Ledger, tmp_path: Path) -> None:
    """Two documents carrying our tag after the intent: never done silently, needs review."""
    ingest(ledger, [entry(1)], cursor=1)
    drv = EmulatorDriver.from_url(f"emulator://{tmp_path / 'reg'}")
    drv.register.open_shift()
    st = drv.status()
    rid = _leave_sending(ledger, st.last_fd_number, st.fn_serial)
    receipt = ledger.get(rid).receipt()
    drv.fiscalize(receipt)
    drv.fiscalize(receipt)
    make_lane(ledger, tmp_path / "reg").recover()
    rec = ledger.get(rid)
    assert rec.state is State.NEEDS_REVIEW and "DUPLICATE" in rec.last_error


def test_replaced_fn_goes_to_review(ledger: Ledger, tmp_path: Path) -> None:
    """The FN changed since the intent: the old documents can't be read here — needs review."""
    ingest(ledger, [entry(1)], cursor=1)
    drv = EmulatorDriver.from_url(f"emulator://{tmp_path / 'reg'}")
    st = drv.status()
    rid = _leave_sending(ledger, st.last_fd_number, st.fn_serial)
    drv.register.replace_fn()
    make_lane(ledger, tmp_path / "reg").recover()
    assert ledger.get(rid).state is State.NEEDS_REVIEW


def test_foreign_documents_do_not_confuse_reconciliation(ledger: Ledger, tmp_path: Path) -> None:
    """A shift opening and another sale after the intent, none with our tag: safe to send again, once."""
    ingest(ledger, [entry(1)], cursor=1)
    drv = EmulatorDriver.from_url(f"emulator://{tmp_path / 'reg'}")
    st = drv.status()
    rid = _leave_sending(ledger, st.last_fd_number, st.fn_serial)
    drv.register.open_shift()
    other = ledger.get(rid).receipt()
    drv.fiscalize(type(other)(**{**other.__dict__, "tag": "OTHER"}))
    drain(make_lane(ledger, tmp_path / "reg"))
    assert ledger.get(rid).state is State.DONE
    assert {t: len(d) for t, d in receipts_by_tag(tmp_path / "reg").items()} == {"OTHER": 1, "S1": 1}


def test_unreachable_register_keeps_the_receipt_sending(ledger: Ledger, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """While the register cannot answer, the uncertain receipt stays "sending" and nothing else is sent."""
    from kkt_drivers.errors import TransientError

    ingest(ledger, [entry(1), entry(2)], cursor=2)
    lane = make_lane(ledger, tmp_path / "reg")
    st = lane.driver.status()
    rid = _leave_sending(ledger, st.last_fd_number, st.fn_serial)

    def down() -> None:
        raise TransientError("link down")

    monkeypatch.setattr(lane.driver, "status", down)
    for _ in range(3):
        lane.step()
    assert ledger.get(rid).state is State.SENDING
    assert receipts_by_tag(tmp_path / "reg") == {}


def test_reverse_correction_pair_sharing_1192_is_reconciled_by_operation(ledger: Ledger, tmp_path: Path) -> None:
    """Both documents of a reverse-correction pair carry the wrong receipt's ФПД in 1192. A crash after the
    register printed the second one: reconciliation picks that document, not the first, and prints nothing."""
    import dataclasses
    import datetime as dt

    from kkt_drivers.receipt import Correction, Operation
    from worker.ledger.store import PlannedRow

    ingest(ledger, [entry(1)], cursor=1)
    lane = make_lane(ledger, tmp_path / "reg")
    drain(lane)
    wrong = ledger.list_receipts()[0]
    fp = str(wrong.fiscal_sign)
    body = dataclasses.replace(wrong.receipt(), tag=fp, correction=Correction(True, dt.date(2026, 11, 20)))
    reverse = dataclasses.replace(body, operation=Operation.SALE_REFUND)
    ledger.add_planned(1, [PlannedRow("correction", 1, "C1", receipt=reverse),
                           PlannedRow("correction", 2, "C1.2", receipt=body)])
    drain(lane)                                   # both printed normally first
    first_pair = [d for d in receipts_by_tag(tmp_path / "reg")[fp]]
    assert sorted(d["operation"] for d in first_pair) == [1, 2]

    # now a second pair whose fix is left "sending" after the register printed it (a crash)
    ledger.add_planned(1, [PlannedRow("correction", 3, "C1.3", receipt=reverse),
                           PlannedRow("correction", 4, "C1.4", receipt=body)])
    lane.step()          # the reverse C1.3 is done, and C1.4 claimed in the same write (its intent committed)
    fix = [r for r in ledger.list_receipts() if r.tag == "C1.4"][0]
    assert fix.state is State.SENDING and fix.fd_before == lane.driver.status().last_fd_number
    printed = lane.driver.fiscalize(body)
    lane.recover()
    fix = ledger.get(fix.id)
    assert fix.state is State.DONE and fix.fd_number == printed.fd_number
    assert len(receipts_by_tag(tmp_path / "reg")[fp]) == 4


def test_waiting_refunds_do_not_starve_other_receipts(ledger: Ledger, tmp_path: Path) -> None:
    """30 refunds wait for a sale that is not fiscalized (rejected); a new sale behind them still goes out."""
    import dataclasses

    from kkt_drivers.receipt import Operation
    from tests.ledger.test_ledger import receipt, shop_row
    from worker.ledger.store import IngestEntry, PlannedRow

    bad_sale = IngestEntry(shop_row(1), (PlannedRow("sale", 1, "S1", error="payment_items[0].vat: bad"),))
    refunds = [IngestEntry(dataclasses.replace(shop_row(i), kind="refund", refund_of=1),
                           (PlannedRow("refund", 1, f"R{i}",
                                       receipt=dataclasses.replace(receipt(f"R{i}"), operation=Operation.SALE_REFUND)),))
               for i in range(2, 32)]
    ingest(ledger, [bad_sale, *refunds, entry(40)], cursor=40)
    lane = make_lane(ledger, tmp_path / "reg")
    for _ in range(5):
        lane.step()
    states = {r.tag: r.state for r in ledger.list_receipts()}
    assert states["S40"] is State.DONE
    assert all(states[f"R{i}"] is State.QUEUED for i in range(2, 32))
    assert list(receipts_by_tag(tmp_path / "reg")) == ["S40"]
