"""An ATOL Online v5 emulator: the service's HTTP(S) API on top of the shared register model.

One state directory = one register group with one register (:class:`RegisterModel`) plus
``atol_online.json``, the service's own table of accepted requests (external_id → uuid, status,
result), so idempotency survives a restart of the emulator like it survives one of the service.

Behaviour (sources in :mod:`.protocol`; our guesses marked GUESS):

* ``POST getToken`` ``{login, pass}`` → ``{token, error, timestamp}``; tokens expire after
  ``token_ttl_s`` (24 h by default), then every call answers system error 11 (HTTP 401).
* ``POST {group}/{sell|sell_refund|sell_correction|sell_refund_correction|buy…}`` with header
  ``Token`` → ``{uuid, status: "wait", error: null, timestamp}``. A known external_id answers error 33
  with the first uuid (and status). Arithmetic or structure errors → error 32 (HTTP 400).
* ``GET {group}/report/{uuid}`` → ``{uuid, status, error, payload, timestamp, group_code, daemon_code,
  device_code, external_id, callback_url}``; an unknown uuid → error 34.
* A background worker fiscalizes each accepted request on the model after ``done_delay_s``: it opens
  the register's shift itself when closed or over 24 h (cloud registers do), then open / items /
  requisites / close. A model refusal becomes status ``fail`` with an agent or driver error.

Faults (``faults``: name → probability or ``first:N``):

| name                    | effect                                                             |
|-------------------------|--------------------------------------------------------------------|
| fail_before_send        | a registration is refused with HTTP 429 (nothing accepted)         |
| lose_reply_before_close | a registration is read and dropped, connection closed, no answer   |
| lose_reply_after_close  | a registration is accepted, then the connection closes unanswered  |
| rate_limit              | any request answers HTTP 429                                       |
| fn_error                | model fault at close → status fail, driver error -3910 (FN)        |
| paper_out_mid_receipt   | model fault on an item → status fail, driver error -3807; the      |
|                         | service's operator loads paper                                     |
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import ssl
import threading
import time
import uuid as uuidlib
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from kkt_drivers.atol_online import protocol as p
from kkt_drivers.emulator.faults import FAULT_NAMES, Faults
from kkt_drivers.emulator.model import RegisterModel
from kkt_drivers.emulators import RunningEmulator
from kkt_drivers.errors import DeviceStateError, KktError, RejectedError
from kkt_drivers.receipt import (
    Item, MeasureUnit, Operation, Payment, PaymentSubject, Vat, money,
    quantity,
)

log = logging.getLogger(__name__)

WIRE_FAULTS = ("rate_limit",)
DEFAULT_PORT = 8090
BASE_PATH = "/possystem/v5/"
EMULATOR_LOGIN = "kkt-worker"
EMULATOR_GROUP = "emulator-group"
EMULATOR_INN = "5544332219"
EMULATOR_ADDRESS = "https://shop.example.ru"
#: the environment variable the emulator's URL names (the driver never takes a password in a URL)
PASSWORD_ENV = "ATOL_ONLINE_EMULATOR_PASSWORD"
EMULATOR_PASSWORD = "emulator-secret"
TOKEN_TTL_S = 24 * 3600
#: how often the background worker looks for due requests
PROCESS_TICK_S = 0.05
MAX_BODY_BYTES = 1 << 20
#: internal status of a request being fiscalized (reported as "wait")
STATUS_PROCESSING = "processing"

_OPERATIONS = {
    "sell": (Operation.SALE, False), "sell_refund": (Operation.SALE_REFUND, False),
    "buy": (Operation.EXPENSE, False), "buy_refund": (Operation.EXPENSE_REFUND, False),
    "sell_correction": (Operation.SALE, True), "sell_refund_correction": (Operation.SALE_REFUND, True),
    "buy_correction": (Operation.EXPENSE, True), "buy_refund_correction": (Operation.EXPENSE_REFUND, True),
}
_METHODS = {v: k for k, v in p.PAYMENT_METHODS.items()}
_PAY_TYPES = {v: k for k, v in p.PAYMENT_TYPES.items()}
_TAX = {v: k for k, v in p.TAX_SYSTEMS.items()}


def parse_faults(options: dict[str, str], seed: int | None = None) -> Faults:
    """Model and wire faults in one :class:`Faults`; ValueError names an unknown fault."""
    faults = Faults.parse({k: v for k, v in options.items() if k in FAULT_NAMES}, seed=seed)
    for name, raw in options.items():
        if name in FAULT_NAMES:
            continue
        if name not in WIRE_FAULTS:
            raise ValueError(f"unknown fault {name!r} (known: {', '.join(FAULT_NAMES + WIRE_FAULTS)})")
        faults.rules[name] = Faults.parse({"fn_error": raw}).rules["fn_error"]
    return faults


class ApiError(Exception):
    """An error answer: HTTP status plus the service's error object."""

    def __init__(self, http: int, code: int, text: str, kind: str = "system", **extra: Any) -> None:
        super().__init__(text)
        self.http, self.code, self.text, self.kind, self.extra = http, code, text, kind, extra

    def body(self) -> dict[str, Any]:
        return {"error": {"error_id": str(uuidlib.uuid4()), "code": self.code, "text": self.text,
                          "type": self.kind}, "timestamp": _now(), **self.extra}


class _Drop(Exception):
    """Close the connection without an answer (a lost reply)."""


def _now() -> str:
    return dt.datetime.now().strftime(p.DATETIME_FORMAT)


class AtolOnlineService:
    """The service's state and rules; the HTTP handler only parses and answers."""

    def __init__(self, state_dir: str, *, faults: Faults, login: str = EMULATOR_LOGIN,
                 password: str = EMULATOR_PASSWORD, group: str = EMULATOR_GROUP, inn: str = EMULATOR_INN,
                 payment_address: str = EMULATOR_ADDRESS, token_ttl_s: float = TOKEN_TTL_S,
                 done_delay_s: float = 0.0, serial: str = "0000000000000001", fsync: bool = True) -> None:
        self.model = RegisterModel(state_dir, serial=serial, faults=faults, fsync=fsync)
        self.faults = faults
        self.login, self.password, self.group = login, password, group
        self.inn, self.payment_address = inn, payment_address
        self.token_ttl_s = token_ttl_s
        self.done_delay_s = done_delay_s
        self._fsync = fsync
        self._path = Path(state_dir) / "atol_online.json"
        self._lock = threading.RLock()
        self._tokens: dict[str, float] = {}
        self._requests: dict[str, dict[str, Any]] = self._load()
        for r in self._requests.values():
            if r["status"] == STATUS_PROCESSING:
                self._recover(r)
        self._save()

    # -- persistence ----------------------------------------------------------------------
    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            return p.loads(self._path.read_bytes())
        except FileNotFoundError:
            return {}

    def _save(self) -> None:
        tmp = self._path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(p.dumps(self._requests))
            f.flush()
            if self._fsync:
                os.fsync(f.fileno())
        os.replace(tmp, self._path)

    def _recover(self, r: dict[str, Any]) -> None:
        """A request cut by a crash of the emulator mid-fiscalization: find its document or redo it.

        The service reconciles its own register the way our worker does: by the 1192 tag and total.
        """
        claimed = {x["payload"]["fiscal_document_number"] for x in self._requests.values() if x.get("payload")}
        tag, total = r["body"].get("additional_check_props"), money(Decimal(str(r["body"].get("total", 0))))
        for doc in self.model.documents():
            if (doc["kind"] in ("receipt", "correction") and doc["fd"] not in claimed and tag
                    and doc.get("tag") == tag and money(Decimal(doc["total"])) == total):
                r.update(status=p.STATUS_DONE, error=None, payload=_payload(doc))
                return
        self.model.cancel_receipt()
        r["status"] = p.STATUS_WAIT

    def requests(self) -> list[dict[str, Any]]:
        """Every accepted request (tests compare with the model's journal)."""
        with self._lock:
            return [dict(r) for r in self._requests.values()]

    # -- API --------------------------------------------------------------------------------
    def get_token(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or body.get("login") != self.login or body.get("pass") != self.password:
            # GUESS: HTTP 401 for bad credentials (mygento lists 200/400/401 as answered statuses)
            raise ApiError(401, p.ERR_BAD_CREDENTIALS, "Неверный логин или пароль", token="")
        token = uuidlib.uuid4().hex
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_ttl_s
        return {"error": None, "token": token, "timestamp": _now()}

    def check_token(self, token: str | None, group: str) -> None:
        with self._lock:
            expires = self._tokens.get(token or "")
        if expires is None:
            raise ApiError(401, p.ERR_TOKEN_UNKNOWN, "Не распознан токен запроса")
        if time.monotonic() >= expires:
            raise ApiError(401, p.ERR_TOKEN_EXPIRED, "Переданный токен не активен")
        if group != self.group:
            raise ApiError(400, 20, "Код группы, указанный в запросе, не соответствует токену")

    def expire_tokens(self) -> None:
        """Every issued token expires now (tests of renewal)."""
        with self._lock:
            self._tokens = {t: 0.0 for t in self._tokens}

    def register(self, operation: str, body: Any) -> tuple[dict[str, Any], bool]:
        """Accept a registration: (answer, True if new). Raises ApiError for a refusal."""
        if operation not in _OPERATIONS:
            raise ApiError(400, 31, "Операция не поддерживается")
        _, correction = _OPERATIONS[operation]
        if not isinstance(body, dict) or not isinstance(body.get("external_id"), str) or not body["external_id"]:
            raise ApiError(400, 32, "Ошибка валидации входного чека: external_id")
        ext = body["external_id"]
        if len(ext) > p.EXTERNAL_ID_MAX_LEN:
            raise ApiError(400, 32, "Ошибка валидации входного чека: external_id длиннее 128")
        with self._lock:
            known = next((r for r in self._requests.values() if r["external_id"] == ext), None)
            if known is not None:
                raise ApiError(409, p.ERR_DUPLICATE,  # GUESS: HTTP 409 (the sources show only the body)
                               f'В системе существует чек с external_id : "{ext}" и group_code: "{self.group}"',
                               uuid=known["uuid"],
                               status=p.STATUS_WAIT if known["status"] == STATUS_PROCESSING else known["status"])
            doc = body.get("correction" if correction else "receipt")
            problem = _validate(doc, correction)
            if problem:
                raise ApiError(400, 32, f"Ошибка валидации входного чека: {problem}")
            rid = str(uuidlib.uuid4())
            self._requests[rid] = {
                "uuid": rid, "external_id": ext, "operation": operation, "body": doc,
                "callback_url": (body.get("service") or {}).get("callback_url"),
                "status": p.STATUS_WAIT, "accepted_ms": int(time.time() * 1000), "error": None, "payload": None,
            }
            self._save()
        return {"uuid": rid, "status": p.STATUS_WAIT, "error": None, "timestamp": _now()}, True

    def report(self, rid: str) -> dict[str, Any]:
        self.process_due()
        with self._lock:
            r = self._requests.get(rid)
            if r is None:
                raise ApiError(400, p.ERR_REPORT_NOT_FOUND, "Состояние чека не найдено. Попробуйте позднее")
            status = p.STATUS_WAIT if r["status"] == STATUS_PROCESSING else r["status"]
            return {"uuid": rid, "status": status, "error": r["error"], "payload": r["payload"],
                    "timestamp": _now(), "group_code": self.group, "daemon_code": "emulator",
                    "device_code": self.model.serial, "external_id": r["external_id"],
                    "callback_url": r["callback_url"]}

    # -- fiscalization -----------------------------------------------------------------------
    def process_due(self) -> None:
        """Fiscalize every accepted request whose delay has passed (idempotent, under the lock)."""
        with self._lock:
            due = [r for r in self._requests.values()
                   if r["status"] == p.STATUS_WAIT and time.time() * 1000 - r["accepted_ms"] >= self.done_delay_s * 1000]
            for r in sorted(due, key=lambda r: r["accepted_ms"]):
                r["status"] = STATUS_PROCESSING   # durable before the register is touched
                self._save()
                self._fiscalize(r)
                self._save()

    def _fiscalize(self, r: dict[str, Any]) -> None:
        op, is_corr = _OPERATIONS[r["operation"]]
        doc = r["body"]
        company = doc.get("company") or {}
        if company.get("inn") != self.inn or company.get("payment_address") != self.payment_address:
            r.update(status=p.STATUS_FAIL,
                     error=_err(2, "ККТ зарегистрирована с другим ИНН или адресом расчёта", "agent"))
            return
        m = self.model
        try:
            st = m.status()
            if st.shift_open and st.shift_expired:
                m.close_shift()
            if not m.status().shift_open:
                m.open_shift()
            corr = None
            if is_corr:
                info = doc["correction_info"]
                corr = {"1173": 0 if info.get("type") == "self" else 1,
                        "1178": dt.datetime.strptime(info["base_date"], p.DATE_FORMAT).date().isoformat(),
                        "1179": info.get("base_number") or ""}
            m.open_receipt(op, correction=corr)
            try:
                for it in doc["items"]:
                    m.add_item(_item(it))
                if doc.get("additional_check_props"):
                    m.add_requisite(1192, doc["additional_check_props"])
                client = doc.get("client") or {}
                if client.get("email") or client.get("phone"):
                    m.add_requisite(1008, client.get("email") or client.get("phone"))
                if doc.get("internet"):
                    m.add_requisite(1125, 1)
                m.add_requisite(1187, company.get("payment_address") or self.payment_address)
                if company.get("email"):
                    m.add_requisite(1117, company["email"])
                payments = [Payment(_PAY_TYPES[int(x["type"])], money(x["sum"])) for x in doc["payments"]]
                written = m.close_receipt(payments, _TAX[company.get("sno", "osn")])
            except KktError:
                m.cancel_receipt()
                raise
        except DeviceStateError as exc:
            if exc.condition == DeviceStateError.COND_PAPER_OUT:
                m.load_paper()   # the service's operator; a cloud register prints nothing anyway
                r.update(status=p.STATUS_FAIL, error=_err(-3807, "Нет бумаги", "driver"))  # GUESS: code
            elif exc.condition == DeviceStateError.COND_FN_ERROR:
                r.update(status=p.STATUS_FAIL, error=_err(-3910, "Ошибка интерфейса ЭКЛЗ/ФН", "driver"))
            else:
                r.update(status=p.STATUS_FAIL, error=_err(-3822, str(exc), "driver"))
            return
        except (RejectedError, KeyError, ValueError, TypeError, InvalidOperation) as exc:
            r.update(status=p.STATUS_FAIL, error=_err(1, f"Документ некорректен: {exc}", "agent"))
            return
        r.update(status=p.STATUS_DONE, error=None, payload=_payload(written))


def _payload(doc: dict[str, Any]) -> dict[str, Any]:
    """The report payload of a journal document."""
    return {
        "fiscal_receipt_number": doc["receipt_no"], "shift_number": doc["shift"],
        "receipt_datetime": dt.datetime.fromisoformat(doc["dt"]).strftime(p.DATETIME_FORMAT),
        "total": Decimal(doc["total"]), "fn_number": doc["fn"], "ecr_registration_number": "0000000001000001",
        "fiscal_document_number": doc["fd"], "fiscal_document_attribute": doc["fp"],
        "fns_site": "www.nalog.gov.ru",
    }


def _err(code: int, text: str, kind: str) -> dict[str, Any]:
    return {"error_id": str(uuidlib.uuid4()), "code": code, "text": text, "type": kind}


def _item(it: dict[str, Any]) -> Item:
    return Item(name=it["name"], price=money(it["price"]), quantity=quantity(it["quantity"]),
                amount=money(it["sum"]), vat=Vat(it["vat"]["type"]),
                payment_method=_METHODS[it["payment_method"]],
                payment_subject=PaymentSubject(int(it["payment_object"])),
                measure_unit=MeasureUnit(int(it.get("measure", 0))))


def _validate(doc: Any, correction: bool) -> str | None:
    """The synchronous schema and arithmetic checks (error 32); None when the document is fine."""
    if not isinstance(doc, dict):
        return "нет объекта receipt/correction"
    for key in ("company", "items", "payments", "total"):
        if key not in doc:
            return f"нет поля {key}"
    if correction and "correction_info" not in doc:
        return "нет поля correction_info"
    if not correction and "client" not in doc:
        return "нет поля client"
    items, payments = doc["items"], doc["payments"]
    if not isinstance(items, list) or not 1 <= len(items) <= 100:
        return "items: от 1 до 100 позиций"
    if not isinstance(payments, list) or not 1 <= len(payments) <= 10:
        return "payments: от 1 до 10"
    try:
        total = Decimal(str(doc["total"]))
        sums = Decimal(0)
        for n, it in enumerate(items):
            if money(Decimal(str(it["price"])) * Decimal(str(it["quantity"]))) != money(Decimal(str(it["sum"]))):
                return f"items[{n}].sum != price × quantity"
            if it["payment_method"] not in _METHODS or it["vat"]["type"] not in {v.value for v in Vat}:
                return f"items[{n}]: недопустимое значение"
            sums += Decimal(str(it["sum"]))
        paid = sum((Decimal(str(x["sum"])) for x in payments), Decimal(0))
        if any(int(x["type"]) not in _PAY_TYPES for x in payments):
            return "payments[].type"
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        return f"структура: {exc}"
    if money(sums) != money(total) or money(paid) != money(total):
        return f"total {total} != items {sums} / payments {paid}"
    return None


class _Handler(BaseHTTPRequestHandler):
    server: "_HTTPServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s " + fmt, self.address_string(), *args)

    def _answer(self, http: int, body: dict[str, Any]) -> None:
        data = p.dumps(body)
        self.send_response(http)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(2)

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise ApiError(400, 40, "Некорректный запрос")
        raw = self.rfile.read(length)
        try:
            return p.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            # «Неизвестная ошибка обработки» is what the service answers to '{123:}' (sputnik8/atol-rb#18)
            raise ApiError(400, 0, "Неизвестная ошибка обработки", kind="unknown") from None

    def _route(self, method: str) -> None:
        svc = self.server.service
        path = urlsplit(self.path).path
        try:
            if not path.startswith(BASE_PATH):
                raise ApiError(404, 40, "Некорректный запрос")
            parts = path[len(BASE_PATH):].strip("/").split("/")
            body = self._read_body() if method == "POST" else None
            if svc.faults.fire("rate_limit"):
                raise ApiError(429, 0, "Too Many Requests", kind="unknown")  # GUESS: body of a 429
            if method == "POST" and parts == ["getToken"]:
                return self._answer(200, svc.get_token(body))
            token = self.headers.get("Token")
            if method == "POST" and len(parts) == 2:
                svc.check_token(token, parts[0])
                if svc.faults.fire("fail_before_send"):
                    raise ApiError(429, 0, "Too Many Requests", kind="unknown")
                if svc.faults.fire("lose_reply_before_close"):
                    raise _Drop()
                answer, _ = svc.register(parts[1], body)
                if svc.faults.fire("lose_reply_after_close"):
                    raise _Drop()
                return self._answer(200, answer)
            if method == "GET" and len(parts) == 3 and parts[1] == "report":
                svc.check_token(token, parts[0])
                return self._answer(200, svc.report(parts[2]))
            raise ApiError(404, 40, "Некорректный запрос")
        except ApiError as exc:
            self._answer(exc.http, exc.body())
        except _Drop:
            self._drop()

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self._route("POST")

    def do_GET(self) -> None:  # noqa: N802
        self._route("GET")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    service: AtolOnlineService

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that fails the TLS handshake or vanishes is the client's problem, not a crash
        log.info("ATOL Online emulator: connection from %s ended with an error", client_address, exc_info=True)


class AtolOnlineEmulatorServer:
    """The emulator in background threads: HTTP(S) on *host:port* and the fiscalizing worker."""

    def __init__(self, state_dir: str, host: str = "127.0.0.1", port: int = 0, *,
                 faults_options: dict[str, str] | None = None, seed: int | None = None,
                 certfile: str | None = None, keyfile: str | None = None, **options: Any) -> None:
        self.service = AtolOnlineService(state_dir, faults=parse_faults(faults_options or {}, seed), **options)
        self.model = self.service.model
        self.httpd = _HTTPServer((host, port), _Handler)
        self.httpd.service = self.service
        self.tls = certfile is not None
        if certfile:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(certfile, keyfile)
            # the handshake runs in the request thread, so a silent client cannot stall the accept loop
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def url(self, *, test: bool = False, verify: str | None = None) -> str:
        """The driver URL for this emulator (``test``: short polling for fault tests)."""
        h, prt = self.address
        opts = {"login": self.service.login, "password_env": PASSWORD_ENV, "group": self.service.group,
                "inn": self.service.inn, "payment_address": self.service.payment_address,
                "email": "shop@example.ru"}
        if test:
            opts.update(timeout="2", report_deadline_s="5", poll_interval_s="0.05")
        if verify:
            opts["verify"] = verify
        scheme = "atol-online+https" if self.tls else "atol-online+http"
        return f"{scheme}://{h}:{prt}{BASE_PATH.rstrip('/')}?{urlencode(opts)}"

    def _worker(self) -> None:
        while not self._stop.wait(PROCESS_TICK_S):
            try:
                self.service.process_due()
            except Exception:  # the emulator must keep serving; the test sees the request stay "wait"
                log.exception("emulator worker failed")

    def start(self) -> "AtolOnlineEmulatorServer":
        for target in (self.httpd.serve_forever, self._worker):
            t = threading.Thread(target=target, daemon=True, name=f"atol-online-{target.__name__}")
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Stop serving and release the port; idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        for t in self._threads:
            t.join(timeout=5)


def start_emulator(state_dir: str, *, host: str = "127.0.0.1", port: int = 0,
                   faults: dict[str, str] | None = None, seed: int | None = None, fsync: bool = True,
                   **options: Any) -> RunningEmulator:
    """Serve an emulated ATOL Online in background threads (see :mod:`kkt_drivers.emulators`).

    The driver URL names :data:`PASSWORD_ENV`; it is set here (if unset) to the emulator's password so
    that a test process can open the URL. ``certfile``/``keyfile`` switch to HTTPS.
    """
    os.environ.setdefault(PASSWORD_ENV, options.get("password", EMULATOR_PASSWORD))
    verify = options.get("certfile")
    server = AtolOnlineEmulatorServer(state_dir, host, port, faults_options=faults, seed=seed, fsync=fsync,
                                      **options).start()
    return RunningEmulator(url=server.url(verify=verify), model=server.model, stop=server.stop,
                           test_url=server.url(test=True, verify=verify), server=server)


def main(argv: list[str] | None = None) -> None:
    """``python -m kkt_drivers.atol_online.server STATE_DIR [--port 8090] [--fault name=value …]``."""
    ap = argparse.ArgumentParser(description="Emulated ATOL Online v5 service")
    ap.add_argument("state_dir")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--fault", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--done-delay-s", type=float, default=0.0, help="how long a receipt stays 'wait'")
    ap.add_argument("--token-ttl-s", type=float, default=TOKEN_TTL_S)
    ap.add_argument("--certfile")
    ap.add_argument("--keyfile")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    server = AtolOnlineEmulatorServer(
        args.state_dir, args.host, args.port, faults_options=dict(f.split("=", 1) for f in args.fault),
        seed=args.seed, certfile=args.certfile, keyfile=args.keyfile, done_delay_s=args.done_delay_s,
        token_ttl_s=args.token_ttl_s)
    log.info("ATOL Online emulator on %s (password in $%s)", server.url(), PASSWORD_ENV)
    server.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
