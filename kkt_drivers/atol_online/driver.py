"""ATOL Online (cloud fiscalization, API v5 / FFD 1.2) as a :class:`~kkt_drivers.base.Driver`.

URL grammar::

    atol-online+https://online.atol.ru/possystem/v5?login=LOGIN&password_env=ATOL_ONLINE_PASSWORD
        &group=GROUP_CODE&inn=5544332219&payment_address=https://shop.example.ru&email=shop@example.ru
        [&callback_url=https://…][&timeout=10][&report_deadline_s=60][&poll_interval_s=1]
        [&verify=1|0|/path/to/ca.pem][&id_prefix=shop1-]
    atol-online+http://127.0.0.1:8090/possystem/v5?…      (plain HTTP: loopback emulator only)

The password is never part of the URL (URLs end up in logs): ``password_env`` names the environment
variable holding it. ``inn``, ``payment_address`` and ``email`` are the ``company`` block (the tax
system comes from each receipt). Unknown options are refused with their name.

How the service maps onto the driver contract:

* ``fiscalize``: ``POST {group}/{operation}`` with our ``external_id`` (from the receipt's tag and
  operation, see :func:`.protocol.external_id`), then ``GET {group}/report/{uuid}`` until ``done`` /
  ``fail`` or ``report_deadline_s``. The request being accepted is the step ``close_sent`` (from then
  the service will fiscalize it), the ``done`` report is ``register_answered``.
* A repeat with the same ``external_id`` answers error 33 with the first uuid: the driver follows
  that uuid, so repeating is always safe and :meth:`find_by_key` is exactly such a repeat.
* Shifts, X and Z reports are the service's business: it opens and closes shifts on its registers
  itself. :meth:`status` reports an open, unexpired shift so the worker never tries, and
  :meth:`open_shift` / :meth:`close_shift` / :meth:`x_report` refuse with :class:`ServiceManagedError`
  rather than invent a document (a made-up FD number in the ledger would be worse than a clear no).
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import ssl
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from kkt_drivers.atol_online import protocol as p
from kkt_drivers.base import Driver
from kkt_drivers.errors import DriverConfigError, OutcomeUnknownError, RejectedError, TransientError
from kkt_drivers.receipt import DeviceStatus, FiscalDocument, Receipt

log = logging.getLogger(__name__)

SCHEMES = {"atol-online+https": "https", "atol-online+http": "http"}
OPTIONS = ("login", "password_env", "group", "inn", "payment_address", "email", "callback_url", "timeout",
           "report_deadline_s", "poll_interval_s", "verify", "id_prefix")
REQUIRED = ("login", "password_env", "group", "inn", "payment_address")

#: the service's token lives 24 h (anthonyaxenov/atol-online docs); renew an hour early
TOKEN_TTL_S = 24 * 3600
TOKEN_RENEW_MARGIN_S = 3600
DEFAULT_TIMEOUT_S = 10.0
#: a receipt typically takes 4–6 s (anthonyaxenov docs/fiscalizing.md); beyond this, reconcile later
DEFAULT_REPORT_DEADLINE_S = 60.0
DEFAULT_POLL_INTERVAL_S = 1.0
#: how often a failed-for-certain external_id is replaced by the next generation within one call
MAX_GENERATIONS = 3
#: HTTP statuses that carry a service answer (the JSON body decides)
ANSWER_STATUSES = frozenset({200, 400, 401, 404, 409, 422})


class ServiceManagedError(DriverConfigError):
    """The operation belongs to the cloud service (shifts, X/Z reports), not to us."""


def _is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1")


class AtolOnlineDriver(Driver):
    """One ATOL Online register group."""

    model = "atol-online"
    lookup_by_key = True
    reads_documents = False

    def __init__(self, base_url: str, *, login: str, password: str, group: str, company: p.Company,
                 callback_url: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 report_deadline_s: float = DEFAULT_REPORT_DEADLINE_S,
                 poll_interval_s: float = DEFAULT_POLL_INTERVAL_S, verify: bool | str = True,
                 id_prefix: str = "") -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.login = login
        self._password = password
        self.group = group
        self.company = company
        self.callback_url = callback_url
        self.timeout_s = timeout_s
        self.report_deadline_s = report_deadline_s
        self.poll_interval_s = poll_interval_s
        self.verify = verify
        self.id_prefix = id_prefix
        self._client: httpx.Client | None = None
        self._token: str | None = None
        self._token_at = 0.0

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str) -> "AtolOnlineDriver":
        """Build from an ``atol-online+https://`` URL (see the module header)."""
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise DriverConfigError(f"ATOL Online URL scheme must be one of {', '.join(SCHEMES)}")
        if not parts.hostname:
            raise DriverConfigError(f"ATOL Online URL {url!r} has no host")
        if parts.username or parts.password:
            raise DriverConfigError("ATOL Online URL must not carry credentials; use login= and password_env=")
        if SCHEMES[parts.scheme] == "http" and not _is_loopback(parts.hostname):
            raise DriverConfigError("plain HTTP is for a loopback emulator only; use atol-online+https")
        opts: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "password":
                raise DriverConfigError("ATOL Online URL option 'password' is refused: put the password in an "
                                        "environment variable and name it with password_env=")
            if key not in OPTIONS:
                raise DriverConfigError(f"ATOL Online URL option {key!r} is unknown (options: {', '.join(OPTIONS)})")
            opts[key] = value
        missing = [k for k in REQUIRED if not opts.get(k)]
        if missing:
            raise DriverConfigError(f"ATOL Online URL lacks {', '.join(missing)}")
        password = os.environ.get(opts["password_env"])
        if not password:
            raise DriverConfigError(f"environment variable {opts['password_env']} (password_env) is not set")
        verify: bool | str = True
        if "verify" in opts:
            v = opts["verify"]
            verify = False if v in ("0", "false", "no") else True if v in ("1", "true", "yes") else v
        try:
            timeout = float(opts.get("timeout", DEFAULT_TIMEOUT_S))
            deadline = float(opts.get("report_deadline_s", DEFAULT_REPORT_DEADLINE_S))
            interval = float(opts.get("poll_interval_s", DEFAULT_POLL_INTERVAL_S))
        except ValueError as exc:
            raise DriverConfigError(f"ATOL Online URL: {exc}") from exc
        base = f"{SCHEMES[parts.scheme]}://{parts.netloc}{parts.path or '/'}"
        company = p.Company(inn=opts["inn"], payment_address=opts["payment_address"], email=opts.get("email"))
        return cls(base, login=opts["login"], password=password, group=opts["group"], company=company,
                   callback_url=opts.get("callback_url"), timeout_s=timeout, report_deadline_s=deadline,
                   poll_interval_s=interval, verify=verify, id_prefix=opts.get("id_prefix", ""))

    # -- link ------------------------------------------------------------------------------
    def connect(self) -> None:
        if self._client is None:
            verify: bool | ssl.SSLContext = self.verify if isinstance(self.verify, bool) else True
            if isinstance(self.verify, str):
                try:
                    verify = ssl.create_default_context(cafile=self.verify)
                except (OSError, ssl.SSLError) as exc:
                    raise DriverConfigError(f"ATOL Online verify={self.verify!r}: {exc}") from exc
            self._client = httpx.Client(base_url=self.base_url, timeout=self.timeout_s, verify=verify,
                                        headers={"Content-Type": "application/json; charset=utf-8"})

    def disconnect(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None

    def _http(self) -> httpx.Client:
        self.connect()
        assert self._client is not None
        return self._client

    def _send(self, method: str, path: str, body: Any = None, *, fiscal: bool = False) -> tuple[int, Any]:
        """One request; (HTTP status, parsed JSON). Errors translated by what may have happened.

        *fiscal*: the request registers a receipt, so an answer lost after sending is OutcomeUnknown.
        """
        headers = {"Token": self._token} if self._token and path != "getToken" else {}
        try:
            resp = self._http().request(method, path, content=p.dumps(body) if body is not None else None,
                                        headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransientError(f"ATOL Online unreachable: {exc}") from exc
        except httpx.TransportError as exc:
            if fiscal:
                raise OutcomeUnknownError(f"no answer to the registration request: {exc!r}") from exc
            raise TransientError(f"ATOL Online: {exc!r}") from exc
        if resp.status_code == 429:
            raise TransientError("ATOL Online rate limit (HTTP 429): the request was refused",
                                 vendor_code="http:429")
        try:
            data = p.loads(resp.content) if resp.content else None
        except ValueError as exc:
            if fiscal and resp.status_code not in ANSWER_STATUSES:
                raise OutcomeUnknownError(f"HTTP {resp.status_code} without a JSON answer") from exc
            raise TransientError(f"HTTP {resp.status_code} without a JSON answer") from exc
        if resp.status_code not in ANSWER_STATUSES and not (isinstance(data, dict) and data.get("error")):
            if fiscal:
                raise OutcomeUnknownError(f"HTTP {resp.status_code} to the registration request")
            raise TransientError(f"ATOL Online HTTP {resp.status_code}")
        return resp.status_code, data

    # -- token -----------------------------------------------------------------------------
    def _ensure_token(self, *, force: bool = False) -> None:
        fresh = time.monotonic() - self._token_at < TOKEN_TTL_S - TOKEN_RENEW_MARGIN_S
        if self._token and fresh and not force:
            return
        self._token = None
        _, data = self._send("POST", "getToken", {"login": self.login, "pass": self._password})
        err = p.ServiceError.from_json(data.get("error") if isinstance(data, dict) else None)
        token = data.get("token") if isinstance(data, dict) else None
        if err is not None or not token:
            if err is not None and err.code == p.ERR_BAD_CREDENTIALS:
                raise DriverConfigError(f"ATOL Online refused login {self.login!r}: {err.text}",
                                        vendor_code=err.vendor_code)
            raise TransientError(f"ATOL Online gave no token: {err.text if err else data!r}")
        self._token = str(token)
        self._token_at = time.monotonic()

    def _call(self, method: str, path: str, body: Any = None, *, fiscal: bool = False) -> tuple[int, Any]:
        """A tokened request; a token error (10/11, HTTP 401) renews the token once and repeats.

        Repeating is safe: the first try was refused for the token, and registrations carry external_id.
        """
        self._ensure_token()
        status, data = self._send(method, path, body, fiscal=fiscal)
        err = p.ServiceError.from_json(data.get("error") if isinstance(data, dict) else None)
        if status == 401 or (err and err.type == "system" and err.code in (p.ERR_TOKEN_UNKNOWN, p.ERR_TOKEN_EXPIRED)):
            log.info("ATOL Online token refused (%s); renewing", err.vendor_code if err else status)
            self._ensure_token(force=True)
            status, data = self._send(method, path, body, fiscal=fiscal)
        return status, data

    # -- registration and report -----------------------------------------------------------
    def _post(self, receipt: Receipt, ext_id: str) -> tuple[str, bool]:
        """Register under *ext_id*: (uuid, True if the service already knew the key)."""
        body = p.receipt_body(receipt, self.company, ext_id, now=dt.datetime.now(),
                              callback_url=self.callback_url)
        _, data = self._call("POST", f"{self.group}/{p.operation_name(receipt)}", body, fiscal=True)
        ans = p.Report.from_json(data) if isinstance(data, dict) else None
        if ans is None:
            raise OutcomeUnknownError(f"registration answer is not an object: {data!r}")
        if ans.error is not None and ans.error.code == p.ERR_DUPLICATE and ans.error.type == "system":
            if not ans.uuid:
                raise OutcomeUnknownError("error 33 (external_id known) without the first uuid")
            return ans.uuid, True
        if ans.error is not None:
            # refused: nothing is registered under this key (the error class says why)
            raise p.failure_error(ans.error)
        if not ans.uuid:
            raise OutcomeUnknownError(f"registration accepted without a uuid: {data!r}")
        return ans.uuid, False

    def _report(self, uuid: str) -> p.Report:
        try:
            _, data = self._call("GET", f"{self.group}/report/{uuid}")
            rep = p.Report.from_json(data)
        except (TransientError, ValueError) as exc:
            raise OutcomeUnknownError(f"report {uuid} unavailable: {exc}") from exc
        except RejectedError as exc:  # never expected for a GET; the receipt is registered regardless
            raise OutcomeUnknownError(str(exc)) from exc
        if rep.error is not None and rep.error.code == p.ERR_REPORT_NOT_FOUND and rep.status != p.STATUS_FAIL:
            # «Состояние чека не найдено. Попробуйте позднее»: not yet visible, same as wait
            return p.Report(uuid=uuid, status=p.STATUS_WAIT, error=None, payload=None)
        return rep

    def _register(self, receipt: Receipt) -> str:
        """The uuid serving *receipt*: the first live registration of its key, or a new one."""
        for generation in range(MAX_GENERATIONS):
            ext_id = p.external_id(receipt, generation, self.id_prefix)
            uuid, known = self._post(receipt, ext_id)
            if not known:
                return uuid
            rep = self._report(uuid)
            if rep.status == p.STATUS_FAIL and p.registered_nothing(rep.error):
                log.info("external_id %s failed earlier (%s); trying the next generation", ext_id,
                         rep.error.vendor_code if rep.error else "?")
                continue
            return uuid
        raise RejectedError(f"ATOL Online failed {MAX_GENERATIONS} registrations of {receipt.tag}; see its reports",
                            field="tag")

    def _poll(self, uuid: str) -> p.Report:
        """Poll until done/fail; OutcomeUnknownError past the deadline (the service still has it)."""
        deadline = time.monotonic() + self.report_deadline_s
        while True:
            try:
                rep = self._report(uuid)
            except OutcomeUnknownError as exc:   # a blip while polling: ask again until the deadline
                if time.monotonic() + self.poll_interval_s > deadline:
                    raise
                log.info("report %s: %s; asking again", uuid, exc)
            else:
                if rep.status in (p.STATUS_DONE, p.STATUS_FAIL):
                    return rep
                if time.monotonic() + self.poll_interval_s > deadline:
                    raise OutcomeUnknownError(f"receipt {uuid} still '{rep.status}' after {self.report_deadline_s} s")
            time.sleep(self.poll_interval_s)

    def _document(self, rep: p.Report, receipt: Receipt) -> FiscalDocument:
        try:
            return p.fiscal_document(rep, receipt)
        except ValueError as exc:
            raise OutcomeUnknownError(str(exc)) from exc

    # -- the driver contract ---------------------------------------------------------------
    def fiscalize(self, receipt: Receipt) -> FiscalDocument:
        """Register *receipt* and wait for its report (see the module header)."""
        uuid = self._register(receipt)
        self._step("close_sent")
        rep = self._poll(uuid)
        if rep.status == p.STATUS_FAIL:
            raise p.failure_error(rep.error)
        doc = self._document(rep, receipt)
        self._step("register_answered")
        return doc

    def find_by_key(self, receipt: Receipt) -> FiscalDocument | None:
        """Repeat the registration with the receipt's external_id and follow the uuid it answers.

        The repeat registers nothing new when the key is known; when it is not (the first request
        never arrived) it registers the receipt now, exactly once. done → the document; fail that
        the service documents as "nothing registered" → None; still wait → OutcomeUnknownError.
        """
        uuid = self._register(receipt)
        rep = self._poll(uuid)
        if rep.status == p.STATUS_FAIL:
            if p.registered_nothing(rep.error):
                return None
            raise p.failure_error(rep.error)
        return self._document(rep, receipt)

    def status(self) -> DeviceStatus:
        """What a cloud can honestly say: reachable with our login; shifts and paper are its business."""
        self._ensure_token()
        return DeviceStatus(
            register_serial=self.group, fn_serial="", last_fd_number=0, shift_open=True, shift_number=0,
            shift_opened_at=None, shift_expired=False, receipt_open=False, paper_ok=True,
            model=self.model, extra={"service": self.base_url},
        )

    def open_shift(self, cashier: str | None = None) -> FiscalDocument:
        raise ServiceManagedError("ATOL Online opens shifts on its registers itself")

    def close_shift(self, cashier: str | None = None) -> FiscalDocument:
        raise ServiceManagedError("ATOL Online closes shifts on its registers itself")

    def x_report(self) -> None:
        raise ServiceManagedError("ATOL Online has no X report for a client")

    def cancel_receipt(self) -> None:
        """No-op: a cloud receipt is never left open on our side."""

    def document(self, fd_number: int) -> FiscalDocument | None:
        raise ServiceManagedError("ATOL Online cannot read documents by FD number; use find_by_key")
