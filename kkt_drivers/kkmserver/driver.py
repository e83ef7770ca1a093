"""Driver for KKMServer (kkmserver.ru): JSON commands over HTTP (``POST /Execute``) to a register pool.

URL grammar::

    kkmserver+http://host:5893[/base]?num_device=1&user=Admin&password_env=KKT_KKM_PASSWORD
    kkmserver+https://host:5894?num_device=2&password_env=KKT_KKM_PASSWORD&verify=1

| option       | default | meaning                                                                |
|--------------|---------|------------------------------------------------------------------------|
| num_device   | 1       | KKMServer's ``NumDevice`` (0 = the server picks the first free one)    |
| user         | Admin   | Basic-auth user                                                        |
| password_env | —       | name of the environment variable holding the password (never the password itself) |
| timeout      | 10      | HTTP connect/read allowance on top of ``wait``, seconds                |
| wait         | 30      | KKMServer's ``Timeout`` for RegisterCheck: how long the server waits, s (1 = asynchronous); reads wait at least 10 s |
| deadline_s   | 120     | how long a receipt may run in total before its outcome is unknown, s   |
| poll_ms      | 500     | GetRezult polling interval while a command runs, ms                    |
| key_prefix   | kktw    | prefix of ``IdCommand`` (tell several shops on one KKMServer apart)    |
| verify       | 1       | https: verify the server's certificate (0 only for a self-signed lab)  |
| marking_unanswered | pause | marked goods: ``sell`` registers a code whose check ОИСМ did not answer (``AcceptOnBad``); docs/marking.md |
| permit_url, permit_key_env | — | the разрешительный режим pre-check (:mod:`kkt_drivers.permit`); its 1260 goes as ``GoodCodeData.IndustryProps`` |

Unknown options, a ``password=`` option and credentials inside the URL are refused.

Exactly once: every receipt's ``IdCommand`` is derived from its tag and operation (not the
attempt), so recovery asks ``GetRezult`` for it (:meth:`KkmServerDriver.find_by_key`). Nothing is
resent here; a reply lost after RegisterCheck was sent is OutcomeUnknownError.
"""
from __future__ import annotations

import base64
import logging
import os
import time
import uuid
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from kkt_drivers import marking_flow, permit
from kkt_drivers.base import Driver
from kkt_drivers.counters import ShiftTotals
from kkt_drivers.errors import (
    DeviceStateError, DriverConfigError, KktError, OutcomeUnknownError, RejectedError, TransientError,
)
from kkt_drivers.kkmserver import commands as c
from kkt_drivers.kkmserver import counters as kkm_counters
from kkt_drivers.receipt import DeviceStatus, DocumentKind, FiscalDocument, Receipt

log = logging.getLogger(__name__)

SCHEMES = {"kkmserver+http": "http", "kkmserver+https": "https"}
OPTIONS = ("num_device", "user", "password_env", "timeout", "wait", "deadline_s", "poll_ms", "key_prefix", "verify",
           "marking_unanswered") + permit.OPTIONS
DEFAULT_NUM_DEVICE = 1
DEFAULT_USER = "Admin"
DEFAULT_HTTP_TIMEOUT_S = 10.0
DEFAULT_WAIT_S = 30
DEFAULT_DEADLINE_S = 120.0
DEFAULT_POLL_MS = 500
DEFAULT_KEY_PREFIX = "kktw"
#: reads (status, documents, shifts) always wait synchronously at least this long, seconds
READ_WAIT_S = 10
#: KKMServer's default port (http)
DEFAULT_PORT = 5893
#: how an answer says a document does not exist (GUESS: the wording)
_NOT_FOUND_TEXT = "не найден"


class KkmServerDriver(Driver):
    """One register (``NumDevice``) behind a KKMServer."""

    model = "kkmserver"
    reads_counters = True
    lookup_by_key = True
    supports_marking = True

    def __init__(self, base_url: str, *, num_device: int = DEFAULT_NUM_DEVICE, user: str = DEFAULT_USER,
                 password: str | None = None, http_timeout_s: float = DEFAULT_HTTP_TIMEOUT_S,
                 wait_s: int = DEFAULT_WAIT_S, deadline_s: float = DEFAULT_DEADLINE_S,
                 poll_s: float = DEFAULT_POLL_MS / 1000, key_prefix: str = DEFAULT_KEY_PREFIX,
                 verify: bool = True, sell_unanswered: bool = False) -> None:
        self.endpoint = base_url.rstrip("/") + "/Execute"
        self.sell_unanswered = sell_unanswered
        self.num_device = num_device
        self.user = user
        self._password = password
        self.http_timeout_s = http_timeout_s
        self.wait_s = wait_s
        self.deadline_s = deadline_s
        self.poll_s = poll_s
        self.key_prefix = key_prefix
        self.verify = verify
        self._client: httpx.Client | None = None
        #: the разрешительный режим pre-check (permit_url / permit_key_env), producing 1260 → IndustryProps
        self.permit: permit.PermitChecker | None = None
        #: the register's last FD number as this driver last saw it (status or its own document);
        # a baseline for telling a refusal from a failure after the close without one more read
        # (each read also takes a slot of KKMServer's short result memory)
        self._fd_seen: int | None = None

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str) -> "KkmServerDriver":
        """Build from a ``kkmserver+http(s)://`` URL (see the module header)."""
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise DriverConfigError(f"KKMServer URL {url!r}: scheme must be one of {', '.join(SCHEMES)}")
        if parts.username or parts.password:
            raise DriverConfigError("KKMServer URL must not carry credentials; use user= and password_env=")
        if not parts.hostname:
            raise DriverConfigError(f"KKMServer URL {url!r} has no host")
        opts: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "password":
                raise DriverConfigError("KKMServer URL: put the password in an environment variable and name "
                                        "it with password_env=, never in the URL")
            if key not in OPTIONS:
                raise DriverConfigError(f"KKMServer URL option {key!r} is unknown (options: {', '.join(OPTIONS)})")
            opts[key] = value
        password = None
        if "password_env" in opts:
            name = opts["password_env"]
            if name not in os.environ:
                raise DriverConfigError(f"KKMServer URL: environment variable {name!r} (password_env) is not set")
            password = os.environ[name]
        try:
            port = parts.port or DEFAULT_PORT
            kwargs: dict[str, Any] = dict(
                num_device=int(opts.get("num_device", DEFAULT_NUM_DEVICE)),
                user=opts.get("user", DEFAULT_USER), password=password,
                http_timeout_s=float(opts.get("timeout", DEFAULT_HTTP_TIMEOUT_S)),  # seconds, not money
                wait_s=int(opts.get("wait", DEFAULT_WAIT_S)),
                deadline_s=float(opts.get("deadline_s", DEFAULT_DEADLINE_S)),
                poll_s=int(opts.get("poll_ms", DEFAULT_POLL_MS)) / 1000,
                key_prefix=opts.get("key_prefix", DEFAULT_KEY_PREFIX),
                verify=opts.get("verify", "1") not in ("0", "false", "no"),
                sell_unanswered=marking_flow.sell_unanswered(opts.get("marking_unanswered")),
            )
        except ValueError as exc:
            raise DriverConfigError(f"KKMServer URL {url!r}: {exc}") from exc
        if kwargs["num_device"] < 0 or kwargs["wait_s"] < 1 or kwargs["http_timeout_s"] <= 0 or kwargs["poll_s"] <= 0:
            raise DriverConfigError(f"KKMServer URL {url!r}: num_device >= 0, wait >= 1, timeout and poll_ms > 0")
        if not 1 <= len(kwargs["key_prefix"]) <= 12:
            raise DriverConfigError("KKMServer URL option 'key_prefix' must be 1..12 characters")
        base = f"{SCHEMES[parts.scheme]}://{parts.hostname}:{port}{parts.path}"
        drv = cls(base, **kwargs)
        drv.permit = permit.PermitChecker.from_options(opts)
        return drv

    # -- link ---------------------------------------------------------------------------------------
    def connect(self) -> None:
        if self._client is not None:
            return
        headers = {"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"}
        if self._password is not None:
            token = base64.b64encode(f"{self.user}:{self._password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        timeout = httpx.Timeout(self.http_timeout_s + max(self.wait_s, READ_WAIT_S), connect=self.http_timeout_s)
        # no transport retries: a request is sent once; the caller decides what a failure means
        self._client = httpx.Client(headers=headers, timeout=timeout, verify=self.verify)

    def disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing must never raise
                log.debug("closing the HTTP client failed", exc_info=True)

    def _post(self, cmd: dict[str, Any], *, fiscal: bool) -> Any:
        """POST one command; the parsed answer, or a classified error.

        *fiscal*: the command makes a document, so any failure after the request may have reached
        KKMServer is OutcomeUnknownError; for reads it is TransientError.
        """
        self.connect()
        assert self._client is not None
        unknown = OutcomeUnknownError if fiscal else TransientError
        what = cmd["Command"]
        try:
            wait = self.wait_s if fiscal else max(self.wait_s, READ_WAIT_S)
            resp = self._client.post(self.endpoint, content=c.dumps(cmd),
                                     timeout=httpx.Timeout(self.http_timeout_s + wait, connect=self.http_timeout_s))
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TransientError(f"KKMServer unreachable ({what}): {exc}") from exc
        except httpx.TimeoutException as exc:
            raise unknown(f"no answer from KKMServer to {what} in time: {exc}") from exc
        except httpx.HTTPError as exc:  # reset, protocol error, EOF before the answer
            raise unknown(f"answer to {what} lost: {type(exc).__name__}: {exc}") from exc
        code = resp.status_code
        if code in (401, 403):
            raise DeviceStateError(f"KKMServer refused the credentials (HTTP {code}); check user/password_env",
                                   vendor_code=f"HTTP {code}")
        if code in (404, 405):
            raise DeviceStateError(f"KKMServer has no {self.endpoint} (HTTP {code}); check the URL",
                                   vendor_code=f"HTTP {code}")
        if code >= 500:
            raise unknown(f"KKMServer failed on {what}: HTTP {code}", vendor_code=f"HTTP {code}")
        if code != 200:
            raise RejectedError(f"KKMServer refused {what}: HTTP {code}", vendor_code=f"HTTP {code}")
        try:
            answer = c.loads(resp.content)
            c.status_of(answer)
        except c.AnswerError as exc:
            raise unknown(f"KKMServer's answer to {what} is not a KKMServer answer: {exc}") from exc
        return answer

    def _read(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """A read-only command that must succeed (Status 0); errors are classified."""
        return self._succeeded(self._finished(cmd))

    def _finished(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Send a non-receipt command and wait for its final answer (any status)."""
        answer = self._post(cmd, fiscal=False)
        if c.status_of(answer) in c.PENDING:
            answer = self._await(cmd["IdCommand"], fiscal=False)
        return answer

    @staticmethod
    def _succeeded(answer: dict[str, Any]) -> dict[str, Any]:
        """*answer* if it is Status 0; otherwise the classified error."""
        status = c.status_of(answer)
        if status == c.STATUS_ERROR:
            err = c.error_for(str(answer.get("Error", "")), fiscal=False)
            if isinstance(err, RejectedError):
                # a read (or a shift command) refused for a reason we cannot name: the register
                # needs a person, not the payment's data
                raise DeviceStateError(str(err), vendor_code=err.vendor_code) from None
            raise err
        if status != c.STATUS_OK:   # 3: device not found; 5 cannot happen with a fresh IdCommand
            raise TransientError(f"KKMServer: Status {status}: {answer.get('Error') or 'device not found'}",
                                 vendor_code=str(answer.get("Error"))[:200])
        return answer

    def _cmd(self, name: str, **fields: Any) -> dict[str, Any]:
        """A non-receipt command: a fresh IdCommand, and a synchronous wait even in async mode."""
        return c.envelope(name, self.num_device, str(uuid.uuid4()), max(self.wait_s, READ_WAIT_S), **fields)

    def _await(self, id_command: str, *, fiscal: bool) -> dict[str, Any]:
        """Poll GetRezult until the command finishes or the deadline passes."""
        deadline = time.monotonic() + self.deadline_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            time.sleep(self.poll_s)
            try:
                got = self._get_rezult(id_command)
            except (TransientError, c.AnswerError) as exc:
                last = exc  # the server may be restarting; keep asking until the deadline
                continue
            if got is not None and c.status_of(got) not in c.PENDING:
                return got
        err = OutcomeUnknownError if fiscal else TransientError
        raise err(f"command {id_command} still not finished after {self.deadline_s:.0f} s"
                  + (f" (last: {last})" if last else ""))

    def _get_rezult(self, id_command: str) -> dict[str, Any] | None:
        """The stored answer of *id_command*; None when KKMServer does not know it."""
        answer = self._post({"Command": "GetRezult", "IdCommand": id_command}, fiscal=False)
        status = c.status_of(answer)
        if status == c.STATUS_NOT_FOUND:
            return None
        if status != c.STATUS_OK:
            raise TransientError(f"GetRezult failed: {answer.get('Error')}")
        rezult = answer.get("Rezult")
        c.status_of(rezult)  # AnswerError when absent or malformed
        return rezult

    # -- reads ----------------------------------------------------------------------------------------
    def status(self) -> DeviceStatus:
        answer = self._read(self._cmd("GetDataKKT"))
        try:
            info = c.require(answer, "Info", dict)
            state = c.require(info, "SessionState", int)
            last_fd = c.require(answer, "CheckNumber", int)
            shift = c.require(answer, "SessionNumber", int)
            serial = c.require(info, "KktNumber", str)
            fn = c.require(info, "FnNumber", str)
        except c.AnswerError as exc:
            raise TransientError(f"KKMServer's GetDataKKT answer is incomplete: {exc}") from exc
        self._fd_seen = last_fd
        unsent = info.get("OFD_NumErrorDoc")
        return DeviceStatus(
            register_serial=serial, fn_serial=fn, last_fd_number=last_fd,
            shift_open=state in (c.SESSION_OPEN, c.SESSION_EXPIRED), shift_number=shift,
            shift_opened_at=None,  # KKMServer does not report when the shift opened
            shift_expired=state == c.SESSION_EXPIRED,
            receipt_open=info.get("CheckOpened") is True,  # GUESS: the field's name
            paper_ok=info.get("PaperOver") is not True,
            fn_ok=info.get("FN_MemOverflowl") is not True,
            unsent_documents=unsent if isinstance(unsent, int) and not isinstance(unsent, bool) else 0,
            model=self.model, extra={"num_device": str(answer.get("NumDevice", self.num_device))},
        )

    def shift_totals(self, shift: int | None = None) -> ShiftTotals | None:
        """The FN's shift counters (GetCounters: kkt_drivers.kkmserver.counters); None when the
        register is on another shift than *shift* (GetCounters names none: GetDataKKT tells)."""
        current = self.status().shift_number
        if shift is not None and shift != current:
            return None
        answer = self._read(self._cmd(kkm_counters.COMMAND))
        try:
            return kkm_counters.decode(answer, current)
        except kkm_counters.CountersError as exc:
            raise TransientError(f"KKMServer's GetCounters answer is incomplete: {exc}") from exc

    def document(self, fd_number: int) -> FiscalDocument | None:
        answer = self._finished(self._cmd("GetDataCheck", FiscalNumber=fd_number, NumberCopies=0))
        if c.status_of(answer) == c.STATUS_ERROR and _NOT_FOUND_TEXT in str(answer.get("Error", "")).lower():
            return None
        answer = self._succeeded(answer)
        try:
            return c.stored_document(answer)
        except c.AnswerError as exc:
            raise TransientError(f"KKMServer's GetDataCheck answer for FD {fd_number} is incomplete: {exc}") from exc

    def find_by_key(self, receipt: Receipt) -> FiscalDocument | None:
        """What became of *receipt*'s RegisterCheck, asked by its IdCommand.

        None: KKMServer does not know the IdCommand, or the command ended in an error (GUESS:
        KKMServer reports an error only when the register made no document). OutcomeUnknownError
        while it runs.

        Caution: KKMServer keeps only its last 100 commands (reads included), so "does not know"
        means "never received" only while recovery runs soon after the failure; see docs/kkmserver.md.
        """
        key = c.idempotency_key(receipt, self.key_prefix)
        try:
            got = self._get_rezult(key)
        except c.AnswerError as exc:
            raise TransientError(f"GetRezult {key}: {exc}") from exc
        if got is None:
            return None
        status = c.status_of(got)
        if status in c.PENDING:
            raise OutcomeUnknownError(f"KKMServer is still executing {key}")
        if status != c.STATUS_OK:
            log.info("GetRezult %s: finished with an error (%s): not fiscalized", key, got.get("Error"))
            return None
        try:
            return c.checked_document(got, receipt)
        except c.AnswerError as exc:
            raise OutcomeUnknownError(f"KKMServer's result for {key} does not describe a document: {exc}") from exc

    # -- documents -------------------------------------------------------------------------------------
    def open_shift(self, cashier: str | None = None) -> FiscalDocument:
        return self._shift("OpenShift", cashier, DocumentKind.OPEN_SHIFT)

    def close_shift(self, cashier: str | None = None) -> FiscalDocument:
        return self._shift("CloseShift", cashier, DocumentKind.CLOSE_SHIFT)

    def _shift(self, name: str, cashier: str | None, kind: DocumentKind) -> FiscalDocument:
        # a shift report is a fiscal document, but repeating a lost OpenShift is refused by the
        # register ("смена уже открыта"), so reads-style classification is safe here
        answer = self._read(self._cmd(name, CashierName=cashier or "", CashierVATIN="", NotPrint=False))
        try:
            doc = c.document_from_answer(answer, kind=kind)
        except c.AnswerError as exc:
            self._fd_seen = None
            raise TransientError(f"KKMServer's {name} answer is incomplete: {exc}") from exc
        self._fd_seen = doc.fd_number
        return doc

    def x_report(self) -> None:
        self._read(self._cmd("XReport"))

    def cancel_receipt(self) -> None:
        # GUESS: KKMServer has no "cancel" command; a non-fiscal check with CancelOpenedCheck
        # annuls a receipt an earlier failure left open (our RegisterCheck always sends it, too)
        if not self.status().receipt_open:
            return
        self._read(self._cmd("RegisterCheck", IsFiscalCheck=False, CancelOpenedCheck=True, NotPrint=True,
                             CheckStrings=[]))

    def fiscalize(self, receipt: Receipt) -> FiscalDocument:
        """RegisterCheck with our IdCommand; waits (then polls GetRezult) for the document."""
        key = c.idempotency_key(receipt, self.key_prefix)
        if receipt.marking_codes and self.permit is not None:
            # the state system's permit becomes 1260 → GoodCodeData.IndustryProps (commands.industry_props)
            receipt = self.permit.apply(receipt, self.status().fn_serial)
        cmd = c.register_check(receipt, num_device=self.num_device, id_command=key, timeout_s=self.wait_s,
                               accept_on_bad=self.sell_unanswered)
        results = self._check_marking(receipt) if receipt.marking_codes else {}  # before RegisterCheck
        # to tell a refusal from a failure after the close; a stale value can only make an error
        # look "unknown" (the FD moved), never make a document look absent
        fd_before = self._fd_seen if self._fd_seen is not None else self.status().last_fd_number
        self._step("receipt_opened")
        self._fd_seen = None   # from here on only a fresh read or our own document is a baseline
        answer = self._post(cmd, fiscal=True)
        status = c.status_of(answer)
        if status == c.STATUS_NOT_FOUND:
            # device (or command) not found: KKMServer did not start it; nothing reached a register
            raise TransientError(f"KKMServer: {answer.get('Error') or 'device not found'}",
                                 vendor_code=str(answer.get("Error"))[:200])
        self._step("close_sent")
        if status == c.STATUS_ALREADY_DONE:
            # KKMServer ran (or runs) a command with this IdCommand and did not run it again:
            # its result is the answer (never a second document)
            log.warning("KKMServer: %s was already sent (%s); taking its stored result", key, answer.get("Error"))
            try:
                stored = self._get_rezult(key)
            except (KktError, c.AnswerError) as exc:
                raise OutcomeUnknownError(f"KKMServer says {key} already ran; its result cannot be read: {exc}") from exc
            if stored is None:
                raise OutcomeUnknownError(f"KKMServer says {key} already ran but no longer has its result")
            answer, status = stored, c.status_of(stored)
        if status in c.PENDING:
            answer = self._await(key, fiscal=True)
            status = c.status_of(answer)
        if status == c.STATUS_ERROR:
            raise self._fiscal_error(answer, fd_before)
        if status != c.STATUS_OK:
            raise OutcomeUnknownError(f"KKMServer answered Status {status} for {key}")
        try:
            doc = c.checked_document(answer, receipt)
        except c.AnswerError as exc:
            raise OutcomeUnknownError(f"KKMServer's answer to RegisterCheck {key} is incomplete: {exc}") from exc
        if doc.total != receipt.total:
            # a stored result for this IdCommand from other data (e.g. an edited resend): let
            # reconciliation put it in front of a person rather than bind it silently
            raise OutcomeUnknownError(f"KKMServer's document {doc.fd_number} for {key} has total {doc.total}, "
                                      f"the receipt {receipt.total}")
        self._fd_seen = doc.fd_number
        self._step("register_answered")
        # the ValidationResult (2106) of every code, for the ledger
        return replace(doc, marking_results=marking_flow.as_results(receipt, results)) if results else doc

    def _check_marking(self, receipt: Receipt) -> dict[int, int]:
        """``ValidationMarkingCode`` for every code, then :mod:`kkt_drivers.marking_flow` decides.

        KKMServer accepts a code inside RegisterCheck itself (``GoodCodeData``), so there is no
        accept step here; a code refused now is never sent. Fractions (1291) are refused: KKMServer
        expresses them through ``PackageQuantity`` with an integer ``Quantity`` (KKMS), which this
        driver does not map yet.
        """
        for n, it in enumerate(receipt.items):
            if it.fraction is not None:
                raise RejectedError(f"items[{n}].fraction: part of a marked unit is not supported by the "
                                    "KKMServer driver yet", field=f"items[{n}].fraction")
        answer = self._read(c.validation_marking_code(receipt, num_device=self.num_device,
                                                      id_command=str(uuid.uuid4()),
                                                      timeout_s=max(self.wait_s, READ_WAIT_S)))
        try:
            results = c.validation_results(answer)
        except c.AnswerError as exc:
            raise DeviceStateError(f"KKMServer's ValidationMarkingCode answer is unreadable: {exc}") from exc

        def check(n: int, item: Any, status: Any) -> marking_flow.CheckOutcome:
            code = c.marking_text(item.marking_code)
            if code not in results:
                raise DeviceStateError(f"items[{n}].marking_code: KKMServer returned no result for the code",
                                       condition=marking_flow.COND_MARKING_TIMEOUT)
            result, text = results[code]
            return marking_flow.CheckOutcome(result=result, fn_answer=None, text=text)

        return marking_flow.check_receipt(receipt, check, None, sell_unanswered_codes=self.sell_unanswered)

    def _fiscal_error(self, answer: dict[str, Any], fd_before: int) -> KktError:
        """An error answer to RegisterCheck, trusted only if the register made no document."""
        text = str(answer.get("Error", ""))
        try:
            after = self.status().last_fd_number
        except KktError as exc:
            return OutcomeUnknownError(f"KKMServer: {text}; cannot confirm nothing was fiscalized: {exc}")
        if after != fd_before:
            return OutcomeUnknownError(f"KKMServer: {text}; but the register's last FD moved {fd_before} → {after}")
        return c.error_for(text, fiscal=True)
