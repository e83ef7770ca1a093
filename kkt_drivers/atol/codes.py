"""ATOL Driver v10 error codes (``LIBFPTR_ERROR_*``) and task statuses, mapped to our error classes.

Codes and names follow the libfptr10 error enum as reproduced in KKTServiceLib
(``Types/Enums/KKTErrorType.cs``, built against ATOL's docs 10.10.7.0); statuses follow ATOL Web
Requests (``/api/v2``) as described in ``register-apis.md`` §1.1.

A task result with status ``error`` is *definite*: the Web Requests service blocks the queue
(status ``blocked``) whenever a fiscal subtask broke in a way that may have left a document behind,
and only turns it into ``error`` after re-reading the FN's last FD number and seeing it unchanged.
So an ``error`` code is classified by what the register needs, never as "outcome unknown" — except
177 (close interrupted), which only libfptr itself reports directly.
"""
from __future__ import annotations

from kkt_drivers.errors import (
    DeviceStateError, KktError, OutcomeUnknownError, RejectedError, TransientError,
)

# -- task statuses (Web Requests) -------------------------------------------------------------
WAIT = "wait"
IN_PROGRESS = "inProgress"
READY = "ready"
ERROR = "error"
INTERRUPTED = "interrupted"
BLOCKED = "blocked"
CANCELED = "canceled"
STATUSES = (WAIT, IN_PROGRESS, READY, ERROR, INTERRUPTED, BLOCKED, CANCELED)
PENDING = (WAIT, IN_PROGRESS)
#: the code the service gives the subtasks after a failed one
INTERRUPTED_CODE = 502

# -- error codes (libfptr10) --------------------------------------------------------------
CONNECTION_DISABLED = 1
NO_CONNECTION = 2
PORT_BUSY = 3
PORT_NOT_AVAILABLE = 4
CONNECTION_LOST = 241
NO_PAPER = 44
COVER_OPENED = 45
PRINTER_FAULT = 46
BUSY = 55
SHIFT_EXPIRED = 68
DENIED_IN_CLOSED_SHIFT = 73
DENIED_IN_CLOSED_RECEIPT = 81
DENIED_IN_OPENED_RECEIPT = 82
DENIED_IN_OPENED_SHIFT = 83
PRINTER_OVERHEAT = 114
FN_NO_MORE_DATA = 123
FN_SHIFT_EXPIRED = 141
CLOSE_RECEIPT_INTERRUPTED = 177
INVALID_RECEIPT_TOTAL = 227

CONNECTION_CODES = frozenset({CONNECTION_DISABLED, NO_CONNECTION, PORT_BUSY, PORT_NOT_AVAILABLE,
                              CONNECTION_LOST, BUSY})
#: FN faults (KKTErrorType 115–124, 133–137, 140, 159): the FN cannot take documents now
FN_CODES = frozenset(set(range(115, 125)) - {FN_NO_MORE_DATA} | {133, 134, 135, 136, 137, 140, 159})
SHIFT_EXPIRED_CODES = frozenset({SHIFT_EXPIRED, FN_SHIFT_EXPIRED})
#: codes after which a fiscal call through libfptr directly (no Web Requests service to block and
#: re-read the FD counter for us) leaves the outcome unknown: WR-agent's connection and FN lists,
#: WR-clone's isNeedBlock, plus "close receipt interrupted"
UNCERTAIN_CODES = frozenset({CONNECTION_DISABLED, NO_CONNECTION, PORT_BUSY, PORT_NOT_AVAILABLE, CONNECTION_LOST,
                             115, 116, 159, 166, CLOSE_RECEIPT_INTERRUPTED, 15})


def vendor(code: int, description: str) -> str:
    """The ``vendor_code`` we keep in the ledger, e.g. ``"ATOL 44 Нет бумаги"``."""
    return f"ATOL {code} {description}".strip()


def code_of(exc: KktError) -> int | None:
    """The ATOL error code an error of ours was made from (via its ``vendor_code``), if any."""
    parts = (exc.vendor_code or "").split(" ")
    if len(parts) >= 2 and parts[0] == "ATOL" and parts[1].isdigit():
        return int(parts[1])
    return None


def error_for(code: int, description: str, *, task: str) -> KktError:
    """The error class for a task that ended with status ``error`` and this code."""
    v = vendor(code, description)
    msg = f"ATOL task {task} failed: {code} {description}".strip()
    if code in CONNECTION_CODES:
        return TransientError(msg, vendor_code=v)
    if code == NO_PAPER:
        return DeviceStateError(msg, condition=DeviceStateError.COND_PAPER_OUT, vendor_code=v)
    if code == COVER_OPENED:
        return DeviceStateError(msg, condition=DeviceStateError.COND_COVER_OPEN, vendor_code=v)
    if code in (PRINTER_FAULT, PRINTER_OVERHEAT):
        return DeviceStateError(msg, condition=DeviceStateError.COND_OTHER, vendor_code=v)
    if code in SHIFT_EXPIRED_CODES:
        return DeviceStateError(msg, condition=DeviceStateError.COND_SHIFT_EXPIRED, vendor_code=v)
    if code == DENIED_IN_CLOSED_SHIFT:
        return DeviceStateError(msg, condition=DeviceStateError.COND_SHIFT_CLOSED, vendor_code=v)
    if code == DENIED_IN_OPENED_SHIFT:
        return DeviceStateError(msg, condition=DeviceStateError.COND_SHIFT_OPEN, vendor_code=v)
    if code == DENIED_IN_OPENED_RECEIPT:
        return DeviceStateError(msg, condition=DeviceStateError.COND_RECEIPT_OPEN, vendor_code=v)
    if code in FN_CODES:
        return DeviceStateError(msg, condition=DeviceStateError.COND_FN_ERROR, vendor_code=v)
    if code == CLOSE_RECEIPT_INTERRUPTED:
        return OutcomeUnknownError(msg, vendor_code=v)
    # anything else: the register looked at our data and refused it
    return RejectedError(msg, vendor_code=v)
