"""The FN's marking side (ФН-М, FFD 1.2) for the emulated register: check, accept, notify.

Facts from ``/work/shared/reference/marking.md`` §2 and §3 (SPEC117 FF61/FF69/FF70, NGEX, ATOLJS):

* A check (Shtrih FF61, ATOL ``beginMarkingCodeValidation``) runs the FN's offline check of the
  crypto tail (2004; without AI 91/92 the FN cannot check it: reason 3, a short code reason 1),
  then, when the register is online, asks ОИСМ through the OFD. The answer carries 2105 / 2005
  (/ 2109); the FN derives 2106. No answer in time is the FN answer code 0xFF.
* Each checked code is then accepted or rejected (FF69). At most 128 codes per receipt (A3h).
* A line of the receipt may only carry an accepted code (A5h: «2007 contains an unchecked КМ»).
* After a receipt with codes the FN queues a notification (FD type 82) for ОИСМ; unsent
  notifications pile up until marking is blocked (A2h).

What ОИСМ answers is set per code (:func:`set_verdict`) or by the faults ``marking_invalid``,
``marking_late``, ``marking_bad_answer``; the OFD link being down (``RegisterModel.ofd_link``)
makes every online check late. Everything here works on the register's state dict, so it is
persisted and shared by every process driving the register, like the rest of the model.
"""
from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from kkt_drivers.emulator.faults import Faults
from kkt_drivers.errors import DeviceStateError, RejectedError
from kkt_drivers.marking import MAX_CODES_PER_RECEIPT, CodeKind, MarkingCode, MarkingCodeError, parse
from kkt_drivers.marking_flow import COND_MARKING_BLOCKED

#: GUESS: how many unsent notifications block marking. A real FN blocks when its notification
#: storage is full (A2h); its size in notifications is not in our sources (one case had 10 queued).
NOTIFICATION_BLOCK_AT = 50
#: FN answer code for the online check (FF61): 0 answer valid, 0x20 + reason invalid, 0xFF timeout
FN_ANSWER_OK, FN_ANSWER_BAD_SIGNATURE, FN_ANSWER_TIMEOUT = 0x00, 0x21, 0xFF
#: reasons the FN did not check the crypto part itself (FF61 byte 2, SPEC117)
REASON_CHECKED, REASON_TYPE, REASON_NO_KEY, REASON_NO_AI91_92 = 0, 1, 2, 3
#: a command out of the FN's order (Shtrih A1h)
COND_MARKING_ORDER = "marking_wrong_order"

VERDICTS = ("valid", "invalid", "late", "bad_answer", "unrecognized")


def _table(s: dict[str, Any]) -> dict[str, Any]:
    m = s.setdefault("marking", {})
    m.setdefault("checked", [])        # [{code, status, result, accepted}] of the current receipt
    m.setdefault("pending", None)      # the code checked and not yet accepted or rejected
    m.setdefault("verdicts", {})       # code b64 -> ОИСМ verdict set by a test
    m.setdefault("unsent", 0)          # notifications not yet taken by ОИСМ
    m.setdefault("next_notification", 1)
    m.setdefault("requests", 0)
    return m


def set_verdict(s: dict[str, Any], code: bytes, verdict: str) -> None:
    """What ОИСМ answers for *code* from now on (one of :data:`VERDICTS`)."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    _table(s)["verdicts"][base64.b64encode(code).decode()] = verdict


def blocked(s: dict[str, Any]) -> bool:
    """True while unsent notifications block marking (A2h)."""
    return _table(s)["unsent"] >= NOTIFICATION_BLOCK_AT


def check(s: dict[str, Any], raw: bytes, status: int, mode: int, *, faults: Faults, online: bool,
          now: dt.datetime) -> dict[str, Any]:
    """Check one code as the FN does; return the FF61-shaped result (also kept as pending).

    Keys: ``local`` (2004), ``reason``, ``type`` (2100), ``fn_answer``, ``result`` (2106),
    ``answer`` (TLVs of the ОИСМ answer: 2114, 2105, 2005) or None when there was none.
    """
    m = _table(s)
    if blocked(s):
        raise DeviceStateError("marking is blocked: unsent notifications fill the FN",
                               condition=COND_MARKING_BLOCKED, vendor_code="0xA2")
    if mode != 0:
        raise RejectedError("2102 must be 0", field="marking_mode", vendor_code="0x33")
    try:
        code: MarkingCode | None = parse(raw)
    except MarkingCodeError:
        # GUESS: the FN reports an unparseable code as 2100 = 0 (reason 4) and ОИСМ answers
        # 2105 = 2 «КМ не распознан»; firmware may refuse it outright (error 211, fr_drv_ng#282)
        code = None
    key = base64.b64encode(bytes(raw)).decode()
    others = [c for c in m["checked"] if c["code"] != key]
    if len(others) >= MAX_CODES_PER_RECEIPT:
        raise RejectedError(f"the FN's check table holds at most {MAX_CODES_PER_RECEIPT} codes",
                            field="items", vendor_code="0xA3")
    local, reason = _offline(code) if code is not None else (0, 4)
    verdict = m["verdicts"].get(key, "valid" if code is not None else "unrecognized")
    for fault, name in (("marking_invalid", "invalid"), ("marking_late", "late"),
                        ("marking_bad_answer", "bad_answer")):
        if faults.fire(fault):
            verdict = name
    if not online:
        verdict = "late"
    m["requests"] += 1
    result = {"local": local, "reason": reason, "type": int(code.code_type) if code else 0, "answer": None}
    offline_bits = (local & 0x01) | (local & 0x02)  # 2106 bit0/bit1 from the FN's own check
    if verdict == "late":
        result.update(fn_answer=FN_ANSWER_TIMEOUT, result=offline_bits)
    elif verdict == "bad_answer":
        result.update(fn_answer=FN_ANSWER_BAD_SIGNATURE, result=offline_bits)
    else:
        # GUESS: the 2005 bits for a negative answer (0x05 = checked, status checked; the golden
        # Shtrih trace) and 2105 = 2 for an unrecognized code; 2106 bit1/bit3 follow 2005 bit1/bit3
        r2005 = {"valid": 0x0F, "invalid": 0x05, "unrecognized": 0x00}[verdict]
        r2105 = 2 if verdict == "unrecognized" else 0
        r2106 = 0x01 | (r2005 & 0x02) | (0x04 if r2105 == 0 else 0) | (r2005 & 0x08) | offline_bits
        if verdict != "valid":
            r2106 &= ~0x0A  # a negative ОИСМ verdict overrides the FN's positive local check
        result.update(fn_answer=FN_ANSWER_OK, result=r2106,
                      answer={"2114": int(now.replace(tzinfo=dt.timezone.utc).timestamp()),
                              "2105": r2105, "2005": r2005})
    m["pending"] = {"code": key, "status": status, "result": result["result"]}
    return result


def _offline(code: MarkingCode) -> tuple[int, int]:
    """2004 and the reason byte: the FN checks the crypto part only with AI 91 + 92."""
    if code.kind is CodeKind.TOBACCO_SHORT:
        return 0, REASON_TYPE
    if code.has_crypto_tail:
        return 0x03, REASON_CHECKED  # GUESS: the emulated FN always finds the crypto code valid
    if code.check_code is not None:
        return 0, REASON_TYPE
    return 0, REASON_NO_AI91_92


def decide(s: dict[str, Any], accept: bool) -> int:
    """Accept or reject the pending code (FF69); return its 2106. A1h when nothing is pending."""
    m = _table(s)
    pending = m["pending"]
    if pending is None:
        raise DeviceStateError("no checked marking code to accept or reject",
                               condition=COND_MARKING_ORDER, vendor_code="0xA1")
    m["pending"] = None
    m["checked"] = [c for c in m["checked"] if c["code"] != pending["code"]]
    if accept:
        m["checked"].append({**pending, "accepted": True})
    return int(pending["result"])


def bind(s: dict[str, Any], raw: bytes) -> dict[str, Any]:
    """The accepted check entry of *raw* for a receipt line; A5h when it was not accepted."""
    m = _table(s)
    key = base64.b64encode(raw).decode()
    for entry in m["checked"]:
        if entry["code"] == key and entry.get("accepted"):
            return entry
    raise RejectedError("the marking code was not checked and accepted before the line",
                        field="items.marking_code", vendor_code="0xA5")


def receipt_closed(s: dict[str, Any], marked_lines: int, online: bool) -> int | None:
    """After a receipt: queue its notification (when it had codes) and clear the table.

    Returns the notification number, or None when the receipt had no codes.
    """
    m = _table(s)
    m["checked"] = []
    m["pending"] = None
    if not marked_lines:
        return None
    number = m["next_notification"]
    m["next_notification"] += 1
    m["unsent"] = 0 if online else m["unsent"] + 1
    return number


def link_up(s: dict[str, Any]) -> None:
    """The OFD link is back: every queued notification goes to ОИСМ and is acknowledged."""
    _table(s)["unsent"] = 0


def counters(s: dict[str, Any]) -> dict[str, Any]:
    """Numbers for status and FF70: checked codes, pending, unsent notifications, blocked."""
    m = _table(s)
    return {"checked": len(m["checked"]), "pending": m["pending"] is not None,
            "unsent": m["unsent"], "blocked": blocked(s), "requests": m["requests"]}


def line_record(code: bytes, entry: dict[str, Any]) -> dict[str, Any]:
    """What the register writes into a receipt line for a marked unit (1163, 2102, 2106, 2003)."""
    parsed = parse(code)
    sub, value = parsed.product_code_1163
    return {"2000": base64.b64encode(code).decode(), "1163": {str(sub): value}, "2102": 0,
            "2106": entry["result"], "2003": entry["status"], "2115": parsed.control_code_2115}


def cancel(s: dict[str, Any]) -> None:
    """Abort the running check: the pending code is dropped (ATOL ``cancelMarkingCodeValidation``)."""
    _table(s)["pending"] = None


def clear(s: dict[str, Any]) -> int:
    """Empty the FN's table of checked codes (ATOL ``clearMarkingCodeValidationResult``; JPOS FF69
    with 2); returns how many codes it held."""
    m = _table(s)
    held = len(m["checked"])
    m["checked"] = []
    m["pending"] = None
    return held
