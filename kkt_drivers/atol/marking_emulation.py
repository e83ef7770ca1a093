"""The FN side of ATOL's marking tasks for the emulated register (mixed into :class:`AtolEmulation`).

It reuses the emulator's ФН-М model (:mod:`kkt_drivers.emulator.fn_marking`: offline check of the
crypto tail, the ОИСМ verdict valid / invalid / late / bad_answer / unrecognized, the 128-code table,
the notification queue and its "marking blocked" state) and answers in ATOL's JSON shapes
(:mod:`kkt_drivers.atol.marking` names the vendor sources):

| task                               | answer                                                              |
|------------------------------------|---------------------------------------------------------------------|
| beginMarkingCodeValidation         | ``offlineValidation{fmCheck, fmCheckResult, fmCheckErrorReason}``   |
| getMarkingCodeValidationStatus     | ``{ready, sentImcRequest, driverError{…}, onlineValidation{…}}``    |
| acceptMarkingCode                  | ``itemInfoCheckResult{…}`` (what the FN saved)                     |
| declineMarkingCode / cancel… / clear… | ``{}``                                                           |
| checkImcWorkState                  | ``fm{status, checkingCount, soldImcCount, noticeIsBegin, noticeFreeMemory, noticeUnsentCount}``, ``ecr{…}`` |

GUESSES (no vendor source for the behaviour, only for the shapes): an ОИСМ answer that does not come
("late") keeps ``ready: false`` until the check is cancelled (the client's own deadline decides, as
in ATOL's ``validateMarks``); an answer the FN finds invalid ("bad_answer") is ``ready`` with
``driverError`` 411; error numbers for the FN's refusals (407 blocked, 408 table full, 410 order,
420 unchecked code in a receipt line).
"""
from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from kkt_drivers.atol import marking as mk
from kkt_drivers.emulator import fn_marking
from kkt_drivers.emulator.model import RegisterModel
from kkt_drivers.errors import DeviceStateError, RejectedError
from kkt_drivers.marking_flow import COND_MARKING_BLOCKED
from kkt_drivers.receipt import IndustryRequisite

_STATUS = {v: k for k, v in mk.ESTIMATED_STATUS.items()}
_REASONS = {fn_marking.REASON_CHECKED: "checked", fn_marking.REASON_TYPE: "typeIncorrect",
            fn_marking.REASON_NO_KEY: "noKeys", fn_marking.REASON_NO_AI91_92: "noGS1", 4: "other"}
_FRACTION = re.compile(r"^([1-9][0-9]*)/([1-9][0-9]*)$")
_ATOL_DATE = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})$")
#: the FN's refusals (our emulator's vendor codes) as ATOL error numbers (GUESS: numbers by name)
ERROR_CODES = {"0xA1": mk.WRONG_STATE, "0xA2": mk.MARKING_BLOCKED, "0xA3": mk.TABLE_OVERFLOW,
               "0xA5": mk.NOT_CHECKED}
_DESCRIPTIONS = {
    mk.CHECK_ALREADY_RUNNING: "Процедура проверки КМ уже запущена",
    mk.MARKING_BLOCKED: "Работа с маркированными товарами временно заблокирована",
    mk.TABLE_OVERFLOW: "Переполнение таблицы проверки кодов маркировки",
    mk.WRONG_STATE: "Неверное состояние / порядок команд проверки КМ",
    mk.OFD_EXCHANGE: "Ответ ОИСМ не прошёл проверку ФН",
    mk.NOT_CHECKED: "КМ не проверен в ФН",
}


class MarkingFailed(Exception):
    """A marking task refused with an ATOL error number (turned into TaskFailed by the emulation)."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(f"{code} {detail}")
        self.code = code
        self.description = (_DESCRIPTIONS.get(code, "Ошибка") + (f": {detail}" if detail else ""))


def error_code(exc: DeviceStateError | RejectedError) -> int | None:
    """The ATOL error number for one of the emulated FN's marking refusals, if it is one."""
    if isinstance(exc, DeviceStateError) and exc.condition == COND_MARKING_BLOCKED:
        return mk.MARKING_BLOCKED
    return ERROR_CODES.get(exc.vendor_code or "")


def decode_imc(imc: Any) -> bytes:
    """``imc``: base64 of the raw code; the driver falls back to the raw string (ATOLJS ``Duktape.dec``)."""
    if not isinstance(imc, str) or not imc:
        raise ValueError("imc must be a non-empty string")
    try:
        return base64.b64decode(imc, validate=True)
    except (binascii.Error, ValueError):
        return imc.encode("latin-1")


def position_marking(position: dict[str, Any]) -> dict[str, Any]:
    """Item fields from a position's ``imcParams`` / ``industryInfo`` (ValueError when malformed)."""
    out: dict[str, Any] = {}
    imc = position.get("imcParams")
    if imc is not None:
        if not isinstance(imc, dict):
            raise ValueError("imcParams must be an object")
        out["marking_code"] = decode_imc(imc.get("imc"))
        if "itemEstimatedStatus" in imc:
            out["planned_status"] = _STATUS[imc["itemEstimatedStatus"]]
        out["marking_mode"] = int(imc.get("imcModeProcessing", 0))
        if imc.get("itemFractionalAmount") is not None:
            m = _FRACTION.match(str(imc["itemFractionalAmount"]))
            if m is None:
                raise ValueError("itemFractionalAmount must be n/d")
            out["fraction"] = (int(m.group(1)), int(m.group(2)))
        if imc.get("itemInfoCheckResult") is not None:
            out["marking_result"] = mk.check_result_value(imc["itemInfoCheckResult"])
    industry = position.get("industryInfo")
    if industry is not None:
        reqs = []
        for entry in industry:
            m = _ATOL_DATE.match(str(entry.get("date", "")))
            if m is None:  # ATOLJS refuses a date that is not YYYY.MM.DD, then reverses it
                raise ValueError("industryInfo.date must be YYYY.MM.DD")
            reqs.append(IndustryRequisite(str(entry["fois"]), f"{m.group(3)}.{m.group(2)}.{m.group(1)}",
                                          str(entry["number"]), str(entry["industryAttribute"])))
        out["industry"] = tuple(reqs)
    return out


class MarkingTasks:
    """``_t_<task>`` handlers for the marking tasks; needs ``self.model`` (a RegisterModel)."""

    model: RegisterModel
    #: the running check: {"result": fn_marking.check's answer, "local": …} or None
    _imc_check: dict[str, Any] | None = None

    def _t_beginMarkingCodeValidation(self, task: dict[str, Any]) -> dict[str, Any]:
        params = task.get("params")
        if not isinstance(params, dict):
            raise MarkingFailed(13, "params")
        if self._imc_check is not None and self._imc_check.get("pending"):
            raise MarkingFailed(mk.CHECK_ALREADY_RUNNING)
        try:
            code = decode_imc(params.get("imc"))
            status = _STATUS[params.get("itemEstimatedStatus", "itemPieceSold")]
            mode = int(params.get("imcModeProcessing", 0))
        except (KeyError, ValueError, TypeError) as exc:
            raise MarkingFailed(13, f"params: {exc}") from None
        if status in mk.MEASURED_STATUSES and not params.get("itemUnits"):
            # marking.md §2.2: a missing 2108 on an ATOL check gave «Ошибка программирования реквизита 2108»
            raise MarkingFailed(148, "Ошибка программирования реквизита 2108")
        result = self._fn(lambda: self.model.check_marking(code, int(status), mode))
        self._imc_check = {"result": result, "pending": True}
        local = int(result["local"])
        return {"offlineValidation": {"fmCheck": bool(local & 1), "fmCheckResult": bool(local & 2),
                                      "fmCheckErrorReason": _REASONS.get(int(result["reason"]), "other")}}

    def _t_getMarkingCodeValidationStatus(self, task: dict[str, Any]) -> dict[str, Any]:
        chk = self._imc_check
        if chk is None:
            return {"ready": False, "driverError": {"code": mk.WRONG_STATE, "error": "imcCheckWrongState",
                                                    "description": _DESCRIPTIONS[mk.WRONG_STATE]}}
        res = chk["result"]
        if res["fn_answer"] == fn_marking.FN_ANSWER_TIMEOUT:
            return {"ready": False, "sentImcRequest": True}  # ОИСМ is silent: the caller's deadline decides
        if res["fn_answer"] != fn_marking.FN_ANSWER_OK:
            return {"ready": True, "sentImcRequest": True,
                    "driverError": {"code": mk.OFD_EXCHANGE, "error": "serverNoConnect",
                                    "description": _DESCRIPTIONS[mk.OFD_EXCHANGE]}}
        answer = res.get("answer") or {}
        online: dict[str, Any] = {"itemInfoCheckResult": mk.check_result_object(int(res["result"])),
                                  "markOperatorResponse": {"responseStatus": bool(answer.get("2005", 0) & 2),
                                                           "itemStatusCheck": bool(answer.get("2005", 0) & 8)},
                                  "markOperatorResponseResult": {0: "correct", 1: "incorrect"}.get(
                                      answer.get("2105"), "unrecognized"),
                                  "imcType": {2: "imcFmVerifyCode88", 4: "imcFmVerifyCode44",
                                              1: "imcShort", 5: "imcVerifyCode4"}.get(int(res["type"]),
                                                                                      "imcUnrecognized"),
                                  "imcModeProcessing": 0}
        return {"ready": True, "sentImcRequest": True, "driverError": {"code": 0, "description": ""},
                "onlineValidation": online}

    def _t_acceptMarkingCode(self, task: dict[str, Any]) -> dict[str, Any]:
        value = self._fn(lambda: self.model.decide_marking(True))
        self._imc_check = None
        return {"itemInfoCheckResult": mk.check_result_object(value)}

    def _t_declineMarkingCode(self, task: dict[str, Any]) -> dict[str, Any]:
        self._fn(lambda: self.model.decide_marking(False))
        self._imc_check = None
        return {}

    def _t_cancelMarkingCodeValidation(self, task: dict[str, Any]) -> dict[str, Any]:
        with self.model.session() as s:
            fn_marking.cancel(s)
        self._imc_check = None
        return {}

    def _t_clearMarkingCodeValidationResult(self, task: dict[str, Any]) -> dict[str, Any]:
        with self.model.session() as s:
            fn_marking.clear(s)
        self._imc_check = None
        return {}

    def _t_checkImcWorkState(self, task: dict[str, Any]) -> dict[str, Any]:
        n = self.model.marking_counters()
        # GUESS: how full the notice memory is, from the emulator's block threshold
        fill = n["unsent"] / fn_marking.NOTIFICATION_BLOCK_AT
        memory = ("outOfMemory" if n["blocked"] else "more90" if fill > 0.9 else "80to90" if fill > 0.8
                  else "50to80" if fill >= 0.5 else "less50")
        status = ("blocked" if n["blocked"] else "receivedImc" if n["pending"] else "noImcForCheck")
        return {"fm": {"status": status, "checkingCount": n["requests"], "soldImcCount": n["checked"],
                       "noticeIsBegin": False, "noticeFreeMemory": memory, "noticeUnsentCount": n["unsent"]},
                "ecr": {"status": "notExecuted" if not n["pending"] else "executed",
                        "type": "waitForResult", "stage": "waitForTask"}}

    def _fn(self, call: Any) -> Any:
        """Run a model call; the FN's marking refusals become ATOL error numbers."""
        try:
            return call()
        except (DeviceStateError, RejectedError) as exc:
            code = error_code(exc)
            if code is None:
                raise
            raise MarkingFailed(code, str(exc)) from exc

