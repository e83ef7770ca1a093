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

Lanes of one register group share its queue: each claims the head in one guarded write
(:meth:`Ledger.claim`), so no two lanes ever prepare the same receipt. A lane whose register fails
(device state, link, a transient error) leaves the pool — it stops claiming and is re-probed with
backoff (1, 2, 4 … s up to ``retry.device_pause_s``) — and comes back by itself; its certainly-unsent
receipt is made due at once for the other lanes. Idle lanes sleep on their group's doorbell
(:mod:`worker.fiscal.pool`).
"""
from __future__ import annotations

import datetime as dt
import logging
import dataclasses
import threading
import time
from collections import Counter
from typing import Any, Callable

from sqlalchemy.exc import DBAPIError

from kkt_drivers.base import Driver
from kkt_drivers.errors import DeviceStateError, KktError
from kkt_drivers.receipt import DeviceStatus, DocumentKind, FiscalDocument
from worker.defaults import (
    ADOPTION_MAX_SCAN_DOCUMENTS,
    DEFAULT_REGISTER_GROUP,
    LANE_HEALTH_SECONDS,
    LANE_HEARTBEAT_SECONDS,
    LANE_IDLE_MAX_SECONDS,
    LANE_PROBE_BASE_SECONDS,
    LEASE_TTL_SECONDS,
    SHIFT_MARGIN_SECONDS,
    SHIFT_MAX_HOURS,
    STATUS_REUSE_SECONDS,
)
from worker.errors import LeaseLost
from worker.fiscal.adoption import Scanner, ScanRefused
from worker.fiscal.crashpoints import crashpoint, driver_step
from worker.fiscal.lease import LeaseKeeper
from worker.fiscal.pool import Pool
from worker.fiscal.processor import Processor
from worker.fiscal.recovery import Reconciler, RegisterUnreachable
from worker.fiscal.retry import decide, describe
from worker.ledger.lane_writes import Claim
from worker.ledger.leases import holder_id
from worker.ledger.states import State
from worker.ledger.store import Ledger, utcnow
from worker.settings import RetrySettings, ShiftSettings

log = logging.getLogger(__name__)

MIN_IDLE_WAIT_SECONDS = 0.05   # never spin on a retry that is due "now"
#: a receipt is claimed with the previous outcome only if the register's status stays reusable this much longer
CHAIN_MARGIN_SECONDS = 5.0
#: the status the step's sync read is the preparation's starting point only if the sync took less than this
SEEN_REUSE_SECONDS = 1.0
#: driver steps after which the lease is checked again before the receipt's close (every driver reports
#: "receipt_opened"; some also "close_sent", just before the close command)
LEASE_CHECK_STEPS = ("receipt_opened", "close_sent")


class RegisterMismatch(Exception):
    """The register is not the one the settings describe (another INN): it must not print our receipts."""


class Lane:
    """Drives one register from the ledger until *stop* is set."""

    def __init__(self, name: str, driver: Driver, ledger: Ledger, retry: RetrySettings, shifts: ShiftSettings,
                 stop: threading.Event, *, group: str = DEFAULT_REGISTER_GROUP, inn: str | None = None,
                 pool: Pool | None = None, holder: str | None = None, lease_ttl_s: float = LEASE_TTL_SECONDS,
                 max_scan_documents: int = ADOPTION_MAX_SCAN_DOCUMENTS,
                 local_now: Callable[[], dt.datetime] = dt.datetime.now) -> None:
        self.name = name
        self.driver = driver
        self.ledger = ledger
        self.retry = retry
        self.shifts = shifts
        self.stop = stop
        self.local_now = local_now
        self.group = group
        self.inn = inn
        self.pool = pool if pool is not None else Pool()
        self.doorbell = self.pool.join(name, group)
        self.driver.step_hook = self._driver_step
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
        #: called with (outcome, seconds) after each receipt attempt (the worker's metrics); None: nobody
        self.observer: Callable[[str, float], None] | None = None
        self.healthy = True        # False: out of the pool until a probe succeeds
        self._backoff = 0.0        # the current re-probe delay while unhealthy
        self._needs_recovery = True            # at start, and after any uncertain outcome
        self._status: DeviceStatus | None = None   # the register's position, reused while receipts succeed
        self._status_at = 0.0
        self._inn_checked = False
        self._beat: tuple[str, str | None] | None = None
        self._beat_at = 0.0
        self._seen: dict[str, Any] = {"fn_serial": None, "last_fd": None, "shift_open": None}
        #: (FN, FD) the ledger's watermark was moved to by this lane's last outcome, in the step right after
        #: it (None otherwise): then the register shows nothing the ledger has not accounted for
        self._accounted: tuple[str, int] | None = None
        if hasattr(driver, "cancel_event"):
            # a driver that waits on a line (Shtrih) gives up within a second of the stop signal
            driver.cancel_event = stop  # type: ignore[attr-defined]
        self.must_sync = True      # examine the register before the first send, and after every pause
        #: the next receipt, claimed in the last outcome's write: sent by the next step before anything else
        self._pending: Claim | None = None
        self.blocked: str | None = None   # why the lane may not send until an admin acts

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        """Work until stopped; a receipt in progress is always finished first."""
        log.info("lane started", extra={"register": self.name})
        try:
            # a receipt claimed with the last outcome is sent even after a stop: its intent is committed
            while (not self.stop.is_set() or self._pending is not None) and not self.stopped:
                self.beat = time.monotonic()
                wait = self.step()
                if wait and self.idle:
                    self.doorbell.wait(wait)   # rung by the poller, a sibling or shutdown
                elif wait and not self.stopped:
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
        # good for this step only: any other path (an error, a pause, a takeover) reads the watermark again
        accounted, self._accounted = self._accounted, None
        pending, self._pending = self._pending, None
        if pending is not None:
            # if this step fails before sending it, the next step reconciles it first (it is "sending")
            self._needs_recovery = True
        try:
            if not self.lease.ensure():
                # another live holder talks to this register: never both; look again later
                return self._stand_by()
            self.driver.connect()
            if pending is not None and self._status is not None:
                self._needs_recovery = False
                return self._send(pending, self._status)
            # receipts left "sending" are resolved by their own protocol first (by key where the API keeps
            # it, else by the documents after their fd_before); then the rest of the register is examined
            if self._needs_recovery:
                if not self.recover():
                    return self._leave_pool(None)
                self._needs_recovery = False
            seen = None
            if self.must_sync:
                # at start, after a pause or a takeover: the register may have moved on without us
                seen, seen_at = self.driver.status(), time.monotonic()
                self.scanner.sync(seen)
                if time.monotonic() - seen_at > SEEN_REUSE_SECONDS:
                    seen = None   # a long scan (thousands of documents): read the register afresh
                self.must_sync = False
                self.blocked = None
                # the sync moved the watermark to this very FD: a shift this step opens right after it
                # is accounted for without reading it back (see _account_own_shift)
                accounted = (seen.fn_serial, seen.last_fd_number)
            self._accounted = accounted
            try:
                status = self._ready_status(seen)   # the status the sync just read is not read again
            finally:
                accounted, self._accounted = self._accounted, None
            # the watermark read is skipped only where this lane just moved it to this very FD (its outcome,
            # its sync, its own shift-open document)
            if (status.fn_serial, status.last_fd_number) != accounted and self.scanner.needed(status):
                # documents the ledger has not accounted for (a shift report, another program, a
                # takeover): examine them first; a receipt found there is adopted, not claimed
                self.scanner.sync(status)
            crashpoint("before_intent")
            claim = self.ledger.claim(self.name, self.group, fn_serial=status.fn_serial,
                                      fd_before=status.last_fd_number, fence=self.lease.current())
            if claim is None:
                self._maybe_daily_close()
                self._heartbeat("running")
                self.idle = True
                return self._idle_wait()
            return self._send(claim, status)
        except RegisterMismatch as exc:
            log.error("%s", exc, extra={"register": self.name})
            return self._leave_pool(exc, at_cap=True)
        except KktError as exc:   # the register (not a receipt) failed: device state, link down, settings
            decision = decide(exc, 0, self.retry, now=utcnow(), in_receipt=False)
            if not isinstance(exc, DeviceStateError):
                log.warning("register unavailable: %s", describe(exc), extra={"register": self.name})
                self.driver.disconnect()
            if decision.stop_lane:
                return self._execute(False, True, exc)
            return self._leave_pool(exc)
        except LeaseLost as exc:
            log.error("lease lost, this lane stops talking to the register at once: %s", exc,
                      extra={"register": self.name})
            self.lease.lost()
            return self._stand_by()
        except ScanRefused as exc:
            log.error("not sending: %s", exc, extra={"register": self.name})
            self.blocked = str(exc)
            self._out_of_pool()
            return self._pause(exc, state="blocked")
        except DBAPIError as exc:  # the ledger is away: a "sending" row stays for recovery
            log.warning("ledger unavailable (%s); lane waits", type(exc.orig).__name__, extra={"register": self.name})
            self._needs_recovery = True
            return self._pause(exc)
        except Exception as exc:   # a bug: never spin, never lose the "sending" row
            log.exception("lane step failed", extra={"register": self.name})
            self._needs_recovery = True
            self._status = None
            return self._pause(exc)

    def _send(self, claim: Claim, status: DeviceStatus) -> float:
        """Send one claimed receipt and act on its outcome; the wait before the next step."""
        self.doorbell.ring()   # there was work: let one more idle lane look (a backlog pulls in the pool)
        started = time.monotonic()
        outcome = self.processor.send(claim.record, claim.attempt_id, status.last_fd_number,
                                      then_claim=self.group if self._may_chain(status) else None)
        self.processed += outcome.state is State.DONE
        if self.observer is not None and outcome.state is not None:   # metrics: outcome and latency
            label = "done" if outcome.decision is None else outcome.decision.reaction.value
            self.observer(label, time.monotonic() - started)
        if outcome.state is State.DONE and outcome.document is not None:
            # the register's position after our document; an fd_before that is too low is safe
            self._status = dataclasses.replace(status, last_fd_number=outcome.document.fd_number)
            self._seen["last_fd"] = outcome.document.fd_number   # status shows the register's real position
            if outcome.watermark_moved:
                self._accounted = (outcome.document.fn_serial, outcome.document.fd_number)
            self._pending = outcome.next_claim
            return 0.0
        self._status = None   # anything else: read the register again before the next receipt
        if outcome.decision is None:
            return 0.0
        if outcome.decision.reconcile:
            self._needs_recovery = True
            return 0.0  # the next step reconciles before anything else
        if outcome.decision.state is State.QUEUED and self.pool.others_healthy(self.name):
            # certainly not fiscalized: another register of the group takes it now (fairness)
            self.ledger.expedite(claim.record.id)
            self.pool.ring(self.group)
        if outcome.decision.stop_lane:
            return self._execute(False, True, outcome.error)
        if outcome.decision.state is State.QUEUED or outcome.decision.pause_lane:
            return self._leave_pool(outcome.error)
        return 0.0

    def _may_chain(self, status: DeviceStatus) -> bool:
        """Whether the next receipt may be claimed in this receipt's outcome write: not when stopping,
        and only while the register's status may be reused for it (the step after would otherwise read
        the register, maybe close or open a shift, before sending — still safe, but not the fast path)."""
        return (not self.stop.is_set() and self._status is status
                and time.monotonic() - self._status_at < STATUS_REUSE_SECONDS - CHAIN_MARGIN_SECONDS
                and not self._shift_near_end(status))

    def _driver_step(self, step: str) -> None:
        """The driver's step hook: crash points, then — once the receipt is open, before its close — the
        lease once more. A worker frozen (SIGSTOP, a VM pause) after :meth:`LeaseKeeper.check_send` but
        before its register saw the receipt would otherwise close it after a takeover; now it renews
        first (only if half a lease has passed) and gives up on LeaseLost — the receipt stays "sending"
        for the new holder, whose recovery cancels the open receipt (docs/cluster.md)."""
        driver_step(step)
        if step in LEASE_CHECK_STEPS:
            try:
                self.lease.check_send()
            except DBAPIError as exc:   # cannot renew: the lease cannot be shown to be ours, so do not close
                raise LeaseLost(f"register {self.name}: the lease could not be renewed before the close "
                                f"({type(exc.orig).__name__})") from exc

    # -- health gate ---------------------------------------------------------------------------
    def _ready_status(self, seen: DeviceStatus | None = None) -> DeviceStatus:
        """The register's status: reused after a receipt succeeded, read (and the register prepared)
        when older than ``STATUS_REUSE_SECONDS``, near the shift's 24 h, or after any failure. *seen*:
        a status read in this very step (the sync's), which the preparation starts from."""
        st, now = self._status, time.monotonic()
        if st is not None and now - self._status_at < STATUS_REUSE_SECONDS and not self._shift_near_end(st):
            return st
        st = self.prepare_register(seen)
        self._check_inn(st)
        self._status, self._status_at = st, now
        if not self.healthy:
            log.info("register is back; lane rejoins the pool", extra={"register": self.name})
        self.healthy, self._backoff = True, 0.0
        self.pool.set_health(self.name, True)
        return st

    def _shift_near_end(self, st: DeviceStatus) -> bool:
        if st.shift_opened_at is None:
            return True
        age = (self.local_now() - st.shift_opened_at).total_seconds()
        return age > SHIFT_MAX_HOURS * 3600 - SHIFT_MARGIN_SECONDS

    def _check_inn(self, st: DeviceStatus) -> None:
        """A register registered to another INN (legal entity) must never print this group's receipts."""
        if self._inn_checked or self.inn is None:
            return
        seen = (st.extra or {}).get("inn")
        if seen is None:
            log.warning("the driver does not report the register's INN; %s is not verified", self.inn,
                        extra={"register": self.name})
        elif str(seen).strip() != self.inn:
            raise RegisterMismatch(f"register {self.name} is registered to INN {seen}, settings say {self.inn} "
                                   f"(group {self.group}); it prints nothing until this is fixed")
        self._inn_checked = True

    def _leave_pool(self, exc: BaseException | None, *, at_cap: bool = False) -> float:
        """Stop claiming; re-probe after 1, 2, 4 … s (capped at ``retry.device_pause_s``, and short
        enough to renew the lease)."""
        cap = min(self.retry.device_pause_s, self._lease_wake())
        self._backoff = cap if at_cap else min(cap, max(LANE_PROBE_BASE_SECONDS, self._backoff * 2))
        self._out_of_pool()
        reason = describe(exc) if exc else "reconciling receipts left sending"
        self._heartbeat("paused", reason=f"{reason}; next probe in {self._backoff:.0f} s")
        return self._backoff

    def _out_of_pool(self) -> None:
        """Claim nothing until the register is ready again; examine it before the next send."""
        self.healthy = False
        self._status = None
        self.must_sync = True   # after any pause the register may have moved on without us
        self.pool.set_health(self.name, False)

    def _stand_by(self) -> float:
        """Another holder has the register's lease (or took it over): talk to it no more, write nothing
        for it, and look again in time; the next holder's lane reconciles and examines it first."""
        self.driver.disconnect()
        self._out_of_pool()
        self._needs_recovery = True
        self._beat = None
        self.pool.forget(self.name)   # the holder's lane writes this register's state now
        return min(self.retry.device_pause_s, self._lease_wake())

    def _lease_wake(self) -> float:
        """The longest a lane may sleep and still renew its lease in time."""
        return self.lease.ttl_s / 3

    def _idle_wait(self) -> float:
        """How long an idle lane sleeps on its doorbell: until its group's earliest retry, at most a while
        (and never so long that its lease would lapse)."""
        wait = min(LANE_IDLE_MAX_SECONDS, self._lease_wake())
        nxt = self.ledger.next_due_at(self.group)
        if nxt is not None:
            wait = min(wait, max(MIN_IDLE_WAIT_SECONDS, (nxt - utcnow()).total_seconds()))
        return wait

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

    def prepare_register(self, seen: DeviceStatus | None = None) -> DeviceStatus:
        """Make the register ready for a receipt: no open receipt, paper, an open shift under 24 h.

        *seen*: the register's status read moments ago in the same step (not read again); the status is
        read again only after this method changed something on the register (each read is a command,
        ~0.1 s on a serial Shtrih-M)."""
        status = seen if seen is not None else self.driver.status()
        changed = False
        if status.receipt_open:
            # no receipt of ours is "sending" (recovery ran), so this one is not fiscal: cancel it
            log.warning("cancelling a receipt left open on the register", extra={"register": self.name})
            self.driver.cancel_receipt()
            changed = True
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
            self._account_own_shift(doc, status)
        elif changed:
            status = self.driver.status()
        self._heartbeat("running", status=status, force=True)
        return status

    def _account_own_shift(self, doc: FiscalDocument, status: DeviceStatus) -> None:
        """Record the shift-open document this lane just made as examined, without reading it back.

        Only when the ledger's watermark is known to be the FD right before it (``_accounted``, set by
        the sync or the outcome just before) and the register shows nothing after it: then it is the only
        document past the watermark, and the register gave it to us for our own command. Otherwise
        ``_accounted`` is dropped and the step examines the register's documents as always. (A 200-register
        farm starting up read back 200 documents and made 400 more ledger reads here.)"""
        known, self._accounted = self._accounted, None
        if (known is None or doc.kind is not DocumentKind.OPEN_SHIFT or doc.fn_serial != known[0]
                or doc.fd_number != known[1] + 1 or status.fn_serial != known[0]
                or status.last_fd_number != doc.fd_number):
            return
        self.ledger.record_examined(self.name, doc.fn_serial, [doc], doc.fd_number, fence=self.lease.current())
        self._accounted = (doc.fn_serial, doc.fd_number)

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
            self._status = None   # the shift is closed and a Z report was printed: read the register again

    def _pause(self, exc: BaseException | None, state: str = "paused") -> float:
        reason = describe(exc) if exc else None
        self._heartbeat(state, reason=reason)
        return self._paused_wait()

    def _paused_wait(self) -> float:
        # after any pause the register may have moved on without us: examine it before sending again
        self.must_sync = True
        # a paused lane still wakes in time to renew its lease
        return min(self.retry.device_pause_s, self._lease_wake())

    def _scan_progress(self, pos: int, last: int, counts: Counter) -> None:
        detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        log.info("examined FD %d of %d (%s)", pos, last, detail, extra={"register": self.name})
        self._heartbeat("scanning", reason=f"examined FD {pos} of {last}: {detail}")

    def _heartbeat(self, state: str, *, reason: str | None = None, status: DeviceStatus | None = None,
                   force: bool = False) -> None:
        """Record the lane's state in ``lanes``: on change, else every ``LANE_HEARTBEAT_SECONDS`` — in the
        worker through the pool, all lanes in one transaction (idle lanes must not write twice a second)."""
        now = time.monotonic()
        changed = (state, reason) != self._beat
        if status is not None:
            self._seen = {"fn_serial": status.fn_serial, "last_fd": status.last_fd_number,
                          "shift_open": status.shift_open}
        if self.pool.batched and state != "stopped":
            self._beat = (state, reason)
            self.pool.report(self.name, changed, state=state, reason=reason, **self._seen)
        elif force or changed or now - self._beat_at >= LANE_HEARTBEAT_SECONDS:
            self._beat, self._beat_at = (state, reason), now
            try:
                self.ledger.lane_heartbeat(self.name, state=state, reason=reason, **self._seen)
            except Exception:  # status is informational; the ledger being down is handled elsewhere
                log.debug("lane heartbeat not recorded", exc_info=True)
        if status is not None and time.monotonic() - self._health_written >= LANE_HEALTH_SECONDS:
            self._record_health(status)

    def _record_health(self, status: DeviceStatus) -> None:
        """FN validity, the OFD backlog and the register's clock, for ``status --check`` and alerts."""
        skew = (status.register_time - self.local_now()).total_seconds() if status.register_time else None
        oldest = status.ofd_oldest_unsent_at
        if oldest is not None:
            # the register writes its own wall clock; the ledger keeps UTC
            oldest -= (status.register_time or self.local_now()) - utcnow()
        try:
            self.ledger.lane_health(self.name, fn_expires_on=status.fn_valid_until,
                                    ofd_unsent=status.unsent_documents, ofd_oldest_at=oldest, clock_skew_s=skew)
            self._health_written = time.monotonic()
        except Exception:
            log.debug("lane health not recorded", exc_info=True)
