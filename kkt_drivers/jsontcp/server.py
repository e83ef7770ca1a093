"""A register behind the length-prefixed JSON bridge protocol (``PROTOCOL.md``), on the register model.

Each TCP connection is one session: the first frame must be ``login``; a bad frame (length past
the limit, invalid UTF-8 or JSON, a peer stalling mid-frame) or a bad login ends that session with
an error frame where the peer can still hear one. The server itself keeps serving other sessions.

Faults (``faults``: name → probability or ``first:N``, as in :mod:`kkt_drivers.emulator.faults`):

| name                    | effect on the wire                                                  |
|-------------------------|---------------------------------------------------------------------|
| fail_before_send        | ``open_receipt`` is swallowed unexecuted, the connection dropped     |
| lose_reply_before_close | ``close_receipt`` is swallowed unexecuted, connection dropped        |
| lose_reply_after_close  | ``close_receipt`` executes (document written), then the drop         |
| paper_out_mid_receipt   | model fault on ``add_item`` → error class device, condition paper_out |
| fn_error                | model fault at close → error class device, condition fn_error        |
"""
from __future__ import annotations

import argparse
import logging
import os
import secrets
import socket
import socketserver
import threading
from typing import Any

from kkt_drivers.emulator.faults import Faults
from kkt_drivers.emulator.model import RegisterModel
from kkt_drivers.emulators import RunningEmulator
from kkt_drivers.errors import DeviceStateError, RejectedError
from kkt_drivers.jsontcp import protocol as p
from kkt_drivers.receipt import Operation, TaxSystem

log = logging.getLogger(__name__)

DEFAULT_PORT = 7790
EMULATOR_LOGIN = "kassa"
#: environment variables the emulator's URL names (a password never sits in a URL)
PASSWORD_ENV = "JSONTCP_EMULATOR_PASSWORD"
CONNECTION_PASSWORD_ENV = "JSONTCP_EMULATOR_CONNECTION_PASSWORD"
EMULATOR_PASSWORD = "cashier-secret"
EMULATOR_CONNECTION_PASSWORD = "bridge-secret"
#: how long the server waits for the rest of a frame once its first byte came, and for the login
FRAME_TIMEOUT_S = 2.0
#: an idle session is closed after this long without a frame
IDLE_TIMEOUT_S = 300.0


class _Drop(Exception):
    """Drop the connection now without an answer (a wire fault)."""


class _EndSession(Exception):
    """Answer, then end the session."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(answer.get("error", {}).get("message", ""))
        self.answer = answer


def _error(msg_id: Any, cls: str, message: str, *, code: int = 0, condition: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"class": cls, "code": code, "message": message}
    if condition:
        err["condition"] = condition
    return {"id": msg_id, "ok": False, "error": err}


class _Session(socketserver.BaseRequestHandler):
    server: "_TCPServer"

    def handle(self) -> None:
        sock: socket.socket = self.request
        srv = self.server.owner
        session: str | None = None
        while True:
            sock.settimeout(FRAME_TIMEOUT_S if session is None else IDLE_TIMEOUT_S)
            try:
                msg = p.read_frame(self._recv, on_header=lambda: sock.settimeout(FRAME_TIMEOUT_S))
            except p.PeerClosed as exc:
                if exc.mid_frame:
                    log.warning("jsontcp: %s; session ended", exc)
                return
            except p.FrameError as exc:
                log.warning("jsontcp: bad frame (%s); session ended", exc)
                self._send(_error(None, p.CLASS_PROTOCOL, str(exc), code=1))
                return
            except OSError as exc:   # a stall mid-frame or before login: the peer is gone for us
                log.warning("jsontcp: %s; session ended", exc)
                return
            msg_id = msg.get("id")
            try:
                if session is None:
                    session = srv.login(msg)
                    self._send({"id": msg_id, "ok": True, "result": {"session": session,
                                                                     "protocol": p.PROTOCOL_VERSION}})
                    continue
                if msg.get("session") != session:
                    raise _EndSession(_error(msg_id, p.CLASS_AUTH, "wrong or missing session key", code=3))
                if msg.get("cmd") == "logout":
                    self._send({"id": msg_id, "ok": True, "result": {}})
                    return
                self._send({"id": msg_id, "ok": True, "result": srv.execute(msg)})
            except _EndSession as exc:
                self._send(exc.answer)
                return
            except _Drop:
                return
            except DeviceStateError as exc:
                self._send(_error(msg_id, p.CLASS_DEVICE, str(exc), code=10, condition=exc.condition))
            except RejectedError as exc:
                self._send(_error(msg_id, p.CLASS_REJECTED, str(exc), code=20))
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                self._send(_error(msg_id, p.CLASS_REJECTED, f"bad parameters: {exc!r}", code=21))

    def _recv(self, n: int) -> bytes:
        return self.request.recv(n)

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self.request.sendall(p.encode(message))
        except OSError:
            pass   # the peer is gone; the session ends either way


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: "JsonTcpEmulatorServer"


class JsonTcpEmulatorServer:
    """The emulated register behind the bridge protocol, serving in a background thread."""

    def __init__(self, state_dir: str, host: str = "127.0.0.1", port: int = 0, *,
                 faults_options: dict[str, str] | None = None, seed: int | None = None, fsync: bool = True,
                 serial: str = "0000000000000001", login: str = EMULATOR_LOGIN,
                 password: str = EMULATOR_PASSWORD, connection_password: str = EMULATOR_CONNECTION_PASSWORD) -> None:
        self.faults = Faults.parse(faults_options or {}, seed=seed)
        self.model = RegisterModel(state_dir, serial=serial, faults=self.faults, fsync=fsync)
        self.credentials = (login, password, connection_password)
        self._tcp = _TCPServer((host, port), _Session)
        self._tcp.owner = self
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._tcp.server_address[:2]
        return str(host), int(port)

    # -- session -----------------------------------------------------------------------------
    def login(self, msg: dict[str, Any]) -> str:
        """A session key for a good ``login`` frame; _EndSession otherwise."""
        if msg.get("cmd") != "login":
            raise _EndSession(_error(msg.get("id"), p.CLASS_AUTH, "the first command must be login", code=2))
        given = (msg.get("login"), msg.get("password"), msg.get("connection_password"))
        if given != self.credentials:
            raise _EndSession(_error(msg.get("id"), p.CLASS_AUTH, "login refused", code=4))
        return secrets.token_hex(16)

    # -- commands ----------------------------------------------------------------------------
    def execute(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Run one command on the model; its result object. Model errors propagate."""
        cmd, m = msg.get("cmd"), self.model
        if cmd == "status":
            st = m.status()
            return {"register_serial": st.register_serial, "fn_serial": st.fn_serial, "last_fd": st.last_fd_number,
                    "shift_open": st.shift_open, "shift_number": st.shift_number,
                    "shift_opened_at": st.shift_opened_at.isoformat() if st.shift_opened_at else None,
                    "shift_expired": st.shift_expired, "receipt_open": st.receipt_open, "paper_ok": st.paper_ok}
        if cmd == "open_shift":
            return {"document": p.document_to_wire(m.open_shift(msg.get("cashier")))}
        if cmd == "close_shift":
            return {"document": p.document_to_wire(m.close_shift(msg.get("cashier")))}
        if cmd == "x_report":
            m.x_report()
            return {}
        if cmd == "open_receipt":
            if self.faults.fire("fail_before_send"):
                raise _Drop()
            m.open_receipt(Operation(int(msg["operation"])), correction=msg.get("correction"))
            return {}
        if cmd == "add_item":
            m.add_item(p.item_from_wire(msg["item"]))
            return {}
        if cmd == "add_requisite":
            m.add_requisite(int(msg["tag"]), msg["value"])
            return {}
        if cmd == "close_receipt":
            if self.faults.fire("lose_reply_before_close"):
                raise _Drop()
            doc = m.close_receipt([p.payment_from_wire(x) for x in msg["payments"]],
                                  TaxSystem(int(msg["tax_system"])))
            if self.faults.fire("lose_reply_after_close"):
                raise _Drop()
            return {"document": p.document_to_wire(doc)}
        if cmd == "cancel_receipt":
            return {"cancelled": m.cancel_receipt()}
        if cmd == "last_document":
            last = m.status().last_fd_number
            doc = m.document(last) if last else None
            return {"document": p.document_to_wire(doc) if doc else None}
        if cmd == "document":
            doc = m.document(int(msg["number"]))
            return {"document": p.document_to_wire(doc) if doc else None}
        if cmd == "shift_totals":
            shift = msg.get("shift")
            totals = m.shift_totals(None if shift is None else int(shift))
            return {"totals": totals.to_json() if totals else None}
        raise RejectedError(f"unknown command {cmd!r} (known: {', '.join(p.COMMANDS)})")

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "JsonTcpEmulatorServer":
        self._thread = threading.Thread(target=self._tcp.serve_forever, daemon=True, name="jsontcp-emulator")
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._tcp.serve_forever()

    def stop(self) -> None:
        """Stop serving and release the port; idempotent."""
        if self._thread is None:
            return
        self._tcp.shutdown()
        self._tcp.server_close()
        self._thread.join(timeout=5)
        self._thread = None

    def url(self, *, test: bool = False) -> str:
        h, prt = self.address
        url = (f"jsontcp://{h}:{prt}?login={self.credentials[0]}&password_env={PASSWORD_ENV}"
               f"&connection_password_env={CONNECTION_PASSWORD_ENV}")
        return url + ("&timeout=1" if test else "")


def start_emulator(state_dir: str, *, host: str = "127.0.0.1", port: int = 0,
                   faults: dict[str, str] | None = None, seed: int | None = None, fsync: bool = True,
                   **options: Any) -> RunningEmulator:
    """Serve the emulated bridge in a background thread (see :mod:`kkt_drivers.emulators`).

    The URL names :data:`PASSWORD_ENV` and :data:`CONNECTION_PASSWORD_ENV`; they are set here (if
    unset) to the emulator's passwords so that a test process can open it.
    """
    os.environ.setdefault(PASSWORD_ENV, options.get("password", EMULATOR_PASSWORD))
    os.environ.setdefault(CONNECTION_PASSWORD_ENV, options.get("connection_password", EMULATOR_CONNECTION_PASSWORD))
    server = JsonTcpEmulatorServer(state_dir, host, port, faults_options=faults, seed=seed, fsync=fsync,
                                   **options).start()
    return RunningEmulator(url=server.url(), model=server.model, stop=server.stop, test_url=server.url(test=True),
                           server=server)


def main(argv: list[str] | None = None) -> None:
    """``python -m kkt_drivers.jsontcp.server STATE_DIR [--port 7790] [--fault name=value …]``."""
    ap = argparse.ArgumentParser(description="Emulated register behind the length-prefixed JSON bridge")
    ap.add_argument("state_dir")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT)
    ap.add_argument("--serial", default="0000000000000001")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--fault", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    server = JsonTcpEmulatorServer(args.state_dir, args.host, args.port, serial=args.serial, seed=args.seed,
                                   faults_options=dict(f.split("=", 1) for f in args.fault))
    log.info("jsontcp emulator on %s:%d (passwords in $%s, $%s)", *server.address, PASSWORD_ENV,
             CONNECTION_PASSWORD_ENV)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._tcp.server_close()


if __name__ == "__main__":
    main()
