"""Byte streams to registers: the only module that touches pyserial.

URL grammar (pyserial's, see ``serial.serial_for_url``)::

    socket://192.168.137.111:7778      TCP (Ethernet, Wi-Fi, USB-RNDIS registers)
    /dev/ttyUSB0                        a serial port; ``baudrate`` applies
    rfc2217://host:port                 a serial port behind an RFC 2217 server
    spy://socket://host:port?file=x.log pyserial's spy wrapper for field debugging

Every serial or socket failure leaves this module as :class:`~kkt_drivers.errors.TransientError`
(``raise … from exc``), so protocol code never sees a pyserial exception.
"""
from __future__ import annotations

import socket
import time

import serial

from kkt_drivers.errors import TransientError

#: default per-read timeout while waiting for one byte, seconds
DEFAULT_BYTE_TIMEOUT_S = 1.0
#: write timeout, seconds
DEFAULT_WRITE_TIMEOUT_S = 5.0
#: default serial speed (newer Shtrih models ship with 115200)
DEFAULT_BAUDRATE = 115200


class LinkClosedError(TransientError):
    """The peer closed the connection (TCP) or the port vanished."""


class Stream:
    """A byte stream with deadline-based reads; wraps one pyserial port object."""

    def __init__(self, url: str, *, baudrate: int = DEFAULT_BAUDRATE,
                 timeout: float = DEFAULT_BYTE_TIMEOUT_S,
                 write_timeout: float = DEFAULT_WRITE_TIMEOUT_S) -> None:
        self.url = url
        try:
            self._port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout,
                                               write_timeout=write_timeout)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TransientError(f"cannot open {url}: {exc}") from exc
        _no_delay(self._port)

    def write(self, data: bytes) -> None:
        """Write all of *data*; TransientError on any failure."""
        try:
            self._port.write(data)
            self._port.flush()
        except (serial.SerialException, OSError) as exc:
            raise LinkClosedError(f"write to {self.url} failed: {exc}") from exc

    def read_byte(self, timeout: float) -> int | None:
        """One byte, or None when nothing arrived within *timeout* seconds."""
        data = self.read(1, timeout)
        return data[0] if data else None

    def read(self, n: int, timeout: float) -> bytes:
        """Up to *n* bytes arriving within *timeout* seconds (fewer means the deadline passed)."""
        deadline = time.monotonic() + timeout
        out = bytearray()
        try:
            while len(out) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._port.timeout = left
                chunk = self._port.read(n - len(out))
                if chunk:
                    out += chunk
        except (serial.SerialException, OSError) as exc:
            raise LinkClosedError(f"read from {self.url} failed: {exc}") from exc
        return bytes(out)

    def discard_input(self) -> None:
        """Drop bytes already received and not read (leftovers of an earlier exchange)."""
        try:
            self._port.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            raise LinkClosedError(f"reset of {self.url} failed: {exc}") from exc

    def drain(self, quiet_s: float = 0.05) -> bytes:
        """Read and return whatever arrives until the line stays quiet for *quiet_s*."""
        junk = bytearray()
        while True:
            chunk = self.read(256, quiet_s)
            if not chunk:
                return bytes(junk)
            junk += chunk

    def close(self) -> None:
        """Close the port; never raises."""
        try:
            self._port.close()
        except Exception:  # noqa: BLE001 - closing a broken link must not mask the real error
            pass


def _no_delay(port: object) -> None:
    """Disable Nagle on TCP links: the protocol ping-pongs single bytes (ENQ/ACK), which Nagle
    plus delayed ACKs would stall by ~40 ms each. pyserial's socket handler does not do it."""
    sock = getattr(port, "_socket", None)
    if isinstance(sock, socket.socket):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def open_stream(url: str, *, baudrate: int = DEFAULT_BAUDRATE,
                timeout: float = DEFAULT_BYTE_TIMEOUT_S) -> Stream:
    """Open a byte stream to *url* (see the module header); TransientError when unreachable."""
    return Stream(url, baudrate=baudrate, timeout=timeout)
