"""One lane per register: recovery first, then one due receipt at a time, strictly serial.

A lane talks to its register only while it holds the register's lease (:mod:`worker.fiscal.lease`);
every ledger write it makes is fenced by the lease's epoch, and a lane whose lease was taken over
stops at once and stands by. Before sending anything — at start, after any pause or takeover, and
whenever the register's last FD is not the ledger's watermark — it examines the documents after the
watermark (:mod:`worker.fiscal.adoption`): ours are adopted, never sent again.

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
from collections import Counter
from typing import Callable

from sqlalchemy.exc import DBAPIError

from kkt_drivers.base import Driver
from kkt_drivers.errors import DeviceStateError, KktError
from kkt_drivers.receipt import DeviceStatus
from worker.defaults import ADOPTION_MAX_SCAN_DOCUMENTS, LANE_HEALTH_SECONDS, LANE_IDLE_SECONDS, LEASE_TTL_SECONDS
from worker.errors import LeaseLost
from worker.fiscal.adoption import Scanner, ScanRefused
from worker.fiscal.crashpoints import driver_step
from worker.fiscal.lease import LeaseKeeper
from worker.fiscal.processor import Processor
from worker.ledger.leases import holder_id
from worker.fiscal.recovery import Reconciler, RegisterUnreachable
from worker.fiscal.retry import decide, describe
from worker.ledger.states import State
from worker.ledger.store import Ledger, ReceiptRecord, utcnow
from worker.settings import RetrySettings, ShiftSettings

log = logging.getLogger(__name__)


class Lane:
    """Drives one register from the ledger until *stop* is set."""

    def __init__(self, name: str, driver: Driver, ledger: Ledger, retry: RetrySettings, shifts: ShiftSettings,
                 stop: threading.Event, *, holder: str | None = None, lease_ttl_s: float = LEASE_TTL_SECONDS,
                 max_scan_documents: int = ADOPTION_MAX_SCAN_DOCUMENTS,
                 local_now: Callable[[], dt.datetime] = dt.datetime.now) -> None:
        self.name = name
        self.driver = driver
        self.ledger = ledger
        self.retry = retry
        self.shifts = shifts
        self.stop = stop
        self.local_now = local_now
        self.driver.step_hook = driver_step
        self.lease = LeaseKeeper(ledger, name, holder or holder_id("worker"), lease_ttl_s)
        self.processor = Processor(name, driver, ledger, retry, fence=self.lease.current,
                                   check_send=self.lease.check_send, stop=stop)
        self.reconciler = Reconciler(name, driver, ledger, retry, fence=self.lease.current)
        self.scanner = Scanner(name, driver, ledger, self.lease.current, max_documents=max_scan_documents,
                               keep_lease=self.lease.ensure, progress=self._scan_progress)
        self.idle = False          # True when the last step found nothing due
        self.stopped = False       # True once a decision stopped the lane (the register's settings are wrong)
        self.processed = 0
        #: monotonic time of the loop's last turn: the systemd watchdog is petted only while it moves
        self.beat = time.monotonic()
        self._health_written = float("-inf")
        if hasattr(driver, "cancel_event"):
            # a driver that waits on a line (Shtrih) gives up within a second of the stop signal
            driver.cancel_event = stop  # type: ignore[attr-defined]
        self.must_sync = True      # examine the register before the first send, and after every pause
        self.blocked: str | None = None   # why the lane may not send until an admin acts

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
            if not self.stopped and self.lease.fence is not None:
                # a lane stopped by a decision keeps its reason in the heartbeat
                self._heartbeat("stopped", reason=f"blocked: {self.blocked}" if self.blocked else None)
            self.lease.release()
            log.info("lane stopped", extra={"register": self.name})

    def step(self) -> float:
        """Do one unit of work; return how long to wait before the next."""
        self.idle = False
        try:
            if not self.lease.ensure():
                # another live holder talks to this register: never both; look again later
                self.driver.disconnect()
                self.must_sync = True
                return min(self.retry.device_pause_s, self.lease.ttl_s / 3)
            self.driver.connect()
            # receipts left "sending" are resolved by their own protocol first (by key where the API keeps
            # it, else by the documents after their fd_before); then the rest of the register is examined
            if not self.recover():
                return self._paused_wait()
            if self.must_sync:
                self.scanner.sync(self.driver.status())
                self.must_sync = False
                self.blocked = None
            rec = self._next_due()
            if rec is None:
                self._maybe_daily_close()
                self._heartbeat("running")
                self.idle = True
                return LANE_IDLE_SECONDS
            status = self.prepare_register()
            if self.scanner.needed(status):
                # documents the ledger has not accounted for (a shift report, another program, a
                # takeover): examine them first; the receipt may have been adopted meanwhile
                self.scanner.sync(status)
                rec = self.ledger.get(rec.id)
                if rec.state is not State.QUEUED:
                    return 0.0
            outcome = self.processor.process(rec, status)
            self.processed += outcome.state is State.DONE
            if outcome.decision is None or outcome.decision.reconcile:
                return 0.0  # done, or the next step reconciles before anything else
            return self._execute(outcome.decision.pause_lane, outcome.decision.stop_lane, outcome.error)
        except KktError as exc:   # the register (not a receipt) failed: device state, link down, settings
            decision = decide(exc, 0, self.retry, now=utcnow(), in_receipt=False)
            if not isinstance(exc, DeviceStateError):
                log.warning("register unavailable: %s", describe(exc), extra={"register": self.name})
                self.driver.disconnect()
            return self._execute(decision.pause_lane, decision.stop_lane, exc)
        except LeaseLost as exc:
            log.error("lease lost, this lane stops talking to the register at once: %s", exc,
                      extra={"register": self.name})
            self.lease.lost()
            self.driver.disconnect()
            self.must_sync = True
            return min(self.retry.device_pause_s, self.lease.ttl_s / 3)
        except ScanRefused as exc:
            log.error("not sending: %s", exc, extra={"register": self.name})
            self.must_sync = True
            self.blocked = str(exc)
            return self._pause(exc, state="blocked")
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
                self.must_sync = True
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
        if status.shift_opened_at < today_close <= now:
            log.info("daily close at %s: Z report for shift %d", close_at, status.shift_number,
                     extra={"register": self.name})
            self.driver.close_shift(self.shifts.cashier)

    def _pause(self, exc: BaseException | None, state: str = "paused") -> float:
        reason = describe(exc) if exc else None
        self._heartbeat(state, reason=reason)
        return self._paused_wait()

    def _paused_wait(self) -> float:
        # after any pause the register may have moved on without us: examine it before sending again
        self.must_sync = True
        # a paused lane still wakes in time to renew its lease
        return min(self.retry.device_pause_s, self.lease.ttl_s / 3)

    def _scan_progress(self, pos: int, last: int, counts: Counter) -> None:
        detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        log.info("examined FD %d of %d (%s)", pos, last, detail, extra={"register": self.name})
        self._heartbeat("scanning", reason=f"examined FD {pos} of {last}: {detail}")

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
