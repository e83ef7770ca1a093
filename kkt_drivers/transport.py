"""Byte streams to registers: the only module that touches pyserial.

URL grammar (pyserial's, see ``serial.serial_for_url``)::

    socket://192.168.137.111:7778      TCP (Ethernet, Wi-Fi, USB-RNDIS registers)
    /dev/ttyUSB0                        a serial port; ``baudrate`` applies
    rfc2217://host:port                 a serial port behind an RFC 2217 server
    spy://socket://host:port?file=x.log pyserial's spy wrapper for field debugging

A plain ``socket://host:port`` is served by :class:`_TcpPort`, our own non-blocking socket with a
receive buffer, not by pyserial's socket handler: that one costs a ``select`` before every
``recv`` and after every ``send`` plus several Python objects per call, and the Shtrih protocol
reads a byte at a time (measured: 60 % of the driver's CPU per receipt, see
``bench/shtrih_cpu.py``). The bytes on the wire are the same; only fewer system calls carry them.
Every other URL (serial, rfc2217, spy, ``socket://…?options``) still goes through pyserial.

Every serial or socket failure leaves this module as :class:`~kkt_drivers.errors.TransientError`
(``raise … from exc``), so protocol code never sees a pyserial exception.
"""
from __future__ import annotations

import select
import socket
import time
from urllib.parse import urlsplit

import serial

from kkt_drivers.errors import TransientError

#: default per-read timeout while waiting for one byte, seconds
DEFAULT_BYTE_TIMEOUT_S = 1.0
#: write timeout, seconds
DEFAULT_WRITE_TIMEOUT_S = 5.0
#: default serial speed (newer Shtrih models ship with 115200)
DEFAULT_BAUDRATE = 115200
#: TCP connect timeout, seconds (pyserial's socket handler uses the same 5 s)
CONNECT_TIMEOUT_S = 5.0
#: one recv takes at most this much (a Shtrih frame is at most 258 bytes)
RECV_CHUNK = 4096


class LinkClosedError(TransientError):
    """The peer closed the connection (TCP) or the port vanished."""


class _PortClosed(OSError):
    """The peer closed the TCP connection (recv gave EOF)."""


def send_all(sock: socket.socket, data: bytes, timeout: float) -> None:
    """All of *data* on the non-blocking *sock* within *timeout* seconds (as ``sendall`` on a socket with
    that timeout): one ``send`` unless the kernel's buffer is full (a peer that stopped reading), then a
    poll for room; TimeoutError (an OSError) when the time is up."""
    view = memoryview(data)
    deadline = 0.0
    room: select.poll | None = None
    while True:
        try:
            view = view[sock.send(view):]
        except BlockingIOError:
            pass
        if not view:
            return
        now = time.monotonic()
        if room is None:
            deadline = now + timeout
            # poll, not select: a farm's worker may hold more than FD_SETSIZE (1024) descriptors
            room = select.poll()
            room.register(sock, select.POLLOUT)
        if now >= deadline or not room.poll((deadline - now) * 1000.0):
            raise TimeoutError("write timeout")


class _TcpPort:
    """A connected non-blocking TCP socket with a receive buffer.

    A read polls once and takes everything that has arrived (up to :data:`RECV_CHUNK`), so the
    next byte-sized reads of the same frame cost no system call; a write is one ``send`` unless
    the socket buffer is full. Raises OSError (``_PortClosed`` on EOF); :class:`Stream` wraps it.
    """

    def __init__(self, host: str, port: int, *, write_timeout: float) -> None:
        self._sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
        try:
            # the protocol ping-pongs single bytes (see _no_delay)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock.setblocking(False)
            self._poll = select.poll()
            self._poll.register(self._sock, select.POLLIN)
        except OSError:
            self._sock.close()
            raise
        self._buf = bytearray()
        self._write_timeout = write_timeout

    def write(self, data: bytes) -> None:
        send_all(self._sock, data, self._write_timeout)

    def read(self, n: int, timeout: float) -> bytes:
        buf = self._buf
        if len(buf) < n:
            deadline = time.monotonic() + timeout
            left = timeout
            while len(buf) < n:
                # poll() takes milliseconds; 0 still looks once at what has already arrived
                if not self._poll.poll(max(left, 0.0) * 1000.0):
                    break
                try:
                    chunk = self._sock.recv(RECV_CHUNK)
                except BlockingIOError:
                    chunk = None  # a spurious wakeup: wait again
                if chunk == b"":
                    raise _PortClosed("socket disconnected")
                if chunk:
                    buf += chunk
                left = deadline - time.monotonic()
                if left <= 0 and len(buf) < n:
                    break
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def discard_input(self) -> None:
        """Drop the buffer and whatever the kernel holds; EOF is left for the next read to report
        (as pyserial's socket handler does)."""
        self._buf.clear()
        # poll(0) first: in the usual case (nothing stale) one system call and no exception
        while self._poll.poll(0):
            try:
                if not self._sock.recv(RECV_CHUNK):
                    return
            except BlockingIOError:
                return

    def close(self) -> None:
        self._sock.close()


def _tcp_address(url: str) -> tuple[str, int] | None:
    """``(host, port)`` of a plain ``socket://host:port`` URL; None for anything else (pyserial's)."""
    if not url.startswith("socket://"):
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.query or parts.path or not parts.hostname or port is None:
        return None
    return parts.hostname, port


class _SerialPort:
    """A pyserial port object (serial, rfc2217, spy, ``socket://…?options``) with the :class:`_TcpPort`
    interface; raises what pyserial raises (SerialException is an OSError)."""

    def __init__(self, url: str, *, baudrate: int, timeout: float, write_timeout: float) -> None:
        self._port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout, write_timeout=write_timeout)
        _no_delay(self._port)

    def write(self, data: bytes) -> None:
        self._port.write(data)
        self._port.flush()

    def read(self, n: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        out = bytearray()
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._port.timeout = left
            chunk = self._port.read(n - len(out))
            if chunk:
                out += chunk
        return bytes(out)

    def discard_input(self) -> None:
        self._port.reset_input_buffer()

    def close(self) -> None:
        self._port.close()


class Stream:
    """A byte stream with deadline-based reads over one port: our TCP socket or a pyserial port."""

    def __init__(self, url: str, *, baudrate: int = DEFAULT_BAUDRATE,
                 timeout: float = DEFAULT_BYTE_TIMEOUT_S,
                 write_timeout: float = DEFAULT_WRITE_TIMEOUT_S) -> None:
        self.url = url
        tcp = _tcp_address(url)
        try:
            self._port: _TcpPort | _SerialPort = (
                _TcpPort(*tcp, write_timeout=write_timeout) if tcp is not None
                else _SerialPort(url, baudrate=baudrate, timeout=timeout, write_timeout=write_timeout))
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TransientError(f"cannot open {url}: {exc}") from exc

    def write(self, data: bytes) -> None:
        """Write all of *data*; TransientError on any failure."""
        try:
            self._port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise LinkClosedError(f"write to {self.url} failed: {exc}") from exc

    def read_byte(self, timeout: float) -> int | None:
        """One byte, or None when nothing arrived within *timeout* seconds."""
        data = self.read(1, timeout)
        return data[0] if data else None

    def read(self, n: int, timeout: float) -> bytes:
        """Up to *n* bytes arriving within *timeout* seconds (fewer means the deadline passed)."""
        try:
            return self._port.read(n, timeout)
        except (serial.SerialException, OSError) as exc:
            raise LinkClosedError(f"read from {self.url} failed: {exc}") from exc

    def discard_input(self) -> None:
        """Drop bytes already received and not read (leftovers of an earlier exchange)."""
        try:
            self._port.discard_input()
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
