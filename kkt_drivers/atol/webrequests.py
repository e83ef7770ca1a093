"""Transport 1: ATOL Web Requests (the driver's own HTTP server, ``http://<pc>:16732/api/v2``).

Only this module touches HTTP (httpx). It speaks the request lifecycle — ``POST /requests``,
``GET|DELETE /requests/{uuid}`` — and turns every HTTP-level failure into one of our error
classes, knowing whether the request it was sending is fiscal (then anything that may have reached
the service is "outcome unknown") or a read (then it is transient):

| what happened                                   | read          | fiscal POST / poll      |
|-------------------------------------------------|---------------|-------------------------|
| connection refused / connect timeout            | Transient     | Transient               |
| reply lost, read timeout (slow server)          | Transient     | OutcomeUnknown          |
| 5xx                                             | Transient     | OutcomeUnknown          |
| 3xx redirect (never followed), 401/403, 404 POST | DriverConfig  | DriverConfig            |
| 400 on POST (the service refused the body)      | Rejected      | Rejected                |
| answer not JSON / no ``results`` / bad entries  | Transient     | OutcomeUnknown          |

A 409 on POST means "this uuid is known": never "send again" — the caller reads the result.
"""
from __future__ import annotations

import time
from typing import Any

import httpx

from kkt_drivers.atol import codes as c
from kkt_drivers.atol import tasks as t
from kkt_drivers.errors import (
    DriverConfigError, KktError, OutcomeUnknownError, RejectedError, TransientError,
)

#: per-HTTP-call timeout, seconds
DEFAULT_TIMEOUT_S = 10.0
#: how long to poll a request's result, seconds
DEFAULT_POLL_S = 0.25
#: the first re-poll of a request, seconds; it doubles up to poll_s. A task the register runs at once
#: (each marking step is a request of its own) is read back without waiting a whole poll_s
FIRST_POLL_S = 0.02


class WebRequestsTransport:
    """One Web Requests service and device; strictly serial use (one lane)."""

    keeps_keys = True

    def __init__(self, base_url: str, *, device_id: str | None = None, auth: tuple[str, str] | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, poll_s: float = DEFAULT_POLL_S, verify: bool = True) -> None:
        self.base_url = base_url.rstrip("/")
        self.device_id = device_id
        self.auth = auth
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.verify = verify
        self._client: httpx.Client | None = None

    # -- connection ------------------------------------------------------------------------
    def open(self) -> None:
        """Create the HTTP client (idempotent); no request is made."""
        if self._client is None:
            self._client = httpx.Client(base_url=self.base_url, auth=self.auth, verify=self.verify,
                                        timeout=httpx.Timeout(self.timeout_s), follow_redirects=False,
                                        headers={"Accept": "application/json"})

    def close(self) -> None:
        """Close the client; never raises."""
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None

    @property
    def _params(self) -> dict[str, str]:
        return {"deviceID": self.device_id} if self.device_id else {}

    def _call(self, method: str, path: str, *, fiscal: bool, body: str | None = None) -> httpx.Response:
        self.open()
        assert self._client is not None
        try:
            return self._client.request(method, path, params=self._params, content=body,
                                        headers={"Content-Type": "application/json; charset=utf-8"} if body else None)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransientError(f"ATOL Web Requests at {self.base_url} unreachable: {exc}") from exc
        except (httpx.TransportError, httpx.StreamError) as exc:
            what = f"no answer from ATOL Web Requests to {method} {path}: {type(exc).__name__} {exc}"
            raise (OutcomeUnknownError(what) if fiscal else TransientError(what)) from exc

    def _http_error(self, resp: httpx.Response, *, fiscal: bool) -> KktError:
        status = resp.status_code
        what = f"ATOL Web Requests answered {status} to {resp.request.method} {resp.request.url.path}"
        if 300 <= status < 400:
            return DriverConfigError(f"{what} (a redirect to {resp.headers.get('location')!r}; "
                                     "point the register URL at the service itself)", vendor_code=f"HTTP {status}")
        if status in (401, 403):
            return DriverConfigError(f"{what}: check the user and the password variable", vendor_code=f"HTTP {status}")
        if status >= 500:
            return (OutcomeUnknownError if fiscal else TransientError)(f"{what}: {resp.text[:200]}",
                                                                        vendor_code=f"HTTP {status}")
        return TransientError(f"{what}: {resp.text[:200]}", vendor_code=f"HTTP {status}")

    # -- requests --------------------------------------------------------------------------
    def post(self, uuid: str, tasks: list[dict[str, Any]], *, fiscal: bool) -> bool:
        """Submit; True when the service took it, False when it already has *uuid* (409)."""
        resp = self._call("POST", "/requests", fiscal=fiscal, body=t.dumps({"uuid": uuid, "request": tasks}))
        if resp.status_code in (200, 201):
            return True  # the status says "taken"; the body (number, isBlocked) is informational
        if resp.status_code == 409:
            return False
        if resp.status_code == 400:
            raise RejectedError(f"ATOL Web Requests refused the request: {resp.text[:300]}", vendor_code="HTTP 400")
        if resp.status_code == 404:
            raise DriverConfigError(f"ATOL Web Requests: no such device or endpoint ({resp.text[:200]})",
                                    vendor_code="HTTP 404")
        raise self._http_error(resp, fiscal=fiscal)

    def get(self, uuid: str, *, fiscal: bool = False) -> list[dict[str, Any]] | None:
        """The request's subtask results; None when the service does not know *uuid* (404)."""
        resp = self._call("GET", f"/requests/{uuid}", fiscal=fiscal)
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._http_error(resp, fiscal=fiscal)
        return parse_results(resp.content, fiscal=fiscal)

    def delete(self, uuid: str) -> bool:
        """Cancel a request that is still waiting; True if cancelled."""
        try:
            resp = self._call("DELETE", f"/requests/{uuid}", fiscal=True)
        except KktError:
            return False
        return resp.status_code == 200

    def wait(self, uuid: str, deadline_s: float, *, fiscal: bool) -> list[dict[str, Any]]:
        """Poll until no subtask waits or runs (or one is blocked); raise on the deadline."""
        until = time.monotonic() + deadline_s
        delay = min(self.poll_s, FIRST_POLL_S)
        while True:
            results = self.get(uuid, fiscal=fiscal)
            if results is None:
                what = f"ATOL Web Requests lost request {uuid} it had taken"
                raise OutcomeUnknownError(what) if fiscal else TransientError(what)
            statuses = [r["status"] for r in results]
            if c.BLOCKED in statuses or not any(s in c.PENDING for s in statuses):
                return results
            if time.monotonic() >= until:
                if all(s == c.WAIT for s in statuses) and self.delete(uuid):
                    raise TransientError(f"request {uuid} still queued after {deadline_s:g} s; cancelled it")
                what = f"request {uuid} still {'/'.join(sorted(set(statuses)))} after {deadline_s:g} s"
                raise OutcomeUnknownError(what) if fiscal else TransientError(what)
            time.sleep(delay)
            delay = min(delay * 2, self.poll_s)


def parse_results(raw: bytes, *, fiscal: bool) -> list[dict[str, Any]]:
    """``{results: [{status, error, result}]}`` → the list; a malformed answer is classified."""
    err = OutcomeUnknownError if fiscal else TransientError
    try:
        body = t.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise err(f"ATOL Web Requests answered with something that is not JSON: {raw[:120]!r}") from exc
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or not results or not all(isinstance(r, dict) for r in results):
        raise err(f"ATOL Web Requests answer has no results list: {raw[:200]!r}")
    for r in results:
        if r.get("status") not in c.STATUSES:
            raise err(f"ATOL Web Requests reported an unknown status {r.get('status')!r}")
    return results
