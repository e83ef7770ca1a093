"""systemd's notify protocol (sd_notify) without a library: one datagram to ``$NOTIFY_SOCKET``.

``Type=notify`` units wait for ``READY=1``; ``WatchdogSec=`` expects ``WATCHDOG=1`` at least every
``WATCHDOG_USEC`` microseconds (we pet at half that). Outside systemd every call is a no-op.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable

log = logging.getLogger(__name__)


def notify(*fields: str) -> bool:
    """Send ``KEY=value`` lines to systemd; False when not started by systemd (or the send failed)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not fields:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract-namespace socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode())
        return True
    except OSError as exc:
        log.debug("sd_notify failed: %s", exc)
        return False


def watchdog_interval_s() -> float | None:
    """How often to pet the watchdog (half of ``WATCHDOG_USEC``), None when there is no watchdog."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2_000_000, 0.5)
    except ValueError:
        return None


class Watchdog:
    """Pets systemd's watchdog only while ``alive()`` says every loop of the worker is alive.

    A hung lane or poller stops the petting; systemd then kills and restarts the worker, and
    recovery on start settles whatever was in flight. Call :meth:`tick` often (each poll).
    """

    def __init__(self, alive: Callable[[], bool], *, interval_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.alive = alive
        self.interval_s = interval_s if interval_s is not None else watchdog_interval_s()
        self.clock = clock
        self._last = float("-inf")

    @property
    def enabled(self) -> bool:
        return self.interval_s is not None

    def tick(self) -> bool:
        """Pet the watchdog if due and every loop is alive; True when a WATCHDOG=1 was sent."""
        if self.interval_s is None:
            return False
        now = self.clock()
        if now - self._last < self.interval_s:
            return False
        if not self.alive():
            log.error("a worker loop is stuck: not petting the systemd watchdog")
            return False
        self._last = now
        return notify("WATCHDOG=1")
