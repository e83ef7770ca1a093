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
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kkt_drivers.atol import codes as c
from kkt_drivers.atol import tasks as t
from kkt_drivers.atol.service import (
    DEFAULT_BLOCK_S, DEFAULT_DEVICE, AtolWebRequests, error_body, parse_faults,
)
from kkt_drivers.emulators import RunningEmulator

log = logging.getLogger(__name__)

DEFAULT_PORT = 16732
API = "/api/v2"


class _Handler(BaseHTTPRequestHandler):
    server: "_HTTPServer"
    protocol_version = "HTTP/1.1"
    #: headers and body go out as two writes; with Nagle on, a keep-alive client's delayed ACK cost
    #: ~40 ms per answer (measured: 45 ms per HTTP call, 4 ms without) — every marking step is a request
    disable_nagle_algorithm = True

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
            return self._send(401, error_body(401, "unauthorized"))
        if path == f"{API}/requests":
            return self._send(*self.server.service.submit(device, body))
        self._send(404, error_body(404, f"no endpoint {path}"))

    def do_GET(self) -> None:  # noqa: N802
        path, device = self._route()
        if not self._authorized():
            return self._send(401, error_body(401, "unauthorized"))
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
        self._send(404, error_body(404, f"no endpoint {path}"))

    def do_DELETE(self) -> None:  # noqa: N802
        path, device = self._route()
        if not self._authorized():
            return self._send(401, error_body(401, "unauthorized"))
        if path.startswith(f"{API}/requests/"):
            return self._send(*self.server.service.cancel(device, path[len(f"{API}/requests/"):]))
        self._send(404, error_body(404, f"no endpoint {path}"))


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
TEST_DRIVER_OPTIONS = "timeout=2&fiscal_timeout=5&status_timeout=5&poll_s=0.02&marking_timeout=1&marking_poll_s=0.05"
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
        if not name or env not in os.environ:
            ap.error(f"--user {spec}: use NAME:PASSWORD_ENV with the variable set")
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
