"""Warm then cold shutdown, as a context manager that leaves the process's handlers as it found them.

Inside ``with on_stop(stop):`` the first SIGTERM/SIGINT sets *stop* (the worker finishes the receipt in
progress and exits); a second one exits at once with :data:`COLD_EXIT_CODE` (whatever was "sending"
is reconciled on the next start). On leaving the block the previous handlers are restored, even
after an exception (procrastinate's ``signals.on_stop`` is the model). SIGUSR1 writes every thread's
stack to stderr (:func:`on_dump`), for a worker that seems stuck.
"""
from __future__ import annotations

import logging
import faulthandler
import os
import signal
import sys
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Callable, Iterator, TextIO

log = logging.getLogger(__name__)

#: exit status of a cold stop (128 + SIGINT, what a shell reports for an interrupted program)
COLD_EXIT_CODE = 130
#: the signals that stop the worker
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: the signal that dumps every thread's stack (``kill -USR1 <pid>``; the chaos tests send it before giving up)
DUMP_SIGNAL = signal.SIGUSR1


@contextmanager
def on_stop(stop: threading.Event, *, exit_now: Callable[[int], object] = os._exit) -> Iterator[None]:
    """Route SIGTERM and SIGINT to *stop* (warm) and the second one to ``exit_now(130)`` (cold).

    ``exit_now`` is ``os._exit`` (no ``finally``, no atexit: nothing may block a cold stop); tests
    pass their own.
    """

    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("%s again: exiting now; recovery will reconcile on the next start", name)
            exit_now(COLD_EXIT_CODE)
            return
        log.info("%s: finishing the receipt in progress, then stopping (send again to stop at once)", name)
        stop.set()

    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    try:
        for sig in STOP_SIGNALS:
            signal.signal(sig, handler)
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def on_reload(reload: Callable[[], object]) -> Iterator[None]:
    """Route SIGHUP to *reload* (reopen logs, re-read what can change without a restart).

    Without this a SIGHUP kills Python mid-receipt (its default action); here it never stops the
    worker. *reload* runs in the signal handler, so it must be quick and must not raise.
    """

    def handler(_signum: int, _frame: FrameType | None) -> None:
        try:
            reload()
        except Exception:  # a bad settings file on reload keeps the running configuration
            log.exception("SIGHUP: reload failed; the worker keeps its current settings")

    previous = signal.getsignal(signal.SIGHUP)
    try:
        signal.signal(signal.SIGHUP, handler)
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


@contextmanager
def on_dump(file: TextIO | None = None) -> Iterator[None]:
    """Route SIGUSR1 to a dump of every thread's Python stack on *file* (stderr), then carry on.

    faulthandler writes from the C signal handler, so the dump comes even while every thread waits in C
    (a socket read, a lock): what a hung worker is waiting for, without a debugger on the host.
    """
    faulthandler.register(DUMP_SIGNAL, file=file or sys.stderr, all_threads=True, chain=False)
    try:
        yield
    finally:
        faulthandler.unregister(DUMP_SIGNAL)
