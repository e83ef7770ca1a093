"""Named crash points for the exactly-once tests (gofail / BUGGIFY style).

``KKT_CRASHPOINT=after_intent`` makes the process SIGKILL itself the first time it passes the
point named ``after_intent``; ``KKT_CRASHPOINT=after_intent:3`` the third time. SIGKILL, not an
exception: no ``finally``, no atexit, exactly like a power cut or the OOM killer.

``KKT_FAILPOINT=record_outcome:3`` makes the first 3 passes of the point ``record_outcome`` raise the
error SQLite gives on a full disk ("database or disk is full"): the outcome of a receipt the register
already printed cannot be recorded, deterministically.
"""
from __future__ import annotations

import os
import signal
import sqlite3

from sqlalchemy.exc import OperationalError

ENV = "KKT_CRASHPOINT"
FAIL_ENV = "KKT_FAILPOINT"

#: the points in the fiscalize path, in order
POINTS = (
    "before_intent",
    "after_intent",
    "after_receipt_opened",
    "after_close_sent",
    "after_register_answered",
    "after_outcome",
)

_spec = os.environ.get(ENV, "")
_name, _, _nth = _spec.partition(":")
_countdown = int(_nth) if _nth else 1


def crashpoint(name: str) -> None:
    """SIGKILL this process if the environment names *name* and its count is reached."""
    global _countdown
    if not _name or name != _name:
        return
    _countdown -= 1
    if _countdown <= 0:
        os.kill(os.getpid(), signal.SIGKILL)


def driver_step(step: str) -> None:
    """The driver's step hook: "receipt_opened" → crash point "after_receipt_opened", etc."""
    crashpoint(f"after_{step}")


_fail_name, _, _fail_n = os.environ.get(FAIL_ENV, "").partition(":")
_fail_left = int(_fail_n) if _fail_n else (1 if _fail_name else 0)


def failpoint(name: str) -> None:
    """Raise an injected "disk full" ledger error while the environment's count for *name* lasts."""
    global _fail_left
    if _fail_name != name or _fail_left <= 0:
        return
    _fail_left -= 1
    raise OperationalError(f"[failpoint {name}]", None, sqlite3.OperationalError("database or disk is full"))
