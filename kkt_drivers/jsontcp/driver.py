"""A register behind a length-prefixed JSON bridge over TCP (``PROTOCOL.md``) as a Driver.

URL grammar::

    jsontcp://HOST:PORT?login=kassa&password_env=KASSA_PASSWORD&connection_password_env=KASSA_CONN_PASSWORD
        [&timeout=5][&close_timeout=30]

Passwords come from the environment variables the URL names (never from the URL itself).
``timeout`` bounds every answer, ``close_timeout`` the answer to ``close_receipt`` (a register may
print for a while). Unknown options are refused with their name.

Errors by what may have happened: a link failure or a bad frame before ``close_receipt`` was
written is a TransientError (the register may keep an open, non-fiscal receipt; the worker cancels
it); once ``close_receipt`` is on the wire, any failure is an OutcomeUnknownError and the worker reads
the document back with ``document(n)`` and its 1192 tag.
"""
from __future__ import annotations

import datetime as dt
import itertools
import os
import select
import socket
import time
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from kkt_drivers import counters
from kkt_drivers.base import Driver
from kkt_drivers.counters import ShiftTotals
from kkt_drivers.errors import (
    DeviceStateError, DriverConfigError, KktError, OutcomeUnknownError, RejectedError, TransientError,
)
from kkt_drivers.jsontcp import protocol as p
from kkt_drivers.receipt import DeviceStatus, FiscalDocument, Receipt
from kkt_drivers.transport import send_all

OPTIONS = ("login", "password_env", "connection_password_env", "timeout", "close_timeout")
DEFAULT_PORT = 7790
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_CLOSE_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0

_CONDITIONS = {
    DeviceStateError.COND_PAPER_OUT, DeviceStateError.COND_COVER_OPEN, DeviceStateError.COND_SHIFT_EXPIRED,
    DeviceStateError.COND_SHIFT_CLOSED, DeviceStateError.COND_SHIFT_OPEN, DeviceStateError.COND_RECEIPT_OPEN,
    DeviceStateError.COND_FN_ERROR, DeviceStateError.COND_OTHER,
}


class _LinkError(Exception):
    """The session broke (link or framing); the driver decides the class by the command."""


class JsonTcpDriver(Driver):
    """One register behind the bridge; one TCP session at a time."""

    model = "jsontcp"
    reads_counters = True

    def __init__(self, host: str, port: int, *, login: str, password: str, connection_password: str,
                 timeout_s: float = DEFAULT_TIMEOUT_S, close_timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S) -> None:
        self.host, self.port = host, port
        self.login = login
        self._password = password
        self._connection_password = connection_password
        self.timeout_s = timeout_s
        self.close_timeout_s = close_timeout_s
        self._sock: socket.socket | None = None
        self._poll: select.poll | None = None
        self._reader: p.FrameReader | None = None
        #: the wait for each read of the answer in flight, milliseconds (set per command by _exchange)
        self._wait_ms = timeout_s * 1000.0
        self._session: str | None = None
        self._ids = itertools.count(1)

    @classmethod
    def from_url(cls, url: str) -> "JsonTcpDriver":
        """Build from a ``jsontcp://`` URL (see the module header)."""
        parts = urlsplit(url)
        if parts.scheme != "jsontcp" or not parts.hostname:
            raise DriverConfigError(f"jsontcp URL {url!r} must be jsontcp://HOST:PORT?…")
        if parts.username or parts.password:
            raise DriverConfigError("jsontcp URL must not carry credentials; use login= and password_env=")
        opts: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key not in OPTIONS:
                raise DriverConfigError(f"jsontcp URL option {key!r} is unknown (options: {', '.join(OPTIONS)})")
            opts[key] = value
        secrets = {}
        for opt in ("password_env", "connection_password_env"):
            name = opts.get(opt)
            if not name:
                raise DriverConfigError(f"jsontcp URL lacks {opt}")
            if name not in os.environ:
                raise DriverConfigError(f"environment variable {name} ({opt}) is not set")
            secrets[opt] = os.environ[name]
        if not opts.get("login"):
            raise DriverConfigError("jsontcp URL lacks login")
        try:
            timeout = float(opts.get("timeout", DEFAULT_TIMEOUT_S))
            close_timeout = float(opts.get("close_timeout", DEFAULT_CLOSE_TIMEOUT_S))
            port = parts.port or DEFAULT_PORT
        except ValueError as exc:
            raise DriverConfigError(f"jsontcp URL: {exc}") from exc
        if not (timeout > 0 and close_timeout > 0):   # also refuses nan
            # (settimeout refused a negative one only at the first command; poll would wait forever)
            raise DriverConfigError(f"jsontcp URL: timeout and close_timeout must be positive seconds "
                                    f"(got {timeout}, {close_timeout})")
        return cls(parts.hostname, port, login=opts["login"], password=secrets["password_env"],
                   connection_password=secrets["connection_password_env"], timeout_s=timeout,
                   close_timeout_s=close_timeout)

    # -- session ---------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the TCP connection and log in; TransientError if unreachable, config error if refused."""
        if self._session is not None:
            return
        try:
            self._open_socket()
            ans = self._exchange({"id": next(self._ids), "cmd": "login", "login": self.login,
                                  "password": self._password, "connection_password": self._connection_password},
                                 self.timeout_s)
        except (OSError, _LinkError) as exc:
            self.disconnect()
            raise TransientError(f"jsontcp bridge {self.host}:{self.port} unreachable: {exc}") from exc
        if not ans.get("ok"):
            self.disconnect()
            err = ans.get("error") or {}
            raise DriverConfigError(f"jsontcp login refused: {err.get('message')}",
                                    vendor_code=f"{err.get('class')}:{err.get('code')}")
        self._session = str(ans["result"]["session"])

    def _open_socket(self) -> None:
        """Connect; the socket is non-blocking with our own poll (see _exchange), read through a FrameReader."""
        self._sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT_S)
        self._sock.setblocking(False)
        self._poll = select.poll()
        self._poll.register(self._sock, select.POLLIN)
        self._reader = p.FrameReader(self._recv_into)

    def disconnect(self) -> None:
        """Say logout when the session is alive, then close; never raises."""
        sock, session = self._sock, self._session
        self._sock, self._session = None, None
        # bytes of a broken session must never be read as the next session's answers
        self._poll, self._reader = None, None
        if sock is None:
            return
        try:
            if session is not None:
                sock.settimeout(0.5)
                sock.sendall(p.encode({"id": next(self._ids), "cmd": "logout", "session": session}))
        except OSError:
            pass
        finally:
            sock.close()

    def _exchange(self, message: dict[str, Any], timeout: float, sent: Callable[[], None] | None = None) -> dict[str, Any]:
        """Send *message* and read the frame that answers it; _LinkError for any link or framing failure.

        *timeout* bounds the whole send and, as before, each wait for more bytes of the answer (a
        socket timeout per recv). The socket is non-blocking and waits are our own poll: on a socket
        with a timeout Python polls before every send and every recv and re-sets the blocking mode on
        each ``settimeout`` — measured 7 system calls per command (ioctl, poll, send, poll+recv for
        the length, poll+recv for the body), now usually 3 (send, poll, recv_into of the whole frame).
        Each of them releases and retakes the GIL, which 200 lane threads of a farm contend for. (In
        the farm benchmark that saved ~0.2 s of ~8 s of worker CPU: the round trip itself, once per
        command, is most of a command's ~125 us there; fewer commands per receipt would be the lever.)
        """
        assert self._sock is not None and self._reader is not None
        try:
            send_all(self._sock, p.encode(message), timeout)
            if sent is not None:
                sent()
            self._wait_ms = timeout * 1000.0
            while True:
                ans = self._reader.read_frame()
                if ans.get("id") in (message["id"], None):
                    return ans
                # an answer to an earlier, abandoned command cannot arrive on a fresh session; skip defensively
        except (OSError, p.FrameError) as exc:
            raise _LinkError(f"{type(exc).__name__}: {exc}") from exc

    def _recv_into(self, view: memoryview) -> int:
        """What has arrived (up to ``len(view)`` bytes), waiting at most ``_wait_ms`` for the first byte
        (as ``recv`` on a socket with that timeout); 0 at EOF, TimeoutError when nothing came."""
        assert self._sock is not None and self._poll is not None
        wait_ms = self._wait_ms
        deadline = time.monotonic() + wait_ms / 1000.0
        while True:
            if not self._poll.poll(max(wait_ms, 0.0)):   # a negative poll timeout waits forever
                raise TimeoutError("timed out")
            try:
                return self._sock.recv_into(view)
            except BlockingIOError:
                # a wakeup without data: wait for the rest of this recv's timeout, not a fresh one
                wait_ms = max(deadline - time.monotonic(), 0.0) * 1000.0

    def _command(self, cmd: str, *, closing: bool = False, **params: Any) -> dict[str, Any]:
        """Run *cmd*; its result. *closing*: the command may fiscalize, so a lost answer is unknown."""
        self.connect()
        message = {"id": next(self._ids), "cmd": cmd, "session": self._session, **params}
        try:
            # the closing frame on the wire is the step "close_sent" (crash-point tests stop right there)
            ans = self._exchange(message, self.close_timeout_s if closing else self.timeout_s,
                                 (lambda: self._step("close_sent")) if closing else None)
        except _LinkError as exc:
            self.disconnect()
            if closing:
                raise OutcomeUnknownError(f"no answer to {cmd}: {exc}") from exc
            raise TransientError(f"jsontcp {cmd}: {exc}") from exc
        if ans.get("ok"):
            result = ans.get("result")
            return result if isinstance(result, dict) else {}
        raise self._error(cmd, ans.get("error") or {}, closing)

    def _error(self, cmd: str, err: dict[str, Any], closing: bool) -> KktError:
        cls, code, text = err.get("class"), err.get("code"), err.get("message", "")
        vendor = f"{cls}:{code}"
        msg = f"jsontcp {cmd}: {text}"
        if cls == p.CLASS_DEVICE:
            cond = err.get("condition") if err.get("condition") in _CONDITIONS else DeviceStateError.COND_OTHER
            return DeviceStateError(msg, condition=cond, vendor_code=vendor)
        if cls == p.CLASS_REJECTED:
            return RejectedError(msg, vendor_code=vendor)
        # protocol / auth errors end the session on the bridge's side
        self.disconnect()
        if closing:
            return OutcomeUnknownError(msg, vendor_code=vendor)
        return TransientError(msg, vendor_code=vendor)

    # -- the driver contract ---------------------------------------------------------------
    def status(self) -> DeviceStatus:
        r = self._command("status")
        opened = r.get("shift_opened_at")
        return DeviceStatus(
            register_serial=str(r["register_serial"]), fn_serial=str(r["fn_serial"]),
            last_fd_number=int(r["last_fd"]), shift_open=bool(r["shift_open"]),
            shift_number=int(r["shift_number"]), shift_opened_at=dt.datetime.fromisoformat(opened) if opened else None,
            shift_expired=bool(r["shift_expired"]), receipt_open=bool(r["receipt_open"]),
            paper_ok=bool(r.get("paper_ok", True)), model=self.model)

    def _doc(self, r: dict[str, Any]) -> FiscalDocument:
        try:
            return p.document_from_wire(r["document"])
        except (KeyError, TypeError, ValueError) as exc:
            raise OutcomeUnknownError(f"malformed document in the answer: {exc!r}") from exc

    def open_shift(self, cashier: str | None = None) -> FiscalDocument:
        return self._doc(self._command("open_shift", cashier=cashier))

    def close_shift(self, cashier: str | None = None) -> FiscalDocument:
        return self._doc(self._command("close_shift", cashier=cashier))

    def x_report(self) -> None:
        self._command("x_report")

    def cancel_receipt(self) -> None:
        self._command("cancel_receipt")

    def shift_totals(self, shift: int | None = None) -> ShiftTotals | None:
        """``shift_totals`` (PROTOCOL.md §3): the bridge's register counters, or None for a shift it
        no longer holds. A bridge without the command answers ``rejected`` (RejectedError)."""
        r = self._command("shift_totals", shift=shift)
        if not r.get("totals"):
            return None
        try:
            return counters.from_json(r["totals"])
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise TransientError(f"jsontcp shift_totals: malformed totals: {exc!r}") from exc

    def document(self, fd_number: int) -> FiscalDocument | None:
        r = self._command("document", number=fd_number)
        return self._doc(r) if r.get("document") else None

    def fiscalize(self, receipt: Receipt) -> FiscalDocument:
        """open_receipt → add_item… → add_requisite… → close_receipt (see the module header)."""
        corr = None
        if receipt.correction is not None:
            c = receipt.correction
            corr = {"1173": 0 if c.self_made else 1, "1178": c.corrected_date.isoformat(), "1179": c.order_number}
        self._command("open_receipt", operation=int(receipt.operation), correction=corr)
        self._step("receipt_opened")
        for item in receipt.items:
            self._command("add_item", item=p.item_to_wire(item))
        for tag, value in _requisites(receipt):
            self._command("add_requisite", tag=tag, value=value)
        r = self._command("close_receipt", closing=True, tax_system=int(receipt.tax_system),
                          payments=[p.payment_to_wire(x) for x in receipt.payments])
        doc = self._doc(r)
        self._step("register_answered")
        return doc


def _requisites(receipt: Receipt) -> list[tuple[int, object]]:
    pairs: list[tuple[int, object]] = [(1192, receipt.tag)]
    for tag, value in ((1008, receipt.customer_contact), (1187, receipt.settlement_place),
                       (1117, receipt.company_email), (1021, receipt.cashier), (1203, receipt.cashier_inn)):
        if value:
            pairs.append((tag, value))
    if receipt.internet:
        pairs.append((1125, 1))
    return pairs
