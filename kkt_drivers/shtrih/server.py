"""A Shtrih-M register emulator on TCP: the real byte protocol on top of the shared register model.

Run it from a CLI with :func:`serve`, or in tests with :class:`ShtrihEmulatorServer` (a background
thread; use it as a context manager). One register = one state directory; clients may reconnect
at will. Link state (the answer not yet ACKed) belongs to the connection, so two clients never
see each other's answers; a new connection starts idle (ENQ → NAK). At most ``max_clients``
connections are served at once (more are closed at once), and a connection silent for
``idle_timeout_s`` is closed, as a register's TCP server frees its slot.
# GUESS: the real limit and idle timeout of the register's TCP server (table 21) are not in our
# sources; the defaults below are ours.

Link behaviour (protocol v1.16 Appendix 2): ENQ → NAK when idle, ACK + the pending answer when
one is waiting; a frame with a good LRC → ACK, execute, send the answer, wait for ACK; a bad LRC
or a byte timeout inside a frame → NAK. Optionally a 0xFF after the host's ACK (TCP/RNDIS quirk).

Faults (``faults_options``: name → probability or ``first:N``, as in
:mod:`kkt_drivers.emulator.faults`):

| name                    | effect on the wire                                                     |
|-------------------------|------------------------------------------------------------------------|
| fail_before_send        | the first command of a receipt (8D/FF46) is swallowed, link dropped     |
| lose_reply_before_close | FF45 is swallowed unexecuted, link dropped (receipt stays open)        |
| lose_reply_after_close  | FF45 executes (document written), then the link drops without answer   |
| drop_answer             | the command executes, its answer stays pending but is not sent         |
| corrupt_lrc             | the answer goes out with a wrong LRC (the host NAKs and asks again)    |
| paper_out_mid_receipt   | model fault: paper runs out on an item (0x6B)                          |
| fn_error                | model fault: the FN refuses the close (0x03)                           |

Plus numbers: ``answer_delay_s`` (every answer), ``z_report_delay_s`` (slow Z report),
``ff_after_ack``. Unimplemented commands answer 0x37.
"""
from __future__ import annotations

import argparse
import logging
import socket
import socketserver
import threading
import time
import zlib
from typing import Any

from kkt_drivers.emulator.faults import FAULT_NAMES, Faults
from kkt_drivers.emulator.model import RegisterModel
from kkt_drivers.emulators import RunningEmulator
from kkt_drivers.shtrih import protocol as p
from kkt_drivers.shtrih.emulation import ShtrihEmulation

log = logging.getLogger(__name__)

WIRE_FAULTS = ("drop_answer", "corrupt_lrc")
DEFAULT_PORT = 7778
#: how long to wait for the rest of a frame once STX arrived (lenient, as over TCP)
FRAME_BYTE_TIMEOUT_S = 0.5
#: how long to wait for the host's ACK/NAK after an answer
ANSWER_ACK_TIMEOUT_S = 2.0
#: connections served at once (GUESS) and how long a silent one is kept (GUESS), seconds
DEFAULT_MAX_CLIENTS = 4
DEFAULT_IDLE_TIMEOUT_S = 120.0

_RECEIPT_START = (p.OPEN_RECEIPT, p.FN_OPERATION)


def parse_faults(options: dict[str, str], seed: int | None = None) -> Faults:
    """Model and wire faults in one :class:`Faults`; ValueError names an unknown fault."""
    model_opts = {k: v for k, v in options.items() if k in FAULT_NAMES}
    faults = Faults.parse(model_opts, seed=seed)
    for name, raw in options.items():
        if name in FAULT_NAMES:
            continue
        if name not in WIRE_FAULTS:
            raise ValueError(f"unknown fault {name!r} (known: {', '.join(FAULT_NAMES + WIRE_FAULTS)})")
        # the model's parser knows the value grammar; the fresh rule is then filed under our name
        faults.rules[name] = Faults.parse({"fn_error": raw}).rules["fn_error"]
    return faults


def register_number(serial: str) -> int:
    """The numeric serial a Shtrih register reports for the model's *serial* string."""
    return int(serial) if serial.isdigit() else zlib.crc32(serial.encode())


class _Disconnect(Exception):
    """Drop the client's connection now (a wire fault or the peer went away)."""


class _Handler(socketserver.BaseRequestHandler):
    server: "_TCPServer"
    #: this connection's answer not yet ACKed by the host (ENQ → ACK + this)
    pending: bytes | None = None

    def handle(self) -> None:
        reg = self.server.register
        # small control bytes must not wait for Nagle: a real register answers within ms
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not reg._track(self.request, add=True):
            return  # over the connection limit: closed at once
        self.pending = None
        try:
            self._loop(reg)
        except (_Disconnect, OSError):
            pass
        finally:
            reg._track(self.request, add=False)

    # -- byte I/O --------------------------------------------------------------------------
    def _recv(self, n: int, timeout: float | None) -> bytes:
        sock: socket.socket = self.request
        sock.settimeout(timeout)
        out = bytearray()
        while len(out) < n:
            try:
                chunk = sock.recv(n - len(out))
            except socket.timeout:
                return bytes(out)
            if not chunk:
                raise _Disconnect()
            out += chunk
        return bytes(out)

    def _send(self, data: bytes) -> None:
        self.request.sendall(data)

    # -- protocol --------------------------------------------------------------------------
    def _loop(self, reg: "ShtrihEmulatorServer") -> None:
        while True:
            got = self._recv(1, reg.idle_timeout_s)
            if not got:
                raise _Disconnect()  # idle too long: free the slot
            b = got[0]
            if b == p.ENQ:
                frame = self.pending
                if frame is None:
                    self._send(bytes([p.NAK]))
                else:
                    self._send(bytes([p.ACK]))
                    self._send_answer(reg, frame)
            elif b == p.STX:
                self._frame(reg)
            # stray ACK/NAK/0xFF bytes are ignored, as the device does

    def _frame(self, reg: "ShtrihEmulatorServer") -> None:
        head = self._recv(1, FRAME_BYTE_TIMEOUT_S)
        body = self._recv(head[0] + 1, FRAME_BYTE_TIMEOUT_S) if head else b""
        if not head or len(body) != head[0] + 1 or p.lrc(head + body[:-1]) != body[-1] or head[0] == 0:
            self._send(bytes([p.NAK]))
            return
        payload = body[:-1]
        try:
            cmd, _ = p.split_command(payload)
        except p.FrameError:
            self._send(bytes([p.NAK]))  # a lone 0xFF: not a command the device could act on
            return
        faults = reg.faults
        if cmd in _RECEIPT_START and not reg.model.status().receipt_open and faults.fire("fail_before_send"):
            raise _Disconnect()
        if cmd == p.FN_CLOSE_RECEIPT and faults.fire("lose_reply_before_close"):
            raise _Disconnect()
        self._send(bytes([p.ACK]))
        with reg._lock:
            answer = reg.emulation.handle(payload)
            frame = p.encode_frame(answer)
            self.pending = frame
        if cmd == p.FN_CLOSE_RECEIPT and faults.fire("lose_reply_after_close"):
            self.pending = None
            raise _Disconnect()
        if faults.fire("drop_answer"):
            return
        if reg.answer_delay_s and (reg.delayed_commands is None or cmd in reg.delayed_commands):
            time.sleep(reg.answer_delay_s)
        self._send_answer(reg, frame)

    def _send_answer(self, reg: "ShtrihEmulatorServer", frame: bytes) -> None:
        while True:
            if reg.faults.fire("corrupt_lrc"):
                self._send(frame[:-1] + bytes([frame[-1] ^ 0x5A]))
            else:
                self._send(frame)
            reply = self._recv(1, ANSWER_ACK_TIMEOUT_S)
            if reply and reply[0] == p.ENQ:
                # the host asks again instead of acknowledging: answer as to any ENQ
                self._send(bytes([p.ACK]))
                continue
            if reply and reply[0] == p.ACK:
                if self.pending is frame:
                    self.pending = None
                if reg.ff_after_ack:
                    self._send(bytes([p.FILLER]))
            # NAK or silence: the answer stays pending until the host sends ENQ
            return


class _TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    register: "ShtrihEmulatorServer"


class ShtrihEmulatorServer:
    """An emulated Shtrih-M register listening on TCP (``port=0`` picks a free port)."""

    def __init__(self, state_dir: str, host: str = "127.0.0.1", port: int = 0, *,
                 serial: str = "0000000000000001", faults_options: dict[str, str] | None = None,
                 seed: int | None = None, answer_delay_s: float = 0.0, z_report_delay_s: float = 0.0,
                 ff_after_ack: bool = False, fsync: bool = True, nano: bool = False,
                 tables: dict[tuple[int, int, int], int | str] | None = None,
                 unlicensed_rows: set[int] | frozenset[int] = frozenset(),
                 max_clients: int = DEFAULT_MAX_CLIENTS, idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S,
                 **model_kwargs: Any) -> None:
        self.faults = parse_faults(faults_options or {}, seed=seed)
        self.model = RegisterModel(state_dir, serial=serial, faults=self.faults, fsync=fsync, **model_kwargs)
        self.emulation = ShtrihEmulation(self.model, register_serial=register_number(serial),
                                         z_report_delay_s=z_report_delay_s, nano=nano,
                                         unlicensed_rows=unlicensed_rows)
        for (t, r, f), value in (tables or {}).items():
            self.emulation.set_table(t, r, f, value)
        self.max_clients = max_clients
        self.idle_timeout_s = idle_timeout_s
        self.answer_delay_s = answer_delay_s
        #: the commands ``answer_delay_s`` applies to (None: all)
        self.delayed_commands: set[int] | None = None
        self.ff_after_ack = ff_after_ack
        self._lock = threading.Lock()
        self._clients: set[socket.socket] = set()
        self._tcp = _TCPServer((host, port), _Handler)
        self._tcp.register = self
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``."""
        host, port = self._tcp.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """``socket://host:port`` for pyserial / the driver's transport."""
        host, port = self.address
        return f"socket://{host}:{port}"

    def _track(self, sock: socket.socket, *, add: bool) -> bool:
        """Register (or forget) a client; False when adding would exceed :attr:`max_clients`."""
        with self._lock:
            if not add:
                self._clients.discard(sock)
                return True
            if len(self._clients) >= self.max_clients:
                return False
            self._clients.add(sock)
            return True

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop`."""
        self._tcp.serve_forever(poll_interval=0.1)

    def start(self) -> "ShtrihEmulatorServer":
        """Serve in a background daemon thread."""
        self._thread = threading.Thread(target=self.serve_forever, name="shtrih-emulator", daemon=True)
        self._thread.start()
        return self

    def drop_clients(self) -> None:
        """Close every client connection (a cable pulled)."""
        with self._lock:
            clients = list(self._clients)
        for sock in clients:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        """Stop serving, drop clients, release the port."""
        self._tcp.shutdown()
        self.drop_clients()
        self._tcp.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "ShtrihEmulatorServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(state_dir: str, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
          serial: str = "0000000000000001", faults_options: dict[str, str] | None = None,
          seed: int | None = None, **options: Any) -> None:
    """Run an emulated Shtrih-M register in the foreground (for a CLI) until interrupted."""
    server = ShtrihEmulatorServer(state_dir, host, port, serial=serial, faults_options=faults_options,
                                  seed=seed, **options)
    log.info("shtrih emulator for %s listening on %s", state_dir, server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.drop_clients()
        server._tcp.server_close()


#: driver options with short timeouts, for tests that inject faults
TEST_DRIVER_OPTIONS = "timeout=1&status_timeout=0.4&long_timeout=3&byte_timeout=0.3"


def start_emulator(state_dir: str, *, host: str = "127.0.0.1", port: int = 0,
                   faults: dict[str, str] | None = None, seed: int | None = None, fsync: bool = True,
                   **options: Any) -> RunningEmulator:
    """Serve an emulated Shtrih-M in a background thread (see :mod:`kkt_drivers.emulators`)."""

    server = ShtrihEmulatorServer(state_dir, host, port, faults_options=faults, seed=seed, fsync=fsync,
                                  **options).start()
    h, prt = server.address
    return RunningEmulator(url=f"shtrih+socket://{h}:{prt}", model=server.model, stop=server.stop,
                           test_url=f"shtrih+socket://{h}:{prt}?{TEST_DRIVER_OPTIONS}", server=server)


def start_nano_emulator(state_dir: str, **kwargs: Any) -> RunningEmulator:
    """The same register answering as a Shtrih-Nano (its FC name and tax bytes for 22 %)."""
    return start_emulator(state_dir, nano=True, **kwargs)


def main(argv: list[str] | None = None) -> None:
    """``python -m kkt_drivers.shtrih.server STATE_DIR [--port 7778] [--fault name=value …]``."""
    ap = argparse.ArgumentParser(description="Emulated Shtrih-M register on TCP")
    ap.add_argument("state_dir")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT)
    ap.add_argument("--serial", default="0000000000000001")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--fault", action="append", default=[], metavar="NAME=VALUE",
                    help="probability or first:N, e.g. lose_reply_after_close=first:1")
    ap.add_argument("--answer-delay-s", type=float, default=0.0)
    ap.add_argument("--z-report-delay-s", type=float, default=0.0)
    ap.add_argument("--ff-after-ack", action="store_true")
    ap.add_argument("--nano", action="store_true", help="answer as a Shtrih-Nano (its tax bytes)")
    ap.add_argument("--table", action="append", default=[], metavar="T,R,F=VALUE",
                    help="set a table field, e.g. 17,1,71=1 (VAT 22 %% substitution on)")
    args = ap.parse_args(argv)
    tables = {}
    for spec in args.table:
        addr, _, value = spec.partition("=")
        t, r, f = (int(x) for x in addr.split(","))
        tables[(t, r, f)] = int(value) if value.lstrip("-").isdigit() else value
    faults = dict(f.split("=", 1) for f in args.fault)
    logging.basicConfig(level=logging.INFO)
    serve(args.state_dir, args.host, args.port, serial=args.serial, faults_options=faults, seed=args.seed,
          answer_delay_s=args.answer_delay_s, z_report_delay_s=args.z_report_delay_s,
          ff_after_ack=args.ff_after_ack, nano=args.nano, tables=tables)


if __name__ == "__main__":
    main()
