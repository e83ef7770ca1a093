"""A KKMServer emulator: ``POST /Execute`` with JSON commands, in front of a pool of emulated registers.

What it serves (KKMServer's documented subset, see ``register-apis.md`` §3): RegisterCheck,
OpenShift, CloseShift, XReport, GetDataKKT, GetDataCheck and GetRezult; ``NumDevice`` picks a
register (0 = the first one not blocked, here: with paper); ``Timeout`` is how long the server
waits for the command before answering ``Status`` 1 ("running"; 1 = do not wait at all, 0 = 60 s);
finished results are kept by ``IdCommand`` and answered by GetRezult. Basic auth when a password
is set. Bad input (not JSON, not an object, an unknown command) gets KKMServer's error answer
(``Status`` 2 or 3, HTTP 200) and the server carries on.

Command bookkeeping follows KKMServer's own server code as published (its command queue):

* a command whose ``IdCommand`` is already known and did not end in an error (done, running or
  queued) is not executed again: the answer is ``Status`` 5 ("already done") with an error text and
  no result; one that ended in an error is executed anew;
* ``GetRezult`` answers ``Status`` 0 with the stored answer in ``Rezult``, or ``Status`` 3 with a
  ``Rezult`` of ``Status`` 3 for an unknown ``IdCommand``, or ``Status`` 2 without one;
* only the last 100 commands are kept (every command sent to a device counts, reads too);
* ``Timeout`` is capped at 600 s; the server waits ``Timeout - 1`` seconds (60 s when 0 or absent),
  so ``Timeout`` 1 answers at once.

Results live in memory only (GUESS: whether KKMServer keeps them across its restart).

Faults (name → probability or ``first:N``, as in :mod:`kkt_drivers.emulator.faults`):

| name                    | effect                                                               |
|-------------------------|----------------------------------------------------------------------|
| fail_before_send        | RegisterCheck: ``Status`` 3, device not ready (nothing executed)     |
| lose_reply_before_close | RegisterCheck: items registered, link lost before the close (Status 2 kept for GetRezult), HTTP connection dropped without an answer |
| lose_reply_after_close  | RegisterCheck executes (document written), HTTP connection dropped   |
| paper_out_mid_receipt   | model fault: paper runs out on an item                               |
| fn_error                | model fault: the FN refuses the close                                |

``latency_ms`` makes every register command slow (a slow register; the server answers
"running" when the client's ``Timeout`` passes first).
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import logging
import os
import threading
import uuid
from collections import OrderedDict
from decimal import Decimal
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kkt_drivers.emulator.faults import Faults
from kkt_drivers.emulator.model import RegisterModel
from kkt_drivers.emulators import RunningEmulator
from kkt_drivers.kkmserver import commands as c
from kkt_drivers.kkmserver.emulation import HANDLERS, Device, InjectedLinkLoss

log = logging.getLogger(__name__)

DEFAULT_PORT = 5893
#: KKMServer's wait for a command without ``Timeout`` (or 0), and its cap on ``Timeout``
DEFAULT_COMMAND_WAIT_S = 60.0
MAX_TIMEOUT_S = 600
#: how many commands KKMServer keeps for GetRezult and for spotting a repeated IdCommand
RESULTS_KEPT = 100
ALREADY_DONE_TEXT = "Команда уже была выполнена или выполняется в текущий момент"
#: the largest request body we read
MAX_BODY_BYTES = 1 << 20
#: how often the serving thread checks for a shutdown request
SHUTDOWN_POLL_S = 0.05
EXECUTE_PATHS = ("/Execute", "/Execute/sync")
#: driver options for tests with faults: short waits so a lost reply is seen quickly
TEST_DRIVER_OPTIONS = "timeout=3&wait=2&deadline_s=6&poll_ms=50"


@dataclass
class _Entry:
    """A command known by its IdCommand: its latest answer and whether it finished."""

    answer: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    drop_reply: bool = False


class KkmEmulatorServer(ThreadingHTTPServer):
    """The HTTP server plus the pool of devices and the results kept by IdCommand."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, state_dir: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 0, *,
                 faults_options: dict[str, str] | None = None, seed: int | None = None, fsync: bool = True,
                 serial: str = "0000000000000001", devices: int = 1, latency_ms: float = 0,
                 user: str = "Admin", password: str | None = None, results_kept: int = RESULTS_KEPT) -> None:
        super().__init__((host, port), _Handler)
        self.faults = Faults.parse(dict(faults_options or {}), seed=seed)
        self.devices: dict[int, Device] = {}
        for n in range(1, int(devices) + 1):
            path = Path(state_dir) if n == 1 else Path(state_dir) / f"device{n}"
            dev_serial = serial if n == 1 else f"{serial[:-2]}{n:02d}"
            model = RegisterModel(path, serial=dev_serial, faults=self.faults, fsync=fsync)
            self.devices[n] = Device(n, model, latency_s=float(latency_ms) / 1000)
        self.user = user
        self.password = password
        self._results: OrderedDict[str, _Entry] = OrderedDict()
        self.results_kept = int(results_kept)
        self._results_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def model(self) -> RegisterModel:
        """Device 1's register model (the ground truth tests compare with)."""
        return self.devices[1].model

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server_address[:2]
        return str(host), int(port)

    def start(self) -> "KkmEmulatorServer":
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.serve_forever, args=(SHUTDOWN_POLL_S,),
                                        name="kkmserver-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; idempotent."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server_close()

    # -- authorisation ----------------------------------------------------------------------------
    def authorised(self, header: str | None) -> bool:
        if self.password is None:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(given, f"{self.user}:{self.password}")

    # -- commands -----------------------------------------------------------------------------------
    def handle_command(self, cmd: Any) -> dict[str, Any] | None:
        """The answer to *cmd* (None = drop the connection without answering)."""
        if not isinstance(cmd, dict):
            return _error("", c.STATUS_ERROR, "Ошибка разбора команды: ожидается JSON-объект")
        name = cmd.get("Command")
        if name == "GetRezult":
            given = cmd.get("IdCommand")
            return self._get_rezult(given if isinstance(given, str) else "")
        id_command = cmd.get("IdCommand") or str(uuid.uuid4())
        if not isinstance(id_command, str):
            return _error(str(name), c.STATUS_ERROR, "IdCommand должен быть строкой")
        if name not in HANDLERS:
            return _error(str(name), c.STATUS_NOT_FOUND, f"Команда {name!r} не найдена", id_command)
        device = self._device(cmd.get("NumDevice"))
        if device is None:
            return _error(name, c.STATUS_NOT_FOUND, f"Устройство № {cmd.get('NumDevice')} не найдено", id_command)
        fiscal = name == "RegisterCheck" and cmd.get("IsFiscalCheck") is not False
        if fiscal and self.faults.fire("fail_before_send"):
            return _error(name, c.STATUS_NOT_FOUND, f"Устройство № {device.num} не готово: занято другим "
                          "процессом", id_command, device.num)
        with self._results_lock:
            known = self._results.get(id_command)
            if known is not None and not (known.done.is_set() and known.answer["Status"] == c.STATUS_ERROR):
                return _error(name, c.STATUS_ALREADY_DONE, ALREADY_DONE_TEXT, id_command, device.num)
            entry = _Entry(answer={"Command": name, "IdCommand": id_command, "NumDevice": device.num,
                                   "Status": c.STATUS_NOT_STARTED, "Error": ""})
            self._results.pop(id_command, None)   # an earlier error is no longer relevant
            self._results[id_command] = entry
            while len(self._results) > self.results_kept:
                self._results.popitem(last=False)
        cmd = {**cmd, "IdCommand": id_command}
        threading.Thread(target=self._run, args=(device, cmd, entry, fiscal), daemon=True).start()
        entry.done.wait(_wait_s(cmd.get("Timeout")))
        if entry.done.is_set() and entry.drop_reply:
            return None
        return dict(entry.answer)  # when not done yet: Status 4 (queued) or 1 (running)

    def _run(self, device: Device, cmd: dict[str, Any], entry: _Entry, fiscal: bool) -> None:
        def running() -> None:
            entry.answer = {**entry.answer, "Status": c.STATUS_RUNNING}

        def before_close() -> None:
            if self.faults.fire("lose_reply_before_close"):
                entry.drop_reply = True
                raise InjectedLinkLoss()

        try:
            answer = device.execute(cmd, before_close if fiscal else None, on_start=running)
            if fiscal and answer["Status"] == c.STATUS_OK and self.faults.fire("lose_reply_after_close"):
                entry.drop_reply = True
        except Exception as exc:  # the emulator must survive anything a command does
            log.exception("command %s failed inside the emulator", cmd.get("Command"))
            answer = _error(cmd["Command"], c.STATUS_ERROR, f"Внутренняя ошибка сервера: {exc}",
                            cmd["IdCommand"], device.num)
        entry.answer = answer
        entry.done.set()

    def _get_rezult(self, id_command: str) -> dict[str, Any]:
        if not id_command:
            return _error("GetRezult", c.STATUS_ERROR, "Не указан Id команды!")
        with self._results_lock:
            entry = self._results.get(id_command)
        if entry is None:
            return {**_error("GetRezult", c.STATUS_NOT_FOUND, "Команда с таким IdCommand не найдена", id_command),
                    "Rezult": {"Command": "<Не определено>", "IdCommand": id_command,
                               "Status": c.STATUS_NOT_FOUND, "Error": "<Не определено>"}}
        return {"Command": "GetRezult", "IdCommand": id_command, "Status": c.STATUS_OK, "Error": "",
                "Rezult": dict(entry.answer)}

    def _device(self, num: Any) -> Device | None:
        if num in (None, 0):
            # NumDevice 0: "the first one not blocked on the server"; here: the first with paper
            for dev in self.devices.values():
                if dev.model.status().paper_ok:
                    return dev
            return self.devices[1]
        if isinstance(num, bool) or not isinstance(num, int):
            return None
        return self.devices.get(num)


def _wait_s(timeout: Any) -> float:
    """How long the server waits for a command before answering "running": ``Timeout`` − 1 s."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, Decimal)) or timeout <= 0:
        return DEFAULT_COMMAND_WAIT_S
    return float(min(timeout, MAX_TIMEOUT_S) - 1)  # a wait in seconds, not money


def _error(command: str, status: int, text: str, id_command: str = "", num_device: int = 0) -> dict[str, Any]:
    return {"Command": command, "IdCommand": id_command, "NumDevice": num_device, "Status": status, "Error": text}


class _Handler(BaseHTTPRequestHandler):
    server: KkmEmulatorServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("%s " + format, self.address_string(), *args)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.split("?", 1)[0].rstrip("/") not in EXECUTE_PATHS:
            self._send(404, b"")
            return
        if not self.server.authorised(self.headers.get("Authorization")):
            self._send(401, b"", extra={"WWW-Authenticate": 'Basic realm="KkmServer"'})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self._send(413, b"")
            return
        body = self.rfile.read(length)
        try:
            cmd = c.loads(body)
        except c.AnswerError as exc:
            self._answer(_error("", c.STATUS_ERROR, f"Ошибка разбора JSON: {exc}"))
            return
        try:
            answer = self.server.handle_command(cmd)
        except Exception as exc:  # never let one request take the server down
            log.exception("bad request")
            answer = _error("", c.STATUS_ERROR, f"Внутренняя ошибка сервера: {exc}")
        if answer is None:
            self.close_connection = True  # the reply is "lost": no bytes at all
            return
        self._answer(answer)

    def do_GET(self) -> None:  # noqa: N802
        self._send(405, b"")

    def _answer(self, answer: dict[str, Any]) -> None:
        self._send(200, c.dumps(answer), content_type="application/json; charset=utf-8")

    def _send(self, code: int, body: bytes, *, content_type: str = "text/plain",
              extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


def start_emulator(state_dir: str, *, host: str = "127.0.0.1", port: int = 0,
                   faults: dict[str, str] | None = None, seed: int | None = None, fsync: bool = True,
                   **options: Any) -> RunningEmulator:
    """Serve an emulated KKMServer in a background thread (see :mod:`kkt_drivers.emulators`).

    ``options``: ``serial``, ``devices`` (pool size), ``latency_ms``, ``user``, ``password``,
    ``results_kept``.
    """
    server = KkmEmulatorServer(state_dir, host, port, faults_options=faults, seed=seed, fsync=fsync,
                               **options).start()
    h, prt = server.address
    base = f"kkmserver+http://{h}:{prt}?num_device=1"
    return RunningEmulator(url=base, model=server.model, stop=server.stop,
                           test_url=f"{base}&{TEST_DRIVER_OPTIONS}", server=server)


def main(argv: list[str] | None = None) -> None:
    """``python -m kkt_drivers.kkmserver.server STATE_DIR [--port 5893] [--fault name=value …]``."""
    ap = argparse.ArgumentParser(description="Emulated KKMServer (HTTP JSON) in front of emulated registers")
    ap.add_argument("state_dir")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT)
    ap.add_argument("--serial", default="0000000000000001")
    ap.add_argument("--devices", type=int, default=1)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--latency-ms", type=float, default=0)
    ap.add_argument("--user", default="Admin")
    ap.add_argument("--password-env", help="name of the environment variable holding the Basic-auth password")
    ap.add_argument("--fault", action="append", default=[], metavar="NAME=VALUE",
                    help="probability or first:N, e.g. lose_reply_after_close=first:1")
    args = ap.parse_args(argv)
    password = os.environ[args.password_env] if args.password_env else None
    logging.basicConfig(level=logging.INFO)
    server = KkmEmulatorServer(args.state_dir, args.host, args.port, seed=args.seed, serial=args.serial,
                               devices=args.devices, latency_ms=args.latency_ms, user=args.user, password=password,
                               faults_options=dict(f.split("=", 1) for f in args.fault))
    log.info("KKMServer emulator on %s:%d, state in %s", *server.address, args.state_dir)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
