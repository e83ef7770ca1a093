"""An emulated ATOL Web Requests service (``/api/v2``) in front of the shared register model.

What it does, after the behaviour ``register-apis.md`` §1.1 describes (WR-agent, WR-clone, BED):

* ``POST /api/v2/requests?deviceID=`` takes ``{uuid, request: [task, …]}`` into the device's queue
  and answers ``{uuid, number, isBlocked, blockedUUID}``; a uuid it already has → **409** (no
  result in the body: the client must GET it).
* ``GET /api/v2/requests/{uuid}`` → ``{results: [{status, error: {code, description}, result}]}``;
  an unknown uuid → **404**. ``DELETE`` cancels a request still ``wait`` (otherwise 409).
* One queue per device, one task at a time. Subtasks run in order ``wait → inProgress → ready |
  error``; after an error the rest become ``interrupted`` (code 502).
* When the link to the register breaks inside a fiscal subtask the subtask becomes ``blocked`` and
  **the queue stops**. Every ``block_s`` seconds the service re-reads the FN's last FD number: grown
  → ``ready`` with ``getLastFiscalParams(forReceipt)``; unchanged → ``error`` and the queue resumes.
* Results are kept ``retention_s`` (default 30 days); requests and a block survive a restart
  (``atol-requests.json`` in the state directory, as WR-clone keeps them in SQLite).
* Basic auth when ``users`` is given (WR's ``atol-fptr-web-requests-users``).

Faults: the model/link faults of :mod:`kkt_drivers.atol.emulation`, plus
``lose_http_reply_after_ready`` (the GET answer carrying a ready fiscal result is lost: the
connection closes without a response). Options: ``block_s`` (how long the register link stays down
after a link fault), ``task_delay_s`` (a slow register: every subtask takes that long).

# GUESS: status codes 201 for an accepted request, 400 for a malformed body, the error bodies'
# shape, and that an unknown deviceID answers 404 — not seen in a source.
"""
from __future__ import annotations

import argparse
import base64
import collections
import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kkt_drivers.atol import codes as c
from kkt_drivers.atol import tasks as t
from kkt_drivers.atol.emulation import AtolEmulation, LinkLost, TaskFailed
from kkt_drivers.emulator.faults import FAULT_NAMES, Faults
from kkt_drivers.emulator.model import RegisterModel
from kkt_drivers.emulators import RunningEmulator

log = logging.getLogger(__name__)

DEFAULT_PORT = 16732
API = "/api/v2"
DEFAULT_DEVICE = "default"
#: how long finished requests are kept (WR-agent's deleteRequestsAfter default: 43200 min)
DEFAULT_RETENTION_S = 30 * 24 * 3600
#: WR-agent re-reads the FD counter every 3 s while blocked
DEFAULT_BLOCK_S = 3.0
SERVER_FAULTS = ("lose_http_reply_after_ready",)
STORE_FILE = "atol-requests.json"


def parse_faults(options: dict[str, str], seed: int | None = None) -> Faults:
    """Model, link and server faults in one :class:`Faults`; ValueError names an unknown one."""
    faults = Faults.parse({k: v for k, v in options.items() if k in FAULT_NAMES}, seed=seed)
    for name, raw in options.items():
        if name in FAULT_NAMES:
            continue
        if name not in SERVER_FAULTS:
            raise ValueError(f"unknown fault {name!r} (known: {', '.join(FAULT_NAMES + SERVER_FAULTS)})")
        faults.rules[name] = Faults.parse({"fn_error": raw}).rules["fn_error"]
    return faults


class _Device:
    """One register's queue, worked by one thread (a driver handle is never used in parallel)."""

    def __init__(self, service: "AtolWebRequests", device_id: str, emulation: AtolEmulation) -> None:
        self.service = service
        self.id = device_id
        self.emulation = emulation
        self.queue: collections.deque[str] = collections.deque()
        #: {"uuid", "index", "fd_before", "until"} while the queue is stopped
        self.block: dict[str, Any] | None = None
        self.thread = threading.Thread(target=self._run, name=f"atol-queue-{device_id}", daemon=True)

    def _run(self) -> None:
        svc = self.service
        while True:
            with svc.cond:
                while not svc.stopped and not self.queue and self.block is None:
                    svc.cond.wait(0.5)
                if svc.stopped:
                    return
                if self.block is not None:
                    wait = self.block["until"] - time.time()
                    if wait > 0:
                        svc.cond.wait(min(wait, 0.5))
                        continue
                uuid = self.queue[0]
            try:
                if self.block is not None:
                    self._resolve_block()
                else:
                    self._work(uuid)
            except Exception:  # an emulator bug must not kill the queue silently
                log.exception("atol emulator: request %s crashed", uuid)
                with svc.cond:
                    self._finish(svc.requests[uuid], 0, c.ERROR, 15, "internal emulator error")

    def _work(self, uuid: str) -> None:
        svc = self.service
        rec = svc.requests[uuid]
        for i, res in enumerate(rec["results"]):
            if res["status"] != c.WAIT:
                continue
            with svc.cond:
                res["status"] = c.IN_PROGRESS
                # what the real service reads before every fiscal subtask (LIBFPTR_FNDT_LAST_DOCUMENT)
                rec["fd_before"] = self.emulation.model.status().last_fd_number
                svc.save()
            if svc.task_delay_s:
                time.sleep(svc.task_delay_s)
            try:
                result = self.emulation.execute(rec["tasks"][i])
            except TaskFailed as exc:
                with svc.cond:
                    self._finish(rec, i, c.ERROR, exc.code, exc.description)
                return
            except LinkLost as exc:
                with svc.cond:
                    res.update(status=c.BLOCKED, error={"code": c.CONNECTION_LOST, "description": "Соединение разорвано"})
                    self.block = {"uuid": uuid, "index": i, "fd_before": exc.fd_before,
                                  "until": time.time() + svc.block_s}
                    svc.save()
                return
            with svc.cond:
                res.update(status=c.READY, result=result)
                svc.save()
        with svc.cond:
            self._done(rec)

    def _resolve_block(self) -> None:
        """Re-read the FD counter: the blocked subtask is ready (document made) or error."""
        svc = self.service
        blk = self.block
        assert blk is not None
        rec = svc.requests[blk["uuid"]]
        model = self.emulation.model
        if model.status().last_fd_number > blk["fd_before"]:
            result = self.emulation.execute({"type": "getLastFiscalParams", "forReceipt": True})
            with svc.cond:
                rec["results"][blk["index"]].update(status=c.READY, result=result,
                                                    error={"code": 0, "description": ""})
                self.block = None
                svc.save()
            return  # the queue goes on with this request's next subtask
        model.cancel_receipt()  # GUESS: the reopened connection leaves no receipt open
        with svc.cond:
            self.block = None
            self._finish(rec, blk["index"], c.ERROR, c.NO_CONNECTION, "Нет связи")

    def _finish(self, rec: dict[str, Any], index: int, status: str, code: int, description: str) -> None:
        rec["results"][index].update(status=status, error={"code": code, "description": description})
        for later in rec["results"][index + 1:]:
            later.update(status=c.INTERRUPTED, error={"code": c.INTERRUPTED_CODE, "description": "Задание прервано"})
        self._done(rec)

    def _done(self, rec: dict[str, Any]) -> None:
        if self.queue and self.queue[0] == rec["uuid"]:
            self.queue.popleft()
        rec["done"] = _now_ms()
        self.service.save()
        self.service.cond.notify_all()


class AtolWebRequests:
    """The emulated service: requests, queues, persistence. HTTP lives in :class:`_Handler`."""

    def __init__(self, state_dir: str, *, serial: str = "0000000000000001", faults: Faults | None = None,
                 fsync: bool = True, device_id: str = DEFAULT_DEVICE, users: dict[str, str] | None = None,
                 block_s: float = DEFAULT_BLOCK_S, task_delay_s: float = 0.0,
                 retention_s: float = DEFAULT_RETENTION_S) -> None:
        self.faults = faults or Faults()
        self.model = RegisterModel(state_dir, serial=serial, faults=self.faults, fsync=fsync)
        self.fsync = fsync
        self.users = users or {}
        self.block_s = block_s
        self.task_delay_s = task_delay_s
        self.retention_s = retention_s
        self.cond = threading.Condition()
        self.stopped = False
        self.requests: dict[str, dict[str, Any]] = {}
        self._store = Path(state_dir) / STORE_FILE
        self._counter = 0
        self.devices = {device_id: _Device(self, device_id, AtolEmulation(self.model, self.faults))}
        self._load()
        for dev in self.devices.values():
            dev.thread.start()

    # -- persistence -----------------------------------------------------------------------
    def _load(self) -> None:
        try:
            data = t.loads(self._store.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        self.requests = {r["uuid"]: r for r in data["requests"]}
        self._counter = data.get("counter", len(self.requests))
        for dev in self.devices.values():
            pending = sorted((r for r in self.requests.values() if r["device"] == dev.id and r.get("done") is None),
                             key=lambda r: r["number"])
            dev.queue.extend(r["uuid"] for r in pending)
            blk = data.get("blocks", {}).get(dev.id)
            for r in pending:  # a subtask cut by a restart is as uncertain as a lost link
                for i, res in enumerate(r["results"]):
                    if res["status"] in (c.IN_PROGRESS, c.BLOCKED) and blk is None:
                        res["status"] = c.BLOCKED
                        blk = {"uuid": r["uuid"], "index": i, "fd_before": r.get("fd_before", 0)}
            if blk is not None:
                dev.block = dict(blk, until=time.time())

    def save(self) -> None:
        """Persist every request and block (caller holds :attr:`cond`)."""
        blocks = {d.id: {k: v for k, v in d.block.items() if k != "until"} for d in self.devices.values() if d.block}
        text = t.dumps({"counter": self._counter, "requests": list(self.requests.values()), "blocks": blocks})
        tmp = self._store.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
        os.replace(tmp, self._store)

    def _purge(self) -> None:
        cutoff = _now_ms() - int(self.retention_s * 1000)
        for uuid in [u for u, r in self.requests.items() if r.get("done") and r["done"] < cutoff]:
            del self.requests[uuid]

    # -- API -------------------------------------------------------------------------------
    def submit(self, device_id: str, body: Any) -> tuple[int, dict[str, Any]]:
        """``POST /requests``: (HTTP status, answer)."""
        dev = self.devices.get(device_id)
        if dev is None:
            return 404, _error(404, f"device {device_id!r} not found")
        if not isinstance(body, dict) or not isinstance(body.get("uuid"), str) or not body["uuid"]:
            return 400, _error(400, "uuid is required")
        request = body.get("request")
        if isinstance(request, dict):
            request = [request]
        if not isinstance(request, list) or not request or not all(isinstance(x, dict) for x in request):
            return 400, _error(400, "request must be a non-empty list of tasks")
        with self.cond:
            self._purge()
            if body["uuid"] in self.requests:
                return 409, _error(409, f"request {body['uuid']} already exists")
            self._counter += 1
            self.requests[body["uuid"]] = {
                "uuid": body["uuid"], "device": device_id, "number": self._counter, "tasks": request,
                "results": [{"status": c.WAIT, "error": {"code": 0, "description": ""}, "result": None}
                            for _ in request],
                "created": _now_ms(), "done": None,
            }
            dev.queue.append(body["uuid"])
            self.save()
            self.cond.notify_all()
            blocked = dev.block["uuid"] if dev.block else None
            return 201, {"uuid": body["uuid"], "number": self._counter, "isBlocked": blocked is not None,
                         "blockedUUID": blocked or ""}

    def result(self, device_id: str, uuid: str) -> tuple[int, dict[str, Any]]:
        """``GET /requests/{uuid}``."""
        with self.cond:
            self._purge()
            rec = self.requests.get(uuid)
            if device_id not in self.devices or rec is None or rec["device"] != device_id:
                return 404, _error(404, f"request {uuid} not found")
            return 200, {"results": [dict(r) for r in rec["results"]]}

    def cancel(self, device_id: str, uuid: str) -> tuple[int, dict[str, Any]]:
        """``DELETE /requests/{uuid}``: only a request whose subtasks all still wait."""
        with self.cond:
            rec = self.requests.get(uuid)
            dev = self.devices.get(device_id)
            if dev is None or rec is None or rec["device"] != device_id:
                return 404, _error(404, f"request {uuid} not found")
            if any(r["status"] != c.WAIT for r in rec["results"]):
                return 409, _error(409, "only a waiting request can be cancelled")
            for r in rec["results"]:
                r["status"] = c.CANCELED
            dev.queue.remove(uuid)
            rec["done"] = _now_ms()
            self.save()
            return 200, {}

    def queue_status(self, device_id: str) -> tuple[int, dict[str, Any]]:
        """``GET /getRequestsQueueStatus`` (UNVERIFIED field names)."""
        dev = self.devices.get(device_id)
        if dev is None:
            return 404, _error(404, f"device {device_id!r} not found")
        with self.cond:
            return 200, {"queueSize": len(dev.queue), "isBlocked": dev.block is not None,
                         "blockedUUID": dev.block["uuid"] if dev.block else ""}

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        for dev in self.devices.values():
            dev.thread.join(timeout=5)


def _now_ms() -> int:
    """Wall-clock milliseconds (integers keep the store free of floats)."""
    return int(time.time() * 1000)


def _error(code: int, description: str) -> dict[str, Any]:
    return {"error": {"code": code, "description": description}}


class _Handler(BaseHTTPRequestHandler):
    server: "_HTTPServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        log.debug("atol emulator: " + format, *args)

    # -- plumbing ---------------------------------------------------------------------------
    def _send(self, status: int, body: dict[str, Any] | None) -> None:
        data = t.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="ATOL Web Requests"')
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        users = self.server.service.users
        if not users:
            return True
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return users.get(user) == password

    def _route(self) -> tuple[str, str]:
        parts = urlsplit(self.path)
        device = parse_qs(parts.query).get("deviceID", [DEFAULT_DEVICE])[0]
        return parts.path, device

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return t.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None

    # -- verbs ------------------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802 - stdlib's name
        path, device = self._route()
        body = self._body()
        if not self._authorized():
            return self._send(401, _error(401, "unauthorized"))
        if path == f"{API}/requests":
            return self._send(*self.server.service.submit(device, body))
        self._send(404, _error(404, f"no endpoint {path}"))

    def do_GET(self) -> None:  # noqa: N802
        path, device = self._route()
        if not self._authorized():
            return self._send(401, _error(401, "unauthorized"))
        svc = self.server.service
        if path.startswith(f"{API}/requests/"):
            status, body = svc.result(device, path[len(f"{API}/requests/"):])
            if status == 200 and _has_ready_fiscal(body) and svc.faults.fire("lose_http_reply_after_ready"):
                self.close_connection = True  # the answer is lost on the way back
                return
            return self._send(status, body)
        if path == f"{API}/getRequestsQueueStatus":
            return self._send(*svc.queue_status(device))
        if path == f"{API}/serverInfo":
            return self._send(200, {"version": "kkt-worker emulator", "api": "v2"})
        if path == f"{API}/devices":
            return self._send(200, {"devices": [{"id": d, "isActive": True, "isDefault": d == DEFAULT_DEVICE}
                                                for d in svc.devices]})
        self._send(404, _error(404, f"no endpoint {path}"))

    def do_DELETE(self) -> None:  # noqa: N802
        path, device = self._route()
        if not self._authorized():
            return self._send(401, _error(401, "unauthorized"))
        if path.startswith(f"{API}/requests/"):
            return self._send(*self.server.service.cancel(device, path[len(f"{API}/requests/"):]))
        self._send(404, _error(404, f"no endpoint {path}"))


def _has_ready_fiscal(body: dict[str, Any]) -> bool:
    results = body.get("results") or []
    return bool(results) and all(r["status"] not in c.PENDING + (c.BLOCKED,) for r in results) and any(
        isinstance(r.get("result"), dict) and "fiscalParams" in r["result"] and "total" in r["result"]["fiscalParams"]
        for r in results)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    service: AtolWebRequests


class AtolEmulatorServer:
    """The emulated service listening on HTTP (``port=0`` picks a free port)."""

    def __init__(self, state_dir: str, host: str = "127.0.0.1", port: int = 0, *,
                 faults_options: dict[str, str] | None = None, seed: int | None = None, **options: Any) -> None:
        self.service = AtolWebRequests(state_dir, faults=parse_faults(faults_options or {}, seed=seed), **options)
        self.model = self.service.model
        self.faults = self.service.faults
        self._http = _HTTPServer((host, port), _Handler)
        self._http.service = self.service
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._http.server_address[:2]
        return str(host), int(port)

    def serve_forever(self) -> None:
        self._http.serve_forever(poll_interval=0.1)

    def start(self) -> "AtolEmulatorServer":
        """Serve in a background daemon thread."""
        self._thread = threading.Thread(target=self.serve_forever, name="atol-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and the queues; release the port. Idempotent."""
        if self._thread is None:
            return
        self._http.shutdown()
        self._http.server_close()
        self.service.stop()
        self._thread.join(timeout=5)
        self._thread = None


#: driver options with short timeouts, for tests that inject faults
TEST_DRIVER_OPTIONS = "timeout=2&fiscal_timeout=5&status_timeout=5&poll_s=0.02"
#: how long the register link stays down after a link fault in contract tests
TEST_BLOCK_S = 0.2


def start_emulator(state_dir: str, *, host: str = "127.0.0.1", port: int = 0,
                   faults: dict[str, str] | None = None, seed: int | None = None, fsync: bool = True,
                   **options: Any) -> RunningEmulator:
    """Serve an emulated ATOL Web Requests in a background thread (see :mod:`kkt_drivers.emulators`)."""
    options.setdefault("block_s", TEST_BLOCK_S)
    server = AtolEmulatorServer(state_dir, host, port, faults_options=faults, seed=seed, fsync=fsync,
                                **options).start()
    h, prt = server.address
    return RunningEmulator(url=f"atol+http://{h}:{prt}", model=server.model, stop=server.stop,
                           test_url=f"atol+http://{h}:{prt}?{TEST_DRIVER_OPTIONS}", server=server)


def main(argv: list[str] | None = None) -> None:
    """``python -m kkt_drivers.atol.server STATE_DIR [--port 16732] [--fault name=value …]``."""
    ap = argparse.ArgumentParser(description="Emulated ATOL Web Requests (/api/v2) on HTTP")
    ap.add_argument("state_dir")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT)
    ap.add_argument("--serial", default="0000000000000001")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--fault", action="append", default=[], metavar="NAME=VALUE",
                    help="probability or first:N, e.g. lose_reply_after_close=first:1")
    ap.add_argument("--block-s", type=float, default=DEFAULT_BLOCK_S,
                    help="how long the register link stays down after a link fault")
    ap.add_argument("--task-delay-s", type=float, default=0.0, help="a slow register: delay every subtask")
    ap.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD_ENV",
                    help="require Basic auth; the password is read from the named environment variable")
    args = ap.parse_args(argv)
    faults = dict(f.split("=", 1) for f in args.fault)
    users = {}
    for spec in args.user:
        name, _, env = spec.partition(":")
        users[name] = os.environ[env]
    logging.basicConfig(level=logging.INFO)
    server = AtolEmulatorServer(args.state_dir, args.host, args.port, faults_options=faults, seed=args.seed,
                                serial=args.serial, block_s=args.block_s, task_delay_s=args.task_delay_s,
                                users=users)
    log.info("ATOL Web Requests emulator for %s on http://%s:%d%s", args.state_dir, *server.address, API)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._http.server_close()
        server.service.stop()


if __name__ == "__main__":
    main()
