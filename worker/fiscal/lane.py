"""One lane per register: recovery first, then one due receipt at a time, strictly serial.

A lane never sends a receipt while any receipt of its register is left "sending": it reconciles
those first, and if the register cannot answer, it waits. Device-state errors pause the lane
without burning the payments' attempts; the shift is opened (or the expired one closed) here.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Callable

from sqlalchemy.exc import DBAPIError

from kkt_drivers.base import Driver
from kkt_drivers.errors import DeviceStateError, KktError
from kkt_drivers.receipt import DeviceStatus
from worker.defaults import LANE_IDLE_SECONDS, WAITING_RECHECK_SECONDS
from worker.fiscal.crashpoints import driver_step
from worker.fiscal.processor import Processor, RetryPolicy
from worker.fiscal.recovery import Reconciler, RegisterUnreachable
from worker.fiscal.retry import Reaction, describe
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
        policy = RetryPolicy(retry.max_attempts, retry.base_delay_s, retry.max_delay_s)
        self.processor = Processor(name, driver, ledger, policy)
        self.reconciler = Reconciler(name, driver, ledger, retry.max_attempts)
        self.idle = False          # True when the last step found nothing due
        self.processed = 0

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        """Work until stopped; a receipt in progress is always finished first."""
        log.info("lane started", extra={"register": self.name})
        try:
            while not self.stop.is_set():
                wait = self.step()
                if wait:
                    self.stop.wait(wait)
        finally:
            self.driver.disconnect()
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
            outcome = self.processor.process(rec, status)
            self.processed += outcome.state is State.DONE
            if outcome.reaction in (Reaction.UNKNOWN, Reaction.BUG):
                return 0.0  # the next step reconciles before anything else
            if outcome.reaction is Reaction.DEVICE:
                return self._pause(outcome.error)
            if outcome.reaction is Reaction.CONFIG:
                return self._pause(outcome.error, state="paused")
            return 0.0
        except DeviceStateError as exc:
            return self._pause(exc)
        except KktError as exc:
            log.warning("register unavailable: %s", describe(exc), extra={"register": self.name})
            self.driver.disconnect()
            return self._pause(exc)
        except DBAPIError as exc:  # the ledger is away: a "sending" row stays for recovery
            log.warning("ledger unavailable (%s); lane waits", type(exc.orig).__name__, extra={"register": self.name})
            return self._pause(exc)
        except Exception as exc:   # a bug: never spin, never lose the "sending" row
            log.exception("lane step failed", extra={"register": self.name})
            return self._pause(exc)

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
        for rec in self.ledger.due(utcnow(), limit=20):
            if self._must_wait(rec):
                # out of the head of the queue, so that waiting receipts never starve the others
                self.ledger.postpone(rec.id, utcnow() + dt.timedelta(seconds=WAITING_RECHECK_SECONDS))
                continue
            return rec
        return None

    def _must_wait(self, rec: ReceiptRecord) -> bool:
        """Whether *rec* waits for another receipt of the shop to be fiscalized first."""
        if rec.stage == "refund" and rec.refund_of is not None and not self.ledger.sale_done(rec.refund_of):
            # a refund waits until what it refunds has been fiscalized: every receipt of the sale, or,
            # for a refund mirroring a prepayment (1214 = 1..3), that prepayment receipt
            prepaid = any(int(it.payment_method) <= 3 for it in rec.receipt().items)
            return not (prepaid and self.ledger.stage_done(rec.refund_of, "prepayment"))
        # the offset of a prepayment waits for the prepayment receipt of the same payment
        if rec.stage == "settlement":
            return not self.ledger.stage_done(rec.source_id, "prepayment")
        # a correction pair is issued in order: the reverse correction before the correct one
        if rec.stage == "correction" and rec.part > 1:
            return not self.ledger.stage_done(rec.source_id, "correction", below_part=rec.part)
        return False

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
        if status.shift_opened_at < today_close <= now:
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
