"""ATOL registers through Driver v10 JSON tasks: over ATOL Web Requests (HTTP) or libfptr10.

URL grammar::

    atol+http://HOST:16732[/api/v2]?device_id=ID&user=NAME&password_env=VAR&timeout=10
        &fiscal_timeout=120&status_timeout=30&poll_s=0.25
    atol+https://HOST:PORT?…&verify=1          (verify=0 only for a self-signed test service)
    atol+libfptr:///opt/atol/libfptr10.so?setting.Model=500&setting.Port=2
        &setting.IPAddress=10.0.0.5&setting.IPPort=5555

* ``device_id`` — Web Requests' ``deviceID`` of this register (default: the service's default).
* ``user`` + ``password_env`` — Basic auth; the password is read from the environment variable
  named here at start. A password in the URL itself is refused.
* ``timeout`` — seconds per HTTP call; ``fiscal_timeout`` / ``status_timeout`` — how long to wait
  for a fiscal / any other request's result; ``poll_s`` — the polling interval.
* ``marking_timeout`` (s, default 60: ATOL's own), ``marking_poll_s`` (0.3), ``marking_unanswered``
  (``pause`` | ``sell``) — the FN check of marked goods (:mod:`kkt_drivers.atol.marking`).
* ``setting.<Key>`` — libfptr10 single settings, passed through as they are (``Model``, ``Port``,
  ``IPAddress``, ``IPPort``, ``ComFile``, ``BaudRate`` … — see ATOL's driver manual).
Unknown options are refused with their name.

Idempotency (Web Requests): a receipt's request uuid is uuid5(operation, tag, generation) — the
same for every attempt. A resend answers 409 and we read the first request's result; the
generation moves on only when the service reported the previous request as certainly failed
(``error``/``canceled``), so a request is never submitted twice under different uuids while its
outcome is open. Hence :attr:`lookup_by_key` and :meth:`find_by_key`.
"""
from __future__ import annotations

import os
from dataclasses import replace
import uuid as uuidlib
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from kkt_drivers import marking_flow, permit
from kkt_drivers.atol import codes as c
from kkt_drivers.atol import counters as atol_counters
from kkt_drivers.atol import marking as mk
from kkt_drivers.atol import tasks as t
from kkt_drivers.atol.libfptr import LibFptrTransport
from kkt_drivers.atol.webrequests import DEFAULT_POLL_S, DEFAULT_TIMEOUT_S, WebRequestsTransport
from kkt_drivers.base import Driver
from kkt_drivers.counters import ShiftTotals
from kkt_drivers.errors import (
    DriverConfigError, KktError, OutcomeUnknownError, TransientError,
)
from kkt_drivers.receipt import DeviceStatus, DocumentKind, FiscalDocument, Receipt

DEFAULT_PORT = 16732
DEFAULT_API_PATH = "/api/v2"
#: seconds to wait for a fiscal request's result (a long receipt, a slow FN, a queue ahead of it)
DEFAULT_FISCAL_TIMEOUT_S = 120.0
#: seconds to wait for a status / report request
DEFAULT_STATUS_TIMEOUT_S = 30.0
#: a receipt tag's uuids tried in turn; more certain failures than this for one receipt is absurd
MAX_GENERATIONS = 64

HTTP_OPTIONS = ("device_id", "user", "password_env", "timeout", "fiscal_timeout", "status_timeout", "poll_s",
                "verify")
LIB_OPTIONS = ("fiscal_timeout", "status_timeout")
#: the FN check of marked goods, on both transports
MARKING_OPTIONS = ("marking_timeout", "marking_poll_s", marking_flow.OPTION) + permit.OPTIONS
STATUS_TASKS = ("getShiftStatus", "getFnStatus", "getFnInfo", "getDeviceStatus", "ofdExchangeStatus")


class AtolDriver(Driver):
    """An ATOL register; the transport decides Web Requests or libfptr10."""

    model = "atol"
    reads_counters = True
    #: beginMarkingCodeValidation → getMarkingCodeValidationStatus → accept/decline before the receipt
    supports_marking = True

    def __init__(self, transport: WebRequestsTransport | LibFptrTransport, *,
                 fiscal_timeout_s: float = DEFAULT_FISCAL_TIMEOUT_S,
                 status_timeout_s: float = DEFAULT_STATUS_TIMEOUT_S,
                 marking_timeout_s: float = mk.DEFAULT_MARKING_TIMEOUT_S,
                 marking_poll_s: float = mk.DEFAULT_MARKING_POLL_S, sell_unanswered: bool = False) -> None:
        self.transport = transport
        self.fiscal_timeout_s = fiscal_timeout_s
        self.status_timeout_s = status_timeout_s
        self.marking_timeout_s = marking_timeout_s
        self.marking_poll_s = marking_poll_s
        self.sell_unanswered = sell_unanswered
        #: the разрешительный режим pre-check (permit_url / permit_key_env) producing 1260 → industryInfo
        self.permit: permit.PermitChecker | None = None
        # only a service that stores our uuid can answer "what became of this receipt?"
        self.lookup_by_key = transport.keeps_keys
        self._fn_serial = ""

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def capabilities(cls, scheme: str) -> dict[str, bool]:
        """Web Requests stores our uuid (lookup by key); libfptr on this host does not."""
        return {**super().capabilities(scheme), "lookup_by_key": scheme != "atol+libfptr"}

    @classmethod
    def from_url(cls, url: str) -> "AtolDriver":
        """Build from an ``atol+http(s)://`` or ``atol+libfptr://`` URL (see the module header)."""
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        try:
            if parts.scheme in ("atol+http", "atol+https"):
                return cls._web_requests(parts, dict(pairs))
            if parts.scheme == "atol+libfptr":
                return cls._libfptr(parts, pairs)
        except ValueError as exc:
            raise DriverConfigError(f"register URL {_redacted(url)!r}: {exc}") from exc
        raise DriverConfigError(f"unknown ATOL URL scheme {parts.scheme!r} (atol+http, atol+https, atol+libfptr)")

    @classmethod
    def _web_requests(cls, parts: Any, opts: dict[str, str]) -> "AtolDriver":
        _refuse(opts, HTTP_OPTIONS + MARKING_OPTIONS)
        if parts.password is not None:
            raise DriverConfigError("put the Web Requests password in an environment variable named by "
                                    "password_env, never in the register URL")
        if not parts.hostname:
            raise DriverConfigError("ATOL Web Requests URL needs a host, e.g. atol+http://127.0.0.1:16732")
        auth = None
        user = opts.get("user") or parts.username
        if opts.get("password_env"):
            if not user:
                raise DriverConfigError("password_env needs user=NAME")
            password = os.environ.get(opts["password_env"])
            if password is None:
                raise DriverConfigError(f"environment variable {opts['password_env']} (password_env) is not set")
            auth = (user, password)
        scheme = "https" if parts.scheme == "atol+https" else "http"
        netloc = f"{parts.hostname}:{parts.port or DEFAULT_PORT}"
        base = urlunsplit((scheme, netloc, parts.path.rstrip("/") or DEFAULT_API_PATH, "", ""))
        transport = WebRequestsTransport(
            base, device_id=opts.get("device_id") or None, auth=auth,
            timeout_s=_positive(opts, "timeout", DEFAULT_TIMEOUT_S), poll_s=_positive(opts, "poll_s", DEFAULT_POLL_S),
            verify=opts.get("verify", "1") not in ("0", "false", "no"))
        drv = cls(transport, fiscal_timeout_s=_positive(opts, "fiscal_timeout", DEFAULT_FISCAL_TIMEOUT_S),
                  status_timeout_s=_positive(opts, "status_timeout", DEFAULT_STATUS_TIMEOUT_S), **_marking(opts))
        drv.permit = permit.PermitChecker.from_options(opts)
        return drv

    @classmethod
    def _libfptr(cls, parts: Any, pairs: list[tuple[str, str]]) -> "AtolDriver":
        settings = {k[len("setting."):]: v for k, v in pairs if k.startswith("setting.")}
        opts = {k: v for k, v in pairs if not k.startswith("setting.")}
        _refuse(opts, LIB_OPTIONS + MARKING_OPTIONS)
        library = parts.path
        if not library:
            raise DriverConfigError("atol+libfptr URL needs the library path, e.g. atol+libfptr:///opt/atol/libfptr10.so")
        drv = cls(LibFptrTransport(library, settings),
                  fiscal_timeout_s=_positive(opts, "fiscal_timeout", DEFAULT_FISCAL_TIMEOUT_S),
                  status_timeout_s=_positive(opts, "status_timeout", DEFAULT_STATUS_TIMEOUT_S), **_marking(opts))
        drv.permit = permit.PermitChecker.from_options(opts)
        return drv

    # -- link --------------------------------------------------------------------------------
    def connect(self) -> None:
        self.transport.open()

    def disconnect(self) -> None:
        self.transport.close()

    # -- running tasks -----------------------------------------------------------------------
    def _run(self, tasks: list[dict[str, Any]], *, fiscal: bool = False,
             optional: int = 0) -> list[dict[str, Any] | None]:
        """Run *tasks* as one request (not keyed by us); their results, or the classified error.

        The last *optional* tasks may fail (firmware without them): their result is then None.
        """
        tr = self.transport
        required = len(tasks) - optional
        if isinstance(tr, LibFptrTransport):
            out: list[dict[str, Any] | None] = []
            for n, task in enumerate(tasks):
                try:
                    out.append(tr.process(task, fiscal=fiscal))
                except (TransientError, OutcomeUnknownError):
                    raise
                except KktError:
                    if n < required:
                        raise
                    out.append(None)
            return out
        uuid = str(uuidlib.uuid4())
        tr.post(uuid, tasks, fiscal=fiscal)
        results = tr.wait(uuid, self.fiscal_timeout_s if fiscal else self.status_timeout_s, fiscal=fiscal)
        if len(results) != len(tasks):
            what = f"ATOL answered {len(results)} results for {len(tasks)} tasks"
            raise OutcomeUnknownError(what) if fiscal else TransientError(what)
        head: list[dict[str, Any] | None] = list(_outcome(results[:required], tasks[:required], fiscal=fiscal))
        for task, r in zip(tasks[required:], results[required:]):
            head.append((r.get("result") or {}) if r["status"] == c.READY else None)
        return head

    def status(self) -> DeviceStatus:
        """Shift, FN (serial, last FD), device and OFD state in one request."""
        # the OFD exchange status is optional: a firmware without it must not hide the rest
        # so is the marking work state (checkImcWorkState: notifications queued, marking blocked)
        shift, fn_status, fn_info, device, ofd, imc = self._run(
            [{"type": k} for k in STATUS_TASKS] + [{"type": mk.WORK_STATE_TASK}], optional=2)
        try:
            st = t.device_status(shift, fn_status, fn_info, device)
            unsent = t.unsent_documents(ofd) if ofd is not None else None
        except t.AnswerError as exc:
            raise TransientError(f"ATOL status answer is malformed: {exc}") from exc
        self._fn_serial = st.fn_serial
        st = mk.with_work_state(st, imc)
        if unsent is None:
            return replace(st, extra={"ofd_exchange": "unknown"})
        return replace(st, unsent_documents=unsent)

    def open_shift(self, cashier: str | None = None) -> FiscalDocument:
        (res,) = self._run([t.shift_task("openShift", cashier)], fiscal=True)
        return _document(res or {}, DocumentKind.OPEN_SHIFT)

    def close_shift(self, cashier: str | None = None) -> FiscalDocument:
        (res,) = self._run([t.shift_task("closeShift", cashier)], fiscal=True)
        return _document(res or {}, DocumentKind.CLOSE_SHIFT)

    def x_report(self) -> None:
        self._run([{"type": "reportX"}])

    def cancel_receipt(self) -> None:
        try:
            self._run([{"type": "cancelReceipt"}])
        except KktError as exc:
            if c.code_of(exc) != c.DENIED_IN_CLOSED_RECEIPT:
                raise  # "receipt closed" means there was nothing to cancel

    def continue_print(self) -> None:
        self._run([{"type": "continuePrint"}])

    def document(self, fd_number: int) -> FiscalDocument | None:
        try:
            (res,) = self._run([t.fn_document_task(fd_number)])
        except KktError as exc:
            if c.code_of(exc) == c.FN_NO_MORE_DATA:
                return None  # no such document in the FN
            raise
        try:
            return t.document_from_fn_document(res or {}, self._fn_serial)
        except t.AnswerError as exc:
            raise TransientError(f"getFnDocument {fd_number}: {exc}") from exc

    def shift_totals(self, shift: int | None = None) -> ShiftTotals | None:
        """The register's shift counters (getShiftTotals: kkt_drivers.atol.counters)."""
        return atol_counters.read(self._run, shift)

    # -- receipts ----------------------------------------------------------------------------
    def fiscalize(self, receipt: Receipt) -> FiscalDocument:
        results: dict[int, int] = {}
        if receipt.marking_codes and not self._submitted(receipt):
            # the FN checks every code before the receipt (marking_flow); not again for a receipt whose
            # request the service already holds: its outcome is read, never sent twice
            if self.permit is not None:
                receipt = self.permit.apply(receipt, self._fn_serial or self.status().fn_serial)
            results = self._check_marking(receipt)
        task = t.receipt_task(receipt)
        if receipt.marking_codes:
            task = mk.add_to_task(task, receipt, results)
        doc = self._fiscalize_task(receipt, task)
        return replace(doc, marking_results=marking_flow.as_results(receipt, results)) if results else doc

    def _check_marking(self, receipt: Receipt) -> dict[int, int]:
        flow = mk.AtolMarking(lambda tasks, optional: self._run(tasks, optional=optional),
                              timeout_s=self.marking_timeout_s, poll_s=self.marking_poll_s,
                              sell_unanswered=self.sell_unanswered)
        return flow.check_receipt(receipt)

    def _submitted(self, receipt: Receipt) -> bool:
        """True when Web Requests holds a request of *receipt* not certainly failed (libfptr: never)."""
        tr = self.transport
        if not isinstance(tr, WebRequestsTransport):
            return False
        for gen in range(MAX_GENERATIONS):
            results = tr.get(t.request_uuid(receipt, gen))
            if results is None:
                return False
            if not _certainly_failed(results):
                return True
        return True

    def _fiscalize_task(self, receipt: Receipt, task: dict[str, Any]) -> FiscalDocument:
        tr = self.transport
        if isinstance(tr, LibFptrTransport):
            return self._fiscalize_direct(tr, receipt, task)
        self._step("receipt_opened")
        uuid = self._submit(tr, receipt, task)
        self._step("close_sent")
        results = tr.wait(uuid, self.fiscal_timeout_s, fiscal=True)
        (res,) = _outcome(results, [task], fiscal=True)
        doc = _receipt_document(res, receipt)
        if doc.total != receipt.total:
            # the uuid's request was another receipt with our tag (e.g. changed since): never take it as ours
            raise OutcomeUnknownError(f"request {uuid} made FD {doc.fd_number} with total {doc.total}, "
                                      f"this receipt's total is {receipt.total}")
        self._step("register_answered")
        return doc

    def _fiscalize_direct(self, tr: LibFptrTransport, receipt: Receipt, task: dict[str, Any]) -> FiscalDocument:
        """processJson on this host. No service blocks and re-reads the FD counter for us, so we do
        what Web Requests does: read it before, and after a failure tell "refused" from "made"."""
        fd_before = self._last_fd(tr)
        self._step("receipt_opened")
        self._step("close_sent")
        try:
            res = tr.process(task, fiscal=True)
        except OutcomeUnknownError:
            raise
        except KktError as exc:
            try:
                fd_after = self._last_fd(tr)
            except KktError:
                raise OutcomeUnknownError(f"{exc} — and the FD counter cannot be read to tell whether the "
                                          "document was made", vendor_code=exc.vendor_code) from exc
            if fd_after != fd_before:
                raise OutcomeUnknownError(f"{exc} — but the FD counter moved from {fd_before} to {fd_after}",
                                          vendor_code=exc.vendor_code) from exc
            raise
        self._step("register_answered")
        return _receipt_document(res, receipt)

    @staticmethod
    def _last_fd(tr: LibFptrTransport) -> int:
        res = tr.process({"type": "getFnStatus"}, fiscal=False)
        try:
            return t.last_fd_number(res)
        except t.AnswerError as exc:
            raise TransientError(f"getFnStatus: {exc}") from exc

    def _submit(self, tr: WebRequestsTransport, receipt: Receipt, task: dict[str, Any]) -> str:
        """POST under the receipt's current uuid; a known uuid is read, never sent again."""
        for gen in range(MAX_GENERATIONS):
            uuid = t.request_uuid(receipt, gen)
            if tr.post(uuid, [task], fiscal=True):
                return uuid
            results = tr.get(uuid, fiscal=True)
            if results is None:
                raise OutcomeUnknownError(f"service answered 409 for {uuid} but does not show it")
            if not _certainly_failed(results):
                return uuid  # ready or still running: its result is this receipt's
        raise OutcomeUnknownError(f"{MAX_GENERATIONS} failed requests for tag {receipt.tag}; look at the service")

    def find_by_key(self, receipt: Receipt) -> FiscalDocument | None:
        """Walk the receipt's uuids: ready → its document; unknown uuid → None; running → unknown."""
        tr = self.transport
        if not isinstance(tr, WebRequestsTransport):
            raise NotImplementedError("libfptr10 keeps no request keys; read documents instead")
        for gen in range(MAX_GENERATIONS):
            uuid = t.request_uuid(receipt, gen)
            results = tr.get(uuid)
            if results is None:
                return None  # never submitted: safe to send again
            if _certainly_failed(results):
                continue
            statuses = {r["status"] for r in results}
            if statuses & (set(c.PENDING) | {c.BLOCKED}):
                raise OutcomeUnknownError(f"request {uuid} is still {'/'.join(sorted(statuses))}")
            (res,) = _outcome(results, [t.receipt_task(receipt)], fiscal=True)
            return _receipt_document(res, receipt)
        raise OutcomeUnknownError(f"{MAX_GENERATIONS} failed requests for tag {receipt.tag}; look at the service")


# -- answers -------------------------------------------------------------------------------------
def _certainly_failed(results: list[dict[str, Any]]) -> bool:
    """The service itself says nothing was fiscalized: an error (never blocked) or a cancel."""
    first = results[0]["status"]
    return first == c.CANCELED or (first == c.ERROR and _code(results[0]) != c.CLOSE_RECEIPT_INTERRUPTED)


def _code(result: dict[str, Any]) -> int:
    err = result.get("error") or {}
    try:
        return int(err.get("code", 0))
    except (TypeError, ValueError):
        return -1


def _outcome(results: list[dict[str, Any]], tasks: list[dict[str, Any]], *, fiscal: bool) -> list[dict[str, Any]]:
    """Each subtask's result, or the error its status and code stand for."""
    if len(results) != len(tasks):
        what = f"ATOL answered {len(results)} results for {len(tasks)} tasks"
        raise OutcomeUnknownError(what) if fiscal else TransientError(what)
    out = []
    for task, r in zip(tasks, results):
        status = r["status"]
        if status == c.READY:
            res = r.get("result")
            out.append(res if isinstance(res, dict) else {})
        elif status == c.ERROR:
            err = r.get("error") or {}
            raise c.error_for(_code(r), str(err.get("description", "")), task=task["type"])
        elif status == c.BLOCKED:
            raise OutcomeUnknownError(f"ATOL blocked its queue on {task['type']}: the register's answer was lost; "
                                      "the service resolves it by the FD counter", vendor_code="ATOL blocked")
        elif status == c.CANCELED:
            raise TransientError(f"ATOL request with {task['type']} was cancelled before it ran")
        else:  # interrupted after an earlier error (raised above), or still pending
            what = f"ATOL task {task['type']} is {status}"
            raise OutcomeUnknownError(what) if fiscal else TransientError(what)
    return out


def _document(res: dict[str, Any], kind: DocumentKind) -> FiscalDocument:
    try:
        return t.document_from_fiscal_params(res, kind)
    except t.AnswerError as exc:
        # the document was made (status ready) but we cannot read its requisites
        raise OutcomeUnknownError(f"ATOL {kind.value} result is malformed: {exc}") from exc


def _receipt_document(res: dict[str, Any], receipt: Receipt) -> FiscalDocument:
    kind = DocumentKind.CORRECTION if receipt.correction else DocumentKind.RECEIPT
    try:
        return t.document_from_fiscal_params(res, kind, operation=receipt.operation, tag=receipt.tag)
    except t.AnswerError as exc:
        raise OutcomeUnknownError(f"ATOL receipt result is malformed: {exc}") from exc


def _marking(opts: dict[str, str]) -> dict[str, Any]:
    """The marking options of the URL as constructor arguments."""
    return {"marking_timeout_s": _positive(opts, "marking_timeout", mk.DEFAULT_MARKING_TIMEOUT_S),
            "marking_poll_s": _positive(opts, "marking_poll_s", mk.DEFAULT_MARKING_POLL_S),
            "sell_unanswered": marking_flow.sell_unanswered(opts.get(marking_flow.OPTION))}


def _refuse(opts: dict[str, str], known: tuple[str, ...]) -> None:
    for key in opts:
        if key not in known:
            raise DriverConfigError(f"ATOL URL option {key!r} is unknown (options: {', '.join(known)})")


def _positive(opts: dict[str, str], key: str, default: float) -> float:
    value = float(opts.get(key, default))  # seconds, not money
    if value <= 0:
        raise ValueError(f"{key} must be positive")
    return value


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
