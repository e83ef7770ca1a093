"""Marked goods on ATOL (FFD 1.2, ФН-М): the JSON tasks of the FN check and the receipt's ``imcParams``.

Vendor sources (``/work/shared/reference/marking.md`` §4; ATOLJS = ATOL Driver v10's own bundled
task scripts ``myscripts_marks.js`` / ``myscripts_items.js`` / ``myscripts_utils.js`` /
``json_checkImcWorkState.js``; KSL = KKTServiceLib, typed against ATOL's doc 10.10.7.0):

* ``beginMarkingCodeValidation`` ``params{imcType, imc (base64 of the raw code), itemEstimatedStatus,
  imcModeProcessing, itemQuantity?, itemUnits?, itemFractionalAmount?}`` → ``offlineValidation{fmCheck,
  fmCheckResult, fmCheckErrorReason}`` (ATOLJS ``executeBeginMarkingCodeValidation``). The driver
  decodes ``imc`` and falls back to the raw string when it is not base64.
* ``getMarkingCodeValidationStatus`` → ``{ready, sentImcRequest, driverError{code, error, description},
  onlineValidation{itemInfoCheckResult{imcCheckFlag, imcCheckResult, imcStatusInfo,
  imcEstimatedStatusCorrect, ecrStandAloneFlag}, markOperatorResponse, markOperatorItemStatus,
  markOperatorResponseResult, imcType, …}}``; ``onlineValidation`` only when ``driverError.code`` is 0
  (ATOLJS ``executeGetMarkingCodeValidationStatus``). Polled until ``ready``: ATOL's own
  ``validateMarks`` polls every 300 ms for at most 60 s, then reports error 421 and **cancels**.
* ``acceptMarkingCode`` → ``itemInfoCheckResult`` (the 2106 saved in the FN's table, KSL);
  ``declineMarkingCode``; ``cancelMarkingCodeValidation`` (after an error or a timeout, ATOLJS);
  ``clearMarkingCodeValidationResult`` (ATOLJS's receipt script calls cancel + clear when a code fails).
* Decision (ATOLJS ``executeValidateMarks``): accept only when 2106 bits 0–3 are all set, else decline —
  the same rule :mod:`kkt_drivers.marking_flow` applies for every driver.
* The receipt line: ``imcParams{imc, imcType, itemEstimatedStatus, imcModeProcessing,
  itemFractionalAmount?, itemInfoCheckResult{…}}`` (ATOLJS ``executePosition`` turns
  ``itemInfoCheckResult`` back into 2106), ``industryInfo[{fois, date "YYYY.MM.DD", number,
  industryAttribute}]`` → 1260 (the driver reverses the date to ДД.ММ.ГГГГ, ATOLJS validators).
* ``checkImcWorkState`` → ``fm{status (blocked / noImcForCheck / …), checkingCount, soldImcCount,
  noticeIsBegin, noticeFreeMemory (less50 … outOfMemory), noticeUnsentCount}`` (ATOLJS).

Guesses are marked ``GUESS:`` below (and in docs/atol.md).
"""
from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from kkt_drivers import marking_flow
from kkt_drivers.atol import codes as c
from kkt_drivers.atol import tasks as t
from kkt_drivers.errors import DeviceStateError, KktError, RejectedError, TransientError
from kkt_drivers.receipt import DeviceStatus, IndustryRequisite, Item, PlannedStatus, Receipt

#: ATOL's own wait for ОИСМ in ``validateMarks`` (ATOLJS: ``timeout = 60000`` ms)
DEFAULT_MARKING_TIMEOUT_S = 60.0
#: ATOL's own polling interval in ``validateMarks`` (ATOLJS: ``sleep(300)``)
DEFAULT_MARKING_POLL_S = 0.3

#: requisite 2003 → ``itemEstimatedStatus`` (ATOLJS ``MARKING_ESTIMATED_STATUS``)
ESTIMATED_STATUS = {
    PlannedStatus.PIECE_SOLD: "itemPieceSold", PlannedStatus.MEASURED_SOLD: "itemDryForSale",
    PlannedStatus.PIECE_RETURNED: "itemPieceReturn", PlannedStatus.MEASURED_RETURNED: "itemDryReturn",
    PlannedStatus.UNCHANGED: "itemStatusUnchanged",
}
#: statuses for which the driver passes quantity and unit to the check (ATOLJS; KSL refuses
#: itemQuantity/itemUnits with any other status)
MEASURED_STATUSES = (PlannedStatus.MEASURED_SOLD, PlannedStatus.MEASURED_RETURNED)
#: ``imcType``: "auto" lets the driver detect 2100 (ATOLJS ``MARKING_CODE_TYPES_1_2``)
IMC_TYPE_AUTO = "auto"
#: the five booleans of ``itemInfoCheckResult``, bit 0 … bit 4 of 2106 (ATOLJS ``getItemInfoCheckResult``)
CHECK_RESULT_BITS = ("imcCheckFlag", "imcCheckResult", "imcStatusInfo", "imcEstimatedStatusCorrect",
                     "ecrStandAloneFlag")

# -- libfptr10 marking error codes (marking.md §4.1, libfptr10.py ✅) -----------------------------
CHECK_ALREADY_RUNNING = 401
NO_SERVER_CONNECTION = 402
CHECK_CANCELLED = 403
MARKING_NOT_ALLOWED = 406
MARKING_BLOCKED = 407
TABLE_OVERFLOW = 408
WRONG_STATE = 410
OFD_EXCHANGE = 411
FFD_NOT_ALLOWED = 413
UNSENT_NOTIFICATIONS = 417
NOT_CHECKED = 420
CHECK_TIMEOUT = 421
#: the code was not answered in time or the server could not be reached: "no answer" for the policy
NO_ANSWER_CODES = frozenset({NO_SERVER_CONNECTION, OFD_EXCHANGE, CHECK_TIMEOUT})
#: the register cannot sell marked goods at all (FN without the marking flag, FFD < 1.2 …)
UNSUPPORTED_CODES = frozenset({MARKING_NOT_ALLOWED, FFD_NOT_ALLOWED, 414})
BLOCKED_CODES = frozenset({MARKING_BLOCKED, UNSENT_NOTIFICATIONS})
#: ``checkImcWorkState.fm.status`` / ``noticeFreeMemory`` values that mean "marking is blocked"
BLOCKED_STATUS, OUT_OF_MEMORY = "blocked", "outOfMemory"


# -- requests (pure) ---------------------------------------------------------------------------------
def begin_task(item: Item, status: PlannedStatus) -> dict[str, Any]:
    """``beginMarkingCodeValidation`` for the code of *item* with planned status *status* (2003)."""
    params: dict[str, Any] = {
        "imcType": IMC_TYPE_AUTO,
        "imc": base64.b64encode(item.marking_code or b"").decode("ascii"),
        "itemEstimatedStatus": ESTIMATED_STATUS[status],
        "imcModeProcessing": item.marking_mode,   # 2102, always 0 (PRIL2 T4)
    }
    if status in MEASURED_STATUSES:
        # the FN check of a measured or partial sale needs quantity and unit (marking.md §2.2: a missing
        # 2108 gave «Ошибка программирования реквизита 2108» on ATOL). GUESS: quantity written as a
        # decimal number (KSL types it as an integer; ATOLJS passes it to LIBFPTR_PARAM_QUANTITY, a double)
        params["itemQuantity"] = t.Qty(item.quantity)
        params["itemUnits"] = t.MEASUREMENT_UNITS[item.measure_unit]
    if item.fraction is not None:
        params["itemFractionalAmount"] = fraction_text(item.fraction)
    return {"type": "beginMarkingCodeValidation", "params": params}


def fraction_text(fraction: tuple[int, int]) -> str:
    """1291 as ATOL's ``itemFractionalAmount`` "n/d" (KSL regex ``^[1-9][0-9]*/[1-9][0-9]*$``, n < d)."""
    n, d = fraction
    return f"{n}/{d}"


def check_result_object(result: int) -> dict[str, bool]:
    """2106 as ATOL's ``itemInfoCheckResult`` object."""
    return {name: bool(result >> bit & 1) for bit, name in enumerate(CHECK_RESULT_BITS)}


def check_result_value(obj: Any) -> int:
    """ATOL's ``itemInfoCheckResult`` object as 2106; AnswerError when it is not one."""
    if not isinstance(obj, dict) or not all(isinstance(obj.get(k), bool) for k in CHECK_RESULT_BITS[:4]):
        raise t.AnswerError(f"itemInfoCheckResult is malformed: {obj!r}")
    return sum(1 << bit for bit, name in enumerate(CHECK_RESULT_BITS) if obj.get(name) is True)


def industry_info(req: IndustryRequisite) -> dict[str, str]:
    """1260 as ATOL's ``industryInfo`` entry: the driver wants the date as YYYY.MM.DD (ATOLJS reverses it)."""
    day, month, year = req.doc_date.split(".")
    return {"fois": req.foiv, "date": f"{year}.{month}.{day}", "number": req.doc_number,
            "industryAttribute": req.value}


def imc_params(item: Item, status: PlannedStatus, result: int | None) -> dict[str, Any]:
    """The receipt line's ``imcParams`` for the code of *item*, with the FN's 2106 when known."""
    params: dict[str, Any] = {
        "imc": base64.b64encode(item.marking_code or b"").decode("ascii"),
        "imcType": IMC_TYPE_AUTO,
        "itemEstimatedStatus": ESTIMATED_STATUS[status],
        "imcModeProcessing": item.marking_mode,
    }
    if item.fraction is not None:
        params["itemFractionalAmount"] = fraction_text(item.fraction)
    if result is not None:
        params["itemInfoCheckResult"] = check_result_object(result)
    return params


def add_to_task(task: dict[str, Any], receipt: Receipt, results: dict[int, int]) -> dict[str, Any]:
    """*task* (from :func:`kkt_drivers.atol.tasks.receipt_task`) with ``imcParams`` on every marked
    position and ``industryInfo`` where a line has 1260; positions follow ``receipt.items`` in order."""
    positions = [p for p in task["items"] if p.get("type") == "position"]
    if len(positions) != len(receipt.items):
        raise ValueError("receipt task positions do not match the receipt's items")
    for n, (item, position) in enumerate(zip(receipt.items, positions)):
        if item.marking_code is not None:
            position["imcParams"] = imc_params(item, item.status_for(receipt.operation), results.get(n))
        if item.industry:
            position["industryInfo"] = [industry_info(r) for r in item.industry]
    return task


# -- answers (pure) ------------------------------------------------------------------------------------
def offline_2004(result: Any) -> int:
    """``offlineValidation{fmCheck, fmCheckResult}`` of a begin result as 2004 (bit0 checked, bit1 positive)."""
    off = (result or {}).get("offlineValidation") if isinstance(result, dict) else None
    if not isinstance(off, dict):
        raise t.AnswerError("beginMarkingCodeValidation answered without offlineValidation")
    return (1 if off.get("fmCheck") is True else 0) | (2 if off.get("fmCheckResult") is True else 0)


@dataclass(frozen=True)
class Status:
    """One ``getMarkingCodeValidationStatus`` answer."""

    ready: bool
    error_code: int = 0
    error_text: str = ""
    #: 2106 from ``onlineValidation.itemInfoCheckResult``; None when there is no online result
    result: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_status(result: Any) -> Status:
    """Read a ``getMarkingCodeValidationStatus`` result; AnswerError when it lacks ``ready``."""
    if not isinstance(result, dict) or not isinstance(result.get("ready"), bool):
        raise t.AnswerError("getMarkingCodeValidationStatus answered without 'ready'")
    err = result.get("driverError") or {}
    try:
        code = int(err.get("code") or 0)
    except (TypeError, ValueError) as exc:
        raise t.AnswerError(f"driverError.code is not a number: {err!r}") from exc
    online = result.get("onlineValidation")
    value = None
    extra: dict[str, Any] = {}
    if result["ready"] and code == 0:
        if not isinstance(online, dict):
            raise t.AnswerError("a ready check without driverError has no onlineValidation")
        value = check_result_value(online.get("itemInfoCheckResult"))
        extra = {k: online[k] for k in ("markOperatorItemStatus", "markOperatorResponseResult", "imcType")
                 if k in online}
    return Status(ready=result["ready"], error_code=code, error_text=str(err.get("description") or ""),
                  result=value, extra=extra)


def work_state_problem(result: Any) -> DeviceStateError | None:
    """``checkImcWorkState``: a DeviceStateError when marking is blocked (notifications fill the FN)."""
    fm = (result or {}).get("fm") if isinstance(result, dict) else None
    if not isinstance(fm, dict):
        return None  # GUESS: a firmware without the task must not stop sales: the check itself tells
    unsent = fm.get("noticeUnsentCount")
    if fm.get("status") == BLOCKED_STATUS or fm.get("noticeFreeMemory") == OUT_OF_MEMORY:
        return DeviceStateError(f"marking is blocked on the register: {unsent} notifications not sent to ОИСМ "
                                f"(FN notice memory {fm.get('noticeFreeMemory')}); the register must reach the OFD",
                                condition=marking_flow.COND_MARKING_BLOCKED, vendor_code="ATOL checkImcWorkState")
    return None


#: the marking part of ``status()`` (an optional task: firmware without it reports the rest)
WORK_STATE_TASK = "checkImcWorkState"


def with_work_state(status: DeviceStatus, result: Any) -> DeviceStatus:
    """*status* with ``marking_blocked`` / ``marking_unsent_notifications`` from ``checkImcWorkState``."""
    fm = result.get("fm") if isinstance(result, dict) else None
    if not isinstance(fm, dict):
        return status
    unsent = fm.get("noticeUnsentCount")
    return replace(status, marking_blocked=work_state_problem(result) is not None,
                   marking_unsent_notifications=unsent if isinstance(unsent, int) and not isinstance(unsent, bool)
                   else status.marking_unsent_notifications)


def classify(exc: KktError, where: str) -> KktError:
    """The error a marking task's ATOL code stands for (marking.md §4.1 errors), naming *where*."""
    code = c.code_of(exc)
    msg = f"{where}: {exc}"
    if code in BLOCKED_CODES:
        return DeviceStateError(msg, condition=marking_flow.COND_MARKING_BLOCKED, vendor_code=exc.vendor_code)
    if code in NO_ANSWER_CODES:
        return DeviceStateError(msg, condition=marking_flow.COND_MARKING_TIMEOUT, vendor_code=exc.vendor_code)
    if code in UNSUPPORTED_CODES:
        return RejectedError(f"{msg} — this register (FN / FFD) does not accept marked goods", field="items",
                             vendor_code=exc.vendor_code)
    if code in (CHECK_ALREADY_RUNNING, CHECK_CANCELLED, WRONG_STATE, TABLE_OVERFLOW):
        # the FN's check state is left over from an earlier attempt: cleaned up by the caller, try again
        return TransientError(msg, vendor_code=exc.vendor_code)
    return exc


# -- the flow (one receipt) -----------------------------------------------------------------------------
#: run(tasks, optional) → each task's result (None for a failed one of the last *optional*), or the
#: classified KktError of the first failed required task: the driver's ``_run`` (Web Requests: one
#: request with every task; libfptr10: processJson one by one)
Run = Callable[[list[dict[str, Any]], int], list[dict[str, Any] | None]]

STATUS_TASK = {"type": "getMarkingCodeValidationStatus"}
ACCEPT_TASK = {"type": "acceptMarkingCode"}
CANCEL_TASK = {"type": "cancelMarkingCodeValidation"}
CLEAR_TASK = {"type": "clearMarkingCodeValidationResult"}


class AtolMarking:
    """Runs :func:`kkt_drivers.marking_flow.check_receipt` with ATOL's tasks through *run*."""

    def __init__(self, run: Run, *, timeout_s: float = DEFAULT_MARKING_TIMEOUT_S,
                 poll_s: float = DEFAULT_MARKING_POLL_S, sell_unanswered: bool = False,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.run = run
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.sell_unanswered = sell_unanswered
        self.sleep = sleep
        self.clock = clock
        self._answered = False   # the last check got a ready answer (then decline; else cancel)
        self._accepted: dict[int, int] = {}
        self._line = -1
        #: the line whose code is accepted but whose acceptMarkingCode is not sent yet: it goes first in
        #: the next code's request (the FN gets it before the next begin, as ATOL's order wants), so a
        #: receipt of n codes costs n + 3 requests instead of 2n + 2 (the last accept goes alone)
        self._deferred: int | None = None

    def check_receipt(self, receipt: Receipt) -> dict[int, int]:
        """Check, then accept or decline, every code; line index → 2106 (the accepted value).

        First ``checkImcWorkState`` (blocked → DeviceStateError) and ``clearMarkingCodeValidationResult``
        in one request (GUESS: clearing codes accepted by an earlier, failed attempt is harmless and
        spares a 408 «таблица переполнена»; both optional, a firmware without them goes on).
        """
        state, _ = self.run([{"type": "checkImcWorkState"}, dict(CLEAR_TASK)], 2)
        problem = work_state_problem(state)
        if problem is not None:
            raise problem
        self._accepted = {}
        self._deferred = None
        try:
            results = marking_flow.check_receipt(receipt, self._check, self._decide,
                                                 sell_unanswered_codes=self.sell_unanswered)
            self._flush_accept()
        except KktError:
            # leave the FN's check state clean for the next attempt (ATOLJS: cancel + clear); two
            # requests, because Web Requests interrupts the tasks after a failed one and the cancel
            # fails when no check is running
            self._quiet([dict(CANCEL_TASK)])
            self._quiet([dict(CLEAR_TASK)])
            raise
        # acceptMarkingCode answers the 2106 the FN saved: that is what the line carries
        return {n: self._accepted.get(n, r) for n, r in results.items()}

    def _one(self, tasks: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
        try:
            return [r or {} for r in self.run(tasks, 0)]
        except KktError as exc:
            raise classify(exc, where) from exc

    def _quiet(self, tasks: list[dict[str, Any]]) -> None:
        """Housekeeping whose failure must not hide the real answer (every task optional)."""
        try:
            self.run(tasks, len(tasks))
        except KktError:
            pass

    def _begin(self, item: Item, status: PlannedStatus, where: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """[the previous code's accept +] begin + the first status poll in one request."""
        tasks = [begin_task(item, status), dict(STATUS_TASK)]
        deferred, self._deferred = self._deferred, None
        head = [dict(ACCEPT_TASK)] if deferred is not None else []
        try:
            answers = self.run(head + tasks, 0)
        except KktError as exc:
            if c.code_of(exc) != CHECK_ALREADY_RUNNING:
                if deferred is not None:
                    where = f"items[{deferred}].marking_code (accept) or {where}"
                raise classify(exc, where) from exc
            # 401 «проверка уже запущена» comes from the begin (the accept before it went through): a
            # check left over from a crashed attempt; cancel it and begin again, once
            self._quiet([dict(CANCEL_TASK)])
            answers = self._one(tasks, where)
            head = []
        if head:
            self._record_accept(deferred, answers[0])
        begin, first = answers[len(head):]
        return begin or {}, first or {}

    def _record_accept(self, line: int | None, res: dict[str, Any] | None) -> None:
        if line is None:
            return
        try:
            self._accepted[line] = check_result_value((res or {}).get("itemInfoCheckResult"))
        except t.AnswerError:
            pass  # GUESS: an answer without it keeps the status's 2106

    def _flush_accept(self) -> None:
        """Send the last code's deferred acceptMarkingCode (before the receipt)."""
        deferred, self._deferred = self._deferred, None
        if deferred is not None:
            (res,) = self._one([dict(ACCEPT_TASK)], f"items[{deferred}].marking_code")
            self._record_accept(deferred, res)

    def _check(self, n: int, item: Item, status: PlannedStatus) -> marking_flow.CheckOutcome:
        where = f"items[{n}].marking_code"
        self._line = n
        self._answered = False
        begin, answer = self._begin(item, status, where)
        until = self.clock() + self.timeout_s
        try:
            local = offline_2004(begin)
            st = parse_status(answer)
            while not st.ready:
                if self.clock() >= until:
                    return marking_flow.CheckOutcome(
                        result=local & 0x03, fn_answer=marking_flow.FN_ANSWER_TIMEOUT, local=local,
                        text=f"ATOL {CHECK_TIMEOUT}: no result after {self.timeout_s:g} s")
                self.sleep(self.poll_s)
                st = parse_status(self._one([dict(STATUS_TASK)], where)[0])
        except t.AnswerError as exc:
            raise TransientError(f"{where}: {exc}") from exc
        self._answered = True
        if st.error_code:
            # GUESS: a ready check with a driver error (402 no server, 421 timeout, 411 OFD exchange …)
            # is "no valid online answer"; marking_flow pauses the lane unless the URL says sell.
            # 2106 bits 0/1 then come from the FN's own check of the crypto part.
            fn_answer = marking_flow.FN_ANSWER_TIMEOUT if st.error_code in NO_ANSWER_CODES else 0x20
            return marking_flow.CheckOutcome(result=local & 0x03, fn_answer=fn_answer, local=local,
                                             text=f"ATOL {st.error_code} {st.error_text}".strip())
        assert st.result is not None
        return marking_flow.CheckOutcome(result=st.result, fn_answer=marking_flow.FN_ANSWER_OK, local=local)

    def _decide(self, accept: bool) -> None:
        if accept:
            self._deferred = self._line  # sent first in the next request (_begin) or by _flush_accept
            return
        # ATOLJS: decline a code whose check finished, cancel one that did not (timeout / error);
        # check_receipt then raises and the caller clears the table
        self._quiet([{"type": "declineMarkingCode" if self._answered else "cancelMarkingCodeValidation"}])
