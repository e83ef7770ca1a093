"""The lane and recovery against the in-memory register (kkt_drivers.memory): what the lane does after
each kind of error, without files or sockets. The wire-protocol emulators prove the drivers; this
proves the lane executes the decisions."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import pytest

from kkt_drivers import open_driver
from kkt_drivers.errors import DeviceStateError, DriverConfigError, OutcomeUnknownError, TransientError
from kkt_drivers.memory import MemoryDriver, forget
from kkt_drivers.receipt import Operation
from tests.ledger.test_ledger import entry, ingest
from worker.defaults import LANE_PROBE_BASE_SECONDS
from worker.fiscal.lane import Lane
from worker.fiscal.recovery import Reconciler, RegisterUnreachable
from worker.ledger.schema import metadata
from worker.ledger.states import State
from worker.ledger.store import Ledger
from worker.settings import RetrySettings, ShiftSettings

POLICY = RetrySettings(max_attempts=3, base_delay_s=60.0, max_delay_s=60.0, device_pause_s=7.0)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    metadata.create_all(led.engine)     # the models (tests/migrations proves alembic gives the same)
    yield led
    led.dispose()


@pytest.fixture
def driver() -> Iterator[MemoryDriver]:
    drv = open_driver("memory://lane-test")
    assert isinstance(drv, MemoryDriver)
    yield drv
    forget("lane-test")


def lane_for(ledger: Ledger, driver: MemoryDriver) -> Lane:
    return Lane("kkt1", driver, ledger, POLICY, ShiftSettings(), threading.Event())


def lane_state(ledger: Ledger) -> dict:
    return {lane["name"]: lane for lane in ledger.status_details()["lanes"]}["kkt1"]


def test_a_queued_receipt_is_sent_once_after_opening_the_shift(ledger: Ledger, driver: MemoryDriver) -> None:
    """Given a queued receipt and a closed shift, when the lane steps, then it opens the shift, sends once, done."""
    ingest(ledger, [entry(1)], cursor=1)
    lane = lane_for(ledger, driver)
    assert lane.step() == 0.0
    assert driver.called("open_shift") == 1 and driver.calls.count(("fiscalize", "S1")) == 1
    rec = ledger.list_receipts()[0]
    assert rec.state is State.DONE and rec.fd_number == 2        # 1 is the shift opening


def test_transient_error_requeues_with_backoff_and_burns_an_attempt(ledger: Ledger, driver: MemoryDriver) -> None:
    """A link error before the close: the receipt is queued later with one attempt used; the lane leaves
    the pool for a short re-probe (docs/pool.md), then comes back and finds nothing due yet."""
    ingest(ledger, [entry(1)], cursor=1)
    driver.fail("fiscalize", TransientError("link down"))
    lane = lane_for(ledger, driver)
    assert lane.step() == LANE_PROBE_BASE_SECONDS and not lane.healthy
    rec = ledger.list_receipts()[0]
    assert rec.state is State.QUEUED and rec.attempts == 1 and rec.error_class == "transient"
    assert rec.next_attempt_at > rec.updated_at                 # backoff, not at once (no other register)
    assert driver.called("cancel_receipt") == 1
    assert lane.step() > 0 and lane.idle and lane.healthy      # the probe passed; nothing due yet


def test_device_error_pauses_the_lane_and_keeps_the_attempts(ledger: Ledger, driver: MemoryDriver) -> None:
    """Paper out during the receipt: the lane pauses for device_pause_s, the payment keeps its attempts."""
    ingest(ledger, [entry(1)], cursor=1)
    driver.fail("fiscalize", DeviceStateError("paper out", condition=DeviceStateError.COND_PAPER_OUT))
    lane = lane_for(ledger, driver)
    assert lane.step() == LANE_PROBE_BASE_SECONDS and not lane.healthy   # re-probed after 1, 2, 4 … s
    rec = ledger.list_receipts()[0]
    assert rec.state is State.QUEUED and rec.attempts == 0
    assert lane_state(ledger)["state"] == "paused" and not lane.stopped
    lane.step()
    assert ledger.list_receipts()[0].state is State.DONE


def test_config_error_stops_the_lane(ledger: Ledger, driver: MemoryDriver) -> None:
    """A register that refuses our settings: the lane stops (not a pause), the receipt stays queued unburnt,
    and run() returns without a stop signal."""
    ingest(ledger, [entry(1)], cursor=1)
    driver.fail("fiscalize", DriverConfigError("wrong tax system for this register"))
    lane = lane_for(ledger, driver)
    lane.run()                                                  # returns by itself: the lane stopped
    assert lane.stopped and not lane.stop.is_set()
    rec = ledger.list_receipts()[0]
    assert rec.state is State.QUEUED and rec.attempts == 0
    seen = lane_state(ledger)
    assert seen["state"] == "stopped" and "wrong tax system" in seen["reason"]
    assert driver.called("fiscalize") == 1


def test_register_level_config_error_stops_the_lane_too(ledger: Ledger, driver: MemoryDriver) -> None:
    """The status call itself refuses our settings: stopped, nothing sent."""
    ingest(ledger, [entry(1)], cursor=1)
    driver.fail("status", DriverConfigError("bad password"))
    lane = lane_for(ledger, driver)
    lane.step()
    assert lane.stopped and driver.called("fiscalize") == 0


def test_lost_reply_is_reconciled_from_the_documents_not_resent(ledger: Ledger, driver: MemoryDriver) -> None:
    """The document was made but the reply lost: the receipt stays sending, the next step finds it by tag."""
    ingest(ledger, [entry(1)], cursor=1)
    driver.fail("fiscalize", OutcomeUnknownError("no answer after close"), after=True)
    lane = lane_for(ledger, driver)
    assert lane.step() == 0.0
    assert ledger.list_receipts()[0].state is State.SENDING
    lane.step()
    rec = ledger.list_receipts()[0]
    assert rec.state is State.DONE and driver.called("fiscalize") == 1 and driver.called("document") >= 1


def test_transient_errors_exhaust_into_failed(ledger: Ledger, driver: MemoryDriver) -> None:
    """max_attempts transient failures make the receipt failed; nothing was printed."""
    ingest(ledger, [entry(1)], cursor=1)
    driver.fail("fiscalize", TransientError("link down"), times=POLICY.max_attempts)
    lane = lane_for(ledger, driver)
    for _ in range(POLICY.max_attempts):
        lane.step()
        with ledger.write() as conn:                             # make it due again at once
            conn.exec_driver_sql("UPDATE receipts SET next_attempt_at = '2000-01-01 00:00:00'")
    rec = ledger.list_receipts()[0]
    assert rec.state is State.FAILED and rec.attempts == POLICY.max_attempts
    assert [d for d in driver.register.documents if d.tag] == []


# -- recovery by idempotency key (Driver.lookup_by_key / find_by_key) ----------------------------
@pytest.fixture
def keyed() -> Iterator[MemoryDriver]:
    drv = open_driver("memory://keyed?lookup_by_key=1")
    assert isinstance(drv, MemoryDriver) and drv.lookup_by_key
    yield drv
    forget("keyed")


def _sending(ledger: Ledger, driver: MemoryDriver, *, printed: bool, operation: Operation | None = None):
    ingest(ledger, [entry(1)], cursor=1)
    rec = ledger.due(ledger_now())[0]
    st = driver.status()
    ledger.record_intent(rec.id, register="kkt1", fn_serial=st.fn_serial, fd_before=st.last_fd_number)
    if printed:
        body = rec.receipt()
        if operation is not None:
            import dataclasses
            body = dataclasses.replace(body, operation=operation)
        driver.fiscalize(body)
    driver.calls.clear()
    return ledger.get(rec.id)


def ledger_now():
    from worker.ledger.store import utcnow
    return utcnow()


def test_key_lookup_finds_the_document_without_reading_by_number(ledger: Ledger, keyed: MemoryDriver) -> None:
    """A driver that keeps our key: recovery asks by key, finds the document, marks it done."""
    rec = _sending(ledger, keyed, printed=True)
    assert Reconciler("kkt1", keyed, ledger, POLICY).reconcile(rec) is State.DONE
    assert keyed.called("find_by_key") == 1 and keyed.called("document") == 0
    assert ledger.get(rec.id).fd_number == 1
    assert [a["outcome"] for a in ledger.attempts_of(rec.id)] == [None, "reconciled_done"]


def test_key_lookup_not_found_queues_it_again_burning_an_attempt(ledger: Ledger, keyed: MemoryDriver) -> None:
    """Nothing under our key: safe to send again, at once, one attempt used."""
    rec = _sending(ledger, keyed, printed=False)
    assert Reconciler("kkt1", keyed, ledger, POLICY).reconcile(rec) is State.QUEUED
    after = ledger.get(rec.id)
    assert after.attempts == 1 and after.next_attempt_at <= ledger_now()


def test_key_lookup_unreachable_keeps_it_sending(ledger: Ledger, keyed: MemoryDriver) -> None:
    """The service cannot be asked (or still processes): the receipt stays sending."""
    rec = _sending(ledger, keyed, printed=False)
    keyed.fail("find_by_key", TransientError("503"))
    with pytest.raises(RegisterUnreachable):
        Reconciler("kkt1", keyed, ledger, POLICY).reconcile(rec)
    assert ledger.get(rec.id).state is State.SENDING


def test_key_lookup_with_another_operation_needs_review(ledger: Ledger, keyed: MemoryDriver) -> None:
    """The key's document is a refund where we sent a sale: a human looks at it."""
    rec = _sending(ledger, keyed, printed=True, operation=Operation.SALE_REFUND)
    assert Reconciler("kkt1", keyed, ledger, POLICY).reconcile(rec) is State.NEEDS_REVIEW


def test_memory_driver_refuses_unknown_options() -> None:
    """Like every driver URL, unknown options are refused with their name."""
    with pytest.raises(DriverConfigError, match="'speed'"):
        open_driver("memory://x?speed=2")


def test_daily_close_uses_the_shop_clock_whatever_zone_the_register_keeps(ledger: Ledger,
                                                                            driver: MemoryDriver) -> None:
    """A register 4 h ahead (UTC+7 against Moscow) opened its shift at 02:00 its time = 22:00 shop time;
    at 23:05 shop time the 23:00 daily close must happen today, not a day later."""
    import datetime as dt

    shop_now = dt.datetime(2026, 11, 30, 23, 5)
    lane = Lane("kkt1", driver, ledger, POLICY, ShiftSettings(daily_close_at="23:00"), threading.Event(),
                local_now=lambda: shop_now)
    driver.connect()
    driver.open_shift()
    driver.register.shift_opened_at = dt.datetime(2026, 12, 1, 2, 0)
    driver.register.register_time = dt.datetime(2026, 12, 1, 3, 5)
    lane._maybe_daily_close()
    assert not driver.register.shift_open and [c for c, _ in driver.calls].count("close_shift") == 1


def test_the_lane_row_shows_the_register_position_after_the_last_receipt(ledger: Ledger,
                                                                          driver: MemoryDriver) -> None:
    """`status` prints each lane's last FD: after two receipts it is the second receipt's FD, not the FD the
    register reported before the first one (the demo's status said "last FD 14" with FD 16 printed)."""
    ingest(ledger, [entry(1), entry(2)], cursor=2)
    lane = lane_for(ledger, driver)
    lane.step()
    lane.step()
    lane._heartbeat("stopped")
    done = [r.fd_number for r in ledger.list_receipts()]
    assert lane_state(ledger)["last_fd"] == max(done) == 3
