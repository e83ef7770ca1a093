"""A misbehaving Web Requests service: every bad answer is a classified error, never a crash, and the
driver never POSTs the receipt a second time by itself."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from kkt_drivers.errors import (
    DriverConfigError, KktError, OutcomeUnknownError, RejectedError, TransientError,
)
from kkt_drivers.registry import open_driver
from tests.atol.conftest import sample_receipt

READY_NO_SIGN = {"results": [{"status": "ready", "error": {"code": 0, "description": ""}, "result": {
    "fiscalParams": {"fiscalDocumentNumber": 5, "fiscalDocumentDateTime": "2026-11-30T12:00:00", "shiftNumber": 1,
                     "fnNumber": "9999078900012345", "total": 1200.00, "fiscalReceiptNumber": 1}}}]}


class BadService(ThreadingHTTPServer):
    daemon_threads = True
    mode = ""
    posts = 0
    elsewhere = 0


class Handler(BaseHTTPRequestHandler):
    server: BadService
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def reply(self, status: int, body: bytes | str = b"", headers: dict[str, str] | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        mode = self.server.mode
        if self.path.startswith("/elsewhere"):
            self.server.elsewhere += 1
            return self.reply(201, "{}")
        self.server.posts += 1
        if mode == "post_500":
            return self.reply(500, "Internal Server Error")
        if mode == "redirect":
            return self.reply(302, "", {"Location": "/elsewhere/requests"})
        if mode == "unauthorized":
            return self.reply(401, "")
        if mode == "slow":
            time.sleep(1.5)
        if mode == "conflict_unknown":
            return self.reply(409, "{}")
        if mode == "drop_post":
            self.close_connection = True
            return
        self.reply(201, '{"uuid": "x", "number": 1, "isBlocked": false}')

    def do_GET(self) -> None:  # noqa: N802
        mode = self.server.mode
        bodies = {
            "not_json": (200, "<html>Service Unavailable</html>"),
            "unknown_status": (200, json.dumps({"results": [{"status": "done", "result": {}}]})),
            "missing_fields": (200, json.dumps(READY_NO_SIGN)),
            "empty_results": (200, '{"results": []}'),
            "get_500": (503, "busy"),
            "conflict_unknown": (404, "{}"),
        }
        if mode == "slow":
            time.sleep(1.5)
        status, body = bodies.get(mode, (200, '{"results": [{"status": "wait"}]}'))
        self.reply(status, body, {"Content-Type": "application/json"})


@pytest.fixture
def bad() -> Iterator[BadService]:
    srv = BadService(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def driver(srv: BadService):
    host, port = srv.server_address[:2]
    return open_driver(f"atol+http://{host}:{port}?timeout=0.5&fiscal_timeout=1&status_timeout=1&poll_s=0.02")


@pytest.mark.parametrize("mode,error", [
    ("not_json", OutcomeUnknownError),          # taken (201), then garbage: the receipt may exist
    ("unknown_status", OutcomeUnknownError),
    ("missing_fields", OutcomeUnknownError),    # ready, but the fiscal sign is missing
    ("empty_results", OutcomeUnknownError),
    ("get_500", OutcomeUnknownError),
    ("post_500", OutcomeUnknownError),
    ("drop_post", OutcomeUnknownError),         # the POST's answer never came
    ("slow", OutcomeUnknownError),              # slower than the timeout after the POST was sent
    ("conflict_unknown", OutcomeUnknownError),  # 409 then 404: the service contradicts itself
    ("redirect", DriverConfigError),            # never followed: the request went nowhere
    ("unauthorized", DriverConfigError),
])
def test_fiscalize_classifies_and_posts_once(bad: BadService, mode: str, error: type[KktError]) -> None:
    bad.mode = mode
    with pytest.raises(error) as e:
        driver(bad).fiscalize(sample_receipt())
    assert type(e.value) is error, e.value
    assert bad.posts == 1 and bad.elsewhere == 0


@pytest.mark.parametrize("mode", ["not_json", "unknown_status", "empty_results", "get_500", "slow", "post_500",
                                  "drop_post"])
def test_reads_are_transient(bad: BadService, mode: str) -> None:
    """A status read or a lookup by key that gets a bad answer is transient (safe to ask again)."""
    bad.mode = mode
    drv = driver(bad)
    with pytest.raises(TransientError) as e:
        drv.status()
    assert not isinstance(e.value, OutcomeUnknownError)
    if mode not in ("post_500", "drop_post"):
        with pytest.raises(TransientError):
            drv.find_by_key(sample_receipt())


def test_still_waiting_at_the_deadline_without_cancel_is_unknown(bad: BadService) -> None:
    """The service keeps saying ``wait`` and refuses DELETE: the receipt may still be printed later."""
    bad.mode = "forever_wait"
    with pytest.raises(OutcomeUnknownError, match="wait"):
        driver(bad).fiscalize(sample_receipt())
    assert bad.posts == 1


def test_bad_body_on_post_is_rejected(bad: BadService) -> None:
    """A 400 to the POST: the service refused our body; nothing queued."""
    bad.mode = "bad_request"
    Handler_do_post = Handler.do_POST

    def do_post(self: Handler) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.posts += 1
        self.reply(400, '{"error": {"code": 400, "description": "bad json"}}')

    Handler.do_POST = do_post  # type: ignore[method-assign]
    try:
        with pytest.raises(RejectedError):
            driver(bad).fiscalize(sample_receipt())
    finally:
        Handler.do_POST = Handler_do_post  # type: ignore[method-assign]
    assert bad.posts == 1
