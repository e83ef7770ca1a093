"""Named crash points for the exactly-once tests (gofail / BUGGIFY style).

``KKT_CRASHPOINT=after_intent`` makes the process SIGKILL itself the first time it passes the
point named ``after_intent``; ``KKT_CRASHPOINT=after_intent:3`` the third time. SIGKILL, not an
exception: no ``finally``, no atexit, exactly like a power cut or the OOM killer.
"""
from __future__ import annotations

import os
import signal

ENV = "KKT_CRASHPOINT"

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
