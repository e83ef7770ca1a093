"""Warm then cold shutdown: the first SIGTERM/SIGINT finishes the receipt in progress and exits;
a second one exits at once (whatever was "sending" is reconciled on the next start)."""
from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)

COLD_EXIT_CODE = 130


def install(stop: threading.Event) -> None:
    """Route SIGTERM and SIGINT to *stop* (warm), and the second one to an immediate exit (cold)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("%s again: exiting now; recovery will reconcile on the next start", name)
            os._exit(COLD_EXIT_CODE)
        log.info("%s: finishing the receipt in progress, then stopping (send again to stop at once)", name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
