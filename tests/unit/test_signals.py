"""on_stop: the first signal is a warm stop, the second a cold exit, and the old handlers come back."""
from __future__ import annotations

import os
import signal
import threading

import pytest

from worker.signals import COLD_EXIT_CODE, on_stop


def _deliver(sig: int) -> None:
    os.kill(os.getpid(), sig)   # CPython runs the Python-level handler before os.kill returns to us


def test_first_signal_sets_stop_second_exits_cold_and_handlers_are_restored() -> None:
    """Given our handler installed, SIGTERM sets stop; a second SIGINT asks for exit 130; afterwards the
    previous handlers are back."""
    def previous(signum, frame):  # a handler someone else installed before us
        raise AssertionError("must not be called while on_stop is active")

    old_term = signal.signal(signal.SIGTERM, previous)
    old_int = signal.getsignal(signal.SIGINT)
    exits: list[int] = []
    stop = threading.Event()
    try:
        with on_stop(stop, exit_now=exits.append):
            _deliver(signal.SIGTERM)
            assert stop.is_set() and exits == []
            _deliver(signal.SIGINT)
            assert exits == [COLD_EXIT_CODE]
        assert signal.getsignal(signal.SIGTERM) is previous
        assert signal.getsignal(signal.SIGINT) is old_int
    finally:
        signal.signal(signal.SIGTERM, old_term)


def test_handlers_are_restored_after_an_exception() -> None:
    """An error inside the block still puts the previous handlers back."""
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RuntimeError):
        with on_stop(threading.Event()):
            assert signal.getsignal(signal.SIGTERM) is not before
            raise RuntimeError("boom")
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigusr1_dumps_every_thread_and_the_process_goes_on(tmp_path) -> None:
    """Given on_dump installed, SIGUSR1 writes each thread's stack (a thread blocked in a wait included)
    and nothing stops; afterwards SIGUSR1 is back to what it was."""
    from worker.signals import DUMP_SIGNAL, on_dump

    release = threading.Event()
    waiter = threading.Thread(target=release.wait, name="blocked-waiter", daemon=True)
    waiter.start()
    previous = signal.getsignal(DUMP_SIGNAL)
    out = (tmp_path / "dump.txt").open("w+")
    try:
        with on_dump(out):
            _deliver(DUMP_SIGNAL)
        out.seek(0)
        dump = out.read()
    finally:
        release.set()
        out.close()
    assert dump.count("hread 0x") >= 2 and "in wait" in dump and "test_sigusr1_dumps_every_thread" in dump, dump
    assert signal.getsignal(DUMP_SIGNAL) == previous
