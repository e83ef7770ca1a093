"""One lane per register: recovery first, then one due receipt at a time, strictly serial.

A lane never sends a receipt while any receipt of its register is left "sending": it reconciles
those first, and if the register cannot answer, it waits. After an error the lane executes the
:class:`~worker.fiscal.retry.Decision` it is given: device-state errors pause it (the payments keep
their attempts), a wrong register configuration stops it. The shift is opened (or the expired one
closed) here. Which receipts may go now is the ledger's ``due`` query (prerequisites included).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Callable

from sqlalchemy.exc import DBAPIError

from kkt_drivers.base import Driver
from kkt_drivers.errors import DeviceStateError, KktError
from kkt_drivers.receipt import DeviceStatus
from worker.defaults import LANE_HEALTH_SECONDS, LANE_IDLE_SECONDS
from worker.fiscal.crashpoints import driver_step
from worker.fiscal.processor import Processor
from worker.fiscal.recovery import Reconciler, RegisterUnreachable
from worker.fiscal.retry import decide, describe
from worker.ledger.states import State
from worker.ledger.store import Ledger, ReceiptRecord, utcnow
from worker.settings import RetrySettings, ShiftSettings

log = logging.getLogger(__name__)


class Lane:
    """Drives one register from the ledger until *stop* is set."""

    def __init__(self, name: str, driver: Driver, ledger: Ledger, retry: RetrySettings, shifts: ShiftSettings,
                 stop: threading.Event, *,
                 local_now: Callable[[], dt.datetime] = dt.datetime.now) -> None:
        self.name = name
        self.driver = driver
        self.ledger = ledger
        self.retry = retry
        self.shifts = shifts
        self.stop = stop
        self.local_now = local_now
        self.driver.step_hook = driver_step
        self.processor = Processor(name, driver, ledger, retry)
        self.reconciler = Reconciler(name, driver, ledger, retry)
        self.idle = False          # True when the last step found nothing due
        self.stopped = False       # True once a decision stopped the lane (the register's settings are wrong)
        self.processed = 0
        #: monotonic time of the loop's last turn: the systemd watchdog is petted only while it moves
        self.beat = time.monotonic()
        self._health_written = float("-inf")
        #: called with (outcome, seconds) after each receipt attempt (the worker's metrics); None: nobody
        self.observer: Callable[[str, float], None] | None = None
        if hasattr(driver, "cancel_event"):
            # a driver that waits on a line (Shtrih) gives up within a second of the stop signal
            driver.cancel_event = stop  # type: ignore[attr-defined]

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        """Work until stopped; a receipt in progress is always finished first."""
        log.info("lane started", extra={"register": self.name})
        try:
            while not self.stop.is_set() and not self.stopped:
                self.beat = time.monotonic()
                wait = self.step()
                if wait and not self.stopped:
                    self.stop.wait(wait)
        finally:
            self.driver.disconnect()
            if not self.stopped:   # a lane stopped by a decision keeps its reason in the heartbeat
                self._heartbeat("stopped")
            log.info("lane stopped", extra={"register": self.name})

    def step(self) -> float:
        """Do one unit of work; return how long to wait before the next."""
        self.idle = False
        try:
            self.driver.connect()
            if not self.recover():
                return self.retry.device_pause_s
            rec = self._next_due()
            if rec is None:
                self._maybe_daily_close()
                self._heartbeat("running")
                self.idle = True
                return LANE_IDLE_SECONDS
            status = self.prepare_register()
            started = time.monotonic()
            outcome = self.processor.process(rec, status)
            self.processed += outcome.state is State.DONE
            if self.observer is not None and outcome.state is not None:   # metrics: outcome and latency
                label = "done" if outcome.decision is None else outcome.decision.reaction.value
                self.observer(label, time.monotonic() - started)
            if outcome.decision is None or outcome.decision.reconcile:
                return 0.0  # done, or the next step reconciles before anything else
            return self._execute(outcome.decision.pause_lane, outcome.decision.stop_lane, outcome.error)
        except KktError as exc:   # the register (not a receipt) failed: device state, link down, settings
            decision = decide(exc, 0, self.retry, now=utcnow(), in_receipt=False)
            if not isinstance(exc, DeviceStateError):
                log.warning("register unavailable: %s", describe(exc), extra={"register": self.name})
                self.driver.disconnect()
            return self._execute(decision.pause_lane, decision.stop_lane, exc)
        except DBAPIError as exc:  # the ledger is away: a "sending" row stays for recovery
            log.warning("ledger unavailable (%s); lane waits", type(exc.orig).__name__, extra={"register": self.name})
            return self._pause(exc)
        except Exception as exc:   # a bug: never spin, never lose the "sending" row
            log.exception("lane step failed", extra={"register": self.name})
            return self._pause(exc)

    def _execute(self, pause: bool, stop: bool, exc: BaseException | None) -> float:
        """Carry out a decision's lane part: stop (the register's settings are wrong), pause, or go on."""
        if stop:
            log.critical("register settings are wrong; lane stopped: %s", describe(exc) if exc else "",
                         extra={"register": self.name})
            self.stopped = True
            return self._pause(exc, state="stopped")
        return self._pause(exc) if pause else 0.0

    # -- pieces ---------------------------------------------------------------------------
    def recover(self) -> bool:
        """Reconcile every receipt this register left "sending". False if the register can't answer."""
        for rec in self.ledger.sending(self.name):
            try:
                self.reconciler.reconcile(rec)
            except RegisterUnreachable as exc:
                log.warning("cannot reconcile yet: %s", exc, extra={"register": self.name, "payment_id": rec.source_id})
                self._heartbeat("paused", reason=f"reconciling {rec.tag}: {exc}")
                return False
        return True

    def _next_due(self) -> ReceiptRecord | None:
        # the ledger returns only receipts whose prerequisites (sale, prepayment, earlier correction) are done
        due = self.ledger.due(utcnow(), limit=1)
        return due[0] if due else None

    def prepare_register(self) -> DeviceStatus:
        """Make the register ready for a receipt: no open receipt, paper, an open shift under 24 h."""
        status = self.driver.status()
        if status.receipt_open:
            # no receipt of ours is "sending" (recovery ran), so this one is not fiscal: cancel it
            log.warning("cancelling a receipt left open on the register", extra={"register": self.name})
            self.driver.cancel_receipt()
        if not status.paper_ok:
            raise DeviceStateError("paper out", condition=DeviceStateError.COND_PAPER_OUT)
        if status.shift_open and status.shift_expired:
            if not self.shifts.close_expired:
                raise DeviceStateError("shift is over 24 hours", condition=DeviceStateError.COND_SHIFT_EXPIRED)
            log.info("closing the expired shift %d (Z report)", status.shift_number, extra={"register": self.name})
            self.driver.close_shift(self.shifts.cashier)
            status = self.driver.status()
        if not status.shift_open:
            if not self.shifts.auto_open:
                raise DeviceStateError("shift is closed", condition=DeviceStateError.COND_SHIFT_CLOSED)
            doc = self.driver.open_shift(self.shifts.cashier)
            log.info("opened shift %d", doc.shift_number, extra={"register": self.name})
        status = self.driver.status()
        self._heartbeat("running", status=status)
        return status

    def _maybe_daily_close(self) -> None:
        if not self.shifts.daily_close_at:
            return
        close_at = dt.time.fromisoformat(self.shifts.daily_close_at)
        now = self.local_now()
        status = self.driver.status()
        if not status.shift_open or status.shift_opened_at is None:
            return
        today_close = dt.datetime.combine(now.date(), close_at)
        opened = status.shift_opened_at
        if status.register_time is not None:
            # the register keeps its own clock (maybe another zone): bring its opening time to ours
            opened -= status.register_time - now
        if opened < today_close <= now:
            log.info("daily close at %s: Z report for shift %d", close_at, status.shift_number,
                     extra={"register": self.name})
            self.driver.close_shift(self.shifts.cashier)

    def _pause(self, exc: BaseException | None, state: str = "paused") -> float:
        reason = describe(exc) if exc else None
        self._heartbeat(state, reason=reason)
        return self.retry.device_pause_s

    def _heartbeat(self, state: str, *, reason: str | None = None, status: DeviceStatus | None = None) -> None:
        try:
            self.ledger.lane_heartbeat(
                self.name, state=state, reason=reason, fn_serial=status.fn_serial if status else None,
                last_fd=status.last_fd_number if status else None, shift_open=status.shift_open if status else None)
        except Exception:  # status is informational; the ledger being down is handled elsewhere
            log.debug("lane heartbeat not recorded", exc_info=True)
        if status is not None and time.monotonic() - self._health_written >= LANE_HEALTH_SECONDS:
            self._record_health(status)

    def _record_health(self, status: DeviceStatus) -> None:
        """FN validity, the OFD backlog and the register's clock, for ``status --check`` and alerts."""
        skew = (status.register_time - self.local_now()).total_seconds() if status.register_time else None
        try:
            self.ledger.lane_health(self.name, fn_expires_on=status.fn_valid_until,
                                    ofd_unsent=status.unsent_documents,
                                    ofd_oldest_at=status.ofd_oldest_unsent_at, clock_skew_s=skew)
            self._health_written = time.monotonic()
        except Exception:
            log.debug("lane health not recorded", exc_info=True)
