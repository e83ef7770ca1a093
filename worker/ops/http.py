"""The worker's small HTTP server: ``/metrics``, ``/healthz``, ``/readyz``; other rooms add routes.

Bound to 127.0.0.1 by default. Binding anywhere else requires a token (``Authorization: Bearer …``
on every request but ``/healthz``), so ledger data never leaks to the shop's network by accident.
Handlers return ``(status, content type, body)``; a handler that raises answers 500 and is logged,
never taking the worker down. The server runs in daemon threads beside the lanes.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from worker.defaults import HTTP_BIND as DEFAULT_BIND
from worker.errors import ConfigError

log = logging.getLogger(__name__)

#: paths anyone who can reach the port may read (a liveness probe needs no secret)
PUBLIC_PATHS = frozenset({"/healthz"})

#: (status, content type, body) or (status, content type, body, extra headers)
Response = tuple  # tuple[int, str, bytes] | tuple[int, str, bytes, dict[str, str]]
Handler = Callable[[dict[str, list[str]]], Response]


def parse_bind(bind: str) -> tuple[str, int]:
    """``host:port`` → (host, port); ConfigError naming the setting when malformed."""
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"http.bind {bind!r} must be host:port, e.g. {DEFAULT_BIND}")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OpsServer:
    """Routes → handlers over a threading HTTP server."""

    def __init__(self, bind: str = DEFAULT_BIND, *, token: str | None = None) -> None:
        self.host, self.port = parse_bind(bind)
        if not is_loopback(self.host) and not token:
            raise ConfigError(f"http.bind {bind!r} is not loopback: set http.token_env (a token is required "
                              "to serve the ledger beyond this machine)")
        self.token = token
        self.routes: dict[str, Handler] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def route(self, path: str, handler: Handler) -> None:
        """Serve GET *path* with *handler*."""
        self.routes[path] = handler

    def _authorized(self, path: str, header: str | None) -> bool:
        if self.token is None or path in PUBLIC_PATHS:
            return True
        expected = f"Bearer {self.token}"
        return header is not None and hmac.compare_digest(header.encode(), expected.encode())

    def start(self) -> "OpsServer":
        server = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                url = urlsplit(self.path)
                if not server._authorized(url.path, self.headers.get("Authorization")):
                    return self._send(401, "text/plain; charset=utf-8", b"token required\n")
                handler = server.routes.get(url.path)
                if handler is None:
                    return self._send(404, "text/plain; charset=utf-8", b"not found\n")
                try:
                    status, ctype, body, *extra = handler(parse_qs(url.query))
                except Exception:  # a broken page must never take the worker down
                    log.exception("HTTP handler for %s failed", url.path)
                    status, ctype, body, extra = 500, "text/plain; charset=utf-8", b"internal error\n", []
                self._send(status, ctype, body, extra[0] if extra else None)

            def _send(self, status: int, ctype: str, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args: object) -> None:
                log.debug("http: " + fmt, *args)

        self._httpd = ThreadingHTTPServer((self.host, self.port), _Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="ops-http", daemon=True)
        self._thread.start()
        log.info("HTTP endpoints on http://%s:%d (/metrics, /healthz, /readyz)", self.host, self.port)
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
