"""Driver for Shtrih-M registers (ШТРИХ-М-01Ф and kin) over the vendor's binary protocol.

URL grammar::

    shtrih+socket://192.168.137.111:7778?password=30&admin_password=30&timeout=5
    shtrih://host:7778                      (same as shtrih+socket)
    shtrih+serial:///dev/ttyUSB0?baudrate=115200
    shtrih+rfc2217://host:port
    shtrih+spy:///dev/ttyUSB0?spy_file=/tmp/kkt.log   (pyserial's spy:// hex dump of a serial port)

Options: ``password`` (cashier, default 30), ``admin_password`` (reports and FN commands,
default 30), ``timeout`` (answer timeout for ordinary commands, s), ``status_timeout`` (s),
``long_timeout`` (open shift / Z / X report, s), ``byte_timeout`` (control bytes, s),
``baudrate`` (serial only), ``spy_file`` (spy only), ``check_settings`` (1 = refuse a register
whose tables 1/6/17 contradict what the worker sends, the default; 0 = skip, for firmware whose
tables differ — see docs/shtrih.md). Unknown options are refused by name.
Marked goods (docs/marking.md): ``marking_unanswered`` (``pause``, the default, or ``sell``: what
to do when ОИСМ does not answer a code check in time), ``marking_order`` (``item_first``, classic
firmware, or ``tags_first``, «Кассовое ядро»), ``marking_timeout`` (FF61/FF67, s; default 40),
``permit_url`` + ``permit_key_env`` (the разрешительный режим check, :mod:`kkt_drivers.permit`).

The byte order follows the vendor's own drivers (reference addendum, 2026-11-30):

* connect: FC (model; Shtrih-Nano, model 152, has other tax bytes) → 1F table 17/1/71, 1/1/14, 6/r/1 → FF01;
* receipt: 8D type → per item FF4D(2108 measure) → FF46 (vendor tax byte) → FF0C requisites → FF45;
* FFD 1.2 correction: 8D 0x80|type → FF0C(1173, 1174{1178, 1179}) → items as above → FF45;
* shift: FF41 → FF0C(1021 cashier) → E0; FF42 → FF0C(1021) → 41.

A link lost between commands is reopened by the next command (one fresh connection per failure).
Only FF45 can make a fiscal document; from the moment its frame is written, failures are
:class:`~kkt_drivers.errors.OutcomeUnknownError` and the caller reconciles by FD number and tag.
Set :attr:`ShtrihDriver.cancel_event` to the worker's stop event: a stuck wait then ends within a
second of the stop (see :mod:`.link`).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from dataclasses import replace
from typing import Callable, Iterator
from urllib.parse import parse_qsl, unquote, urlsplit

from kkt_drivers import marking_flow, permit
from kkt_drivers.base import Driver
from kkt_drivers.errors import DriverConfigError, KktError, OutcomeUnknownError, TransientError
from kkt_drivers.receipt import DeviceStatus, DocumentKind, FiscalDocument, Operation, Receipt, Vat
from kkt_drivers.counters import ShiftTotals
from kkt_drivers.shtrih import counters as sc
from kkt_drivers.shtrih import codes, marking as mk, marking_steps, messages as m, protocol as p
from kkt_drivers.shtrih.link import Link, LinkError
from kkt_drivers.shtrih.receipt_frames import FF0C_MAX, correction_tlv, encode_receipt
from kkt_drivers.shtrih.text import fit
from kkt_drivers.transport import DEFAULT_BAUDRATE, Stream

log = logging.getLogger(__name__)

DEFAULT_PASSWORD = 30
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_STATUS_TIMEOUT_S = 3.0
#: javapos waits 120 s for E0 and 65 s for a Z report
DEFAULT_LONG_TIMEOUT_S = 120.0
DEFAULT_BYTE_TIMEOUT_S = 1.0
OPTIONS = ("password", "admin_password", "timeout", "status_timeout", "long_timeout", "byte_timeout",
           "baudrate", "spy_file", "check_settings", "marking_unanswered", "marking_order", "marking_timeout", "permit_url",
           "permit_key_env")
#: how many documents back from the last one a closed shift's Z report is looked for (FF0A each)
Z_REPORT_SEARCH = 50

# -- firmware settings the worker relies on (docs/shtrih.md) -----------------------------------
T_TYPE_AND_MODE, T_TAX_RATES, T_FISCAL_STORAGE = 1, 6, 17
F_TAX_ACCRUAL = 14            # table 1 row 1 field 14: 0 = the register computes VAT sums
F_VAT22_SUBSTITUTION = 71     # table 17 row 1 field 71: 2 = no 20 % → 22 % substitution
F_RATE = 1                    # table 6 row r field 1: the rate in hundredths of a percent (GUESS)
#: FC model number of the Shtrih-Nano-Ф (javapos PrinterConst.PRINTER_MODEL_SHTRIH_NANO_F)
NANO_MODEL = 152
#: answers to 1F meaning "no such table/field on this firmware": 0x5D "invalid table" (javapos
#: PrinterConst.SMFP_EFPTR_INVALID_TABLE); UNVERIFIED: 0x33/0x36/0x37 for a field a table lacks
TABLE_MISSING = (0x33, 0x36, 0x37, 0x5D)
#: the rate table 6 must hold per row for a VAT we send (rows 0 % and "без НДС" carry no rate)
EXPECTED_RATE = {row: (vat.percent or 0) * 100 for vat, row in codes.TAX_ROW_BY_VAT.items()}
#: the row the worker sends for every 2026 sale of a VAT payer: without it no lane can work
REQUIRED_ROW = codes.TAX_ROW_BY_VAT[Vat.VAT22]

_KIND_BY_DOC_TYPE = {p.DOC_RECEIPT: DocumentKind.RECEIPT, p.DOC_CORRECTION: DocumentKind.CORRECTION,
                     p.DOC_OPEN_SHIFT: DocumentKind.OPEN_SHIFT, p.DOC_CLOSE_SHIFT: DocumentKind.CLOSE_SHIFT}


def parse_shtrih_url(url: str) -> tuple[str, dict[str, str]]:
    """``(pyserial URL, options)`` for a ``shtrih…`` URL; DriverConfigError names what is wrong."""
    parts = urlsplit(url)
    scheme = parts.scheme
    opts: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in OPTIONS:
            raise DriverConfigError(f"shtrih URL option {key!r} is unknown (options: {', '.join(OPTIONS)})")
        opts[key] = value
    if "spy_file" in opts and scheme != "shtrih+spy":
        raise DriverConfigError("shtrih URL option 'spy_file' only applies to shtrih+spy://")
    if scheme in ("shtrih", "shtrih+socket", "shtrih+rfc2217"):
        if not parts.hostname or not parts.port:
            raise DriverConfigError(f"shtrih URL {url!r} needs host:port")
        kind = "rfc2217" if scheme == "shtrih+rfc2217" else "socket"
        return f"{kind}://{parts.hostname}:{parts.port}", opts
    if scheme in ("shtrih+serial", "shtrih+spy"):
        path = unquote(parts.path)
        if not path:
            raise DriverConfigError(f"shtrih URL {url!r} needs a device path")
        if scheme == "shtrih+spy":
            spy_file = opts.pop("spy_file", None)
            return f"spy://{path}" + (f"?file={spy_file}" if spy_file else ""), opts
        return path, opts
    raise DriverConfigError(f"not a shtrih URL: {url!r}")


class ShtrihDriver(Driver):
    """A Shtrih-M register; one instance per link, calls strictly serial."""

    model = "shtrih-m"
    supports_marking = True
    reads_counters = True

    def __init__(self, port_url: str, *, password: int = DEFAULT_PASSWORD,
                 admin_password: int = DEFAULT_PASSWORD,
                 timeout: float = DEFAULT_TIMEOUT_S, status_timeout: float = DEFAULT_STATUS_TIMEOUT_S,
                 long_timeout: float = DEFAULT_LONG_TIMEOUT_S, byte_timeout: float = DEFAULT_BYTE_TIMEOUT_S,
                 baudrate: int = DEFAULT_BAUDRATE, check_settings: bool = True,
                 marking_unanswered: bool = False, marking_order: str = marking_steps.ITEM_FIRST,
                 marking_timeout: float = marking_steps.MARKING_TIMEOUT_S) -> None:
        self.port_url = port_url
        self.marking_unanswered = marking_unanswered
        self.marking_order = marking_order
        self.marking_timeout = marking_timeout
        #: the разрешительный режим check before FF61 (None: not used)
        self.permit: permit.PermitChecker | None = None
        self.check_settings = check_settings
        self.password = password
        self.admin_password = admin_password
        self.timeout = timeout
        self.status_timeout = status_timeout
        self.long_timeout = long_timeout
        self._link = Link(lambda: Stream(port_url, baudrate=baudrate, timeout=byte_timeout),
                          byte_timeout=byte_timeout)
        self._connected = False
        self._fn_serial = ""
        #: a Shtrih-Nano (from FC): rows 11–12 have other tax bytes
        self.nano = False
        #: table 6 rows whose rate is missing or wrong on this register: refused before sending
        self.unusable_rows: set[int] = set()

    @property
    def cancel_event(self) -> threading.Event | None:
        """The owner's stop signal; waits on the link end within a second once it is set."""
        return self._link.cancel_event

    @cancel_event.setter
    def cancel_event(self, event: threading.Event | None) -> None:
        self._link.cancel_event = event

    @classmethod
    def from_url(cls, url: str) -> "ShtrihDriver":
        """Build from a ``shtrih…`` URL (see the module header)."""
        port_url, opts = parse_shtrih_url(url)
        try:
            ints = {k: int(opts[k]) for k in ("password", "admin_password", "baudrate") if k in opts}
            if "check_settings" in opts:
                if opts["check_settings"] not in ("0", "1"):
                    raise ValueError("check_settings must be 0 or 1")
                ints["check_settings"] = opts["check_settings"] == "1"
            floats = {k: float(opts[k]) for k in ("timeout", "status_timeout", "long_timeout", "byte_timeout",
                                                  "marking_timeout") if k in opts}
        except ValueError as exc:
            raise DriverConfigError(f"shtrih URL {url!r}: {exc}") from exc
        marking = {"marking_unanswered": marking_flow.sell_unanswered(opts.get("marking_unanswered")),
                   "marking_order": marking_steps.marking_order(opts.get("marking_order"))}
        drv = cls(port_url, **ints, **floats, **marking)  # type: ignore[arg-type]
        drv.permit = permit.PermitChecker.from_options(opts)
        return drv

    # -- link ------------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the link, check the handshake and the device type; TransientError if unreachable."""
        if self._connected and self._link.is_open:
            return
        self._link.open()
        self._connected = True
        try:
            answer = self._link.exchange(p.command_bytes(p.DEVICE_TYPE), self.status_timeout)
            if answer.cmd != p.DEVICE_TYPE:
                # not a Shtrih register, or a stale answer: nothing it says can be trusted
                raise TransientError(f"register at {self.port_url} answered command 0x{answer.cmd:X} to FC")
            if answer.error:
                raise codes.error_for(answer.error, p.DEVICE_TYPE)
            model_no, name = m.decode_device_type(answer.data)
            # as javapos DeviceMetrics.isShtrihNano(): by the FC model number alone
            self.nano = model_no == NANO_MODEL
            if self.check_settings:
                self._check_settings()
            fn = m.decode_fn_status(self._command(p.FN_STATUS, admin=True, timeout=self.status_timeout))
        except (KktError, p.FrameError) as exc:
            self.disconnect()
            if isinstance(exc, p.FrameError):
                raise TransientError(f"register at {self.port_url} answered garbage: {exc}") from exc
            raise
        self._fn_serial = fn.fn_serial
        log.info("connected to %s (model %d, FN %s) at %s", name, model_no, fn.fn_serial, self.port_url)

    def _read_table(self, table: int, row: int, field: int) -> int | None:
        """An integer table field (1F), or None when this firmware has no such field."""
        try:
            raw = self._command(p.READ_TABLE, m.encode_table_address(table, row, field), admin=True,
                                timeout=self.status_timeout, allow=TABLE_MISSING)
        except _Allowed:
            return None
        return int.from_bytes(raw, "little")

    def _check_settings(self) -> None:
        """Refuse a register whose settings contradict what the worker sends (DriverConfigError).

        * table 17 field 71 must be 2: in mode 1 (the factory default) the register prints VAT row 1
          as 22 % from 2026, so a 20 % refund of a 2025 sale would be printed at 22 %;
        * table 1 field 14 must be 0: in mode 1 the register takes VAT sums from FF45, which we
          leave at zero (the register computes them in mode 0);
        * table 6 row 11 must hold 22 %; other rows with a wrong or missing rate are remembered and
          a receipt using one is refused before anything is sent.
        """
        where = f"register at {self.port_url}"
        subst = self._read_table(T_FISCAL_STORAGE, 1, F_VAT22_SUBSTITUTION)
        if subst is not None and subst != 2:
            raise DriverConfigError(
                f"{where}: table 17 row 1 field 71 (VAT 22 % substitution) is {subst}; it must be 2. "
                "In mode 1 the register prints VAT row 1 (20 %) as 22 % from 2026-01-01, so refunds of "
                "2025 sales at 20 % would carry 22 %; the worker sends row 11 for 22 % itself")
        accrual = self._read_table(T_TYPE_AND_MODE, 1, F_TAX_ACCRUAL)
        if accrual not in (None, 0):
            raise DriverConfigError(
                f"{where}: table 1 row 1 field 14 (tax accrual) is {accrual}; it must be 0. In mode 1 "
                "the register takes VAT sums from the software, which the worker does not send, so "
                "receipts would carry zero VAT")
        unusable = set()
        for row, rate in sorted(EXPECTED_RATE.items()):
            if rate and self._read_table(T_TAX_RATES, row, F_RATE) != rate:
                unusable.add(row)
        if REQUIRED_ROW in unusable:
            raise DriverConfigError(
                f"{where}: table 6 row {REQUIRED_ROW} does not hold VAT 22 % (rate "
                f"{self._read_table(T_TAX_RATES, REQUIRED_ROW, F_RATE)}); update the firmware or "
                "licence the 22 % rate")
        self.unusable_rows = unusable
        if unusable:
            log.warning("%s: table 6 rows %s lack their rate; receipts using them are refused",
                        where, sorted(unusable))

    def disconnect(self) -> None:
        self._connected = False
        self._link.close()

    def _command(self, cmd: int, data: bytes = b"", *, admin: bool = False, timeout: float | None = None,
                 allow: tuple[int, ...] = (), resend_on_silence: bool = True,
                 on_accepted: Callable[[], None] | None = None) -> bytes:
        """Run one command; raise the classified error for a non-zero code not in *allow*."""
        if not self._connected:
            raise TransientError("driver is not connected (call connect())")
        pw = self.admin_password if admin else self.password
        answer = self._link.exchange(p.command_bytes(cmd) + p.u32(pw) + data, timeout or self.timeout,
                                     resend_on_silence=resend_on_silence, on_accepted=on_accepted)
        if answer.cmd not in (cmd, 0xFF):
            raise TransientError(f"answer to 0x{answer.cmd:X} arrived for command 0x{cmd:X}")
        if answer.error and answer.error not in allow:
            raise codes.error_for(answer.error, cmd)
        if answer.error:
            raise _Allowed(answer.error)
        return answer.data

    # -- status ----------------------------------------------------------------------------
    def status(self) -> DeviceStatus:
        with _garbled_is_transient():
            return self._status()

    def _status(self) -> DeviceStatus:
        full = m.decode_full_status(self._command(p.FULL_STATUS, timeout=self.status_timeout))
        fn = m.decode_fn_status(self._command(p.FN_STATUS, admin=True, timeout=self.status_timeout))
        _, shift_no, receipt_no = m.decode_shift_params(self._command(p.FN_SHIFT_PARAMS, admin=True,
                                                                      timeout=self.status_timeout))
        try:
            unsent = m.decode_ofd_unsent(self._command(
                p.FN_OFD_STATUS, admin=True, timeout=self.status_timeout, allow=(codes.NOT_SUPPORTED,)))
        except _Allowed:
            unsent = 0
        try:
            expiry: m.FnExpiry | None = m.decode_fn_expiry(self._command(
                p.FN_EXPIRY, admin=True, timeout=self.status_timeout, allow=(codes.NOT_SUPPORTED,)))
        except _Allowed:
            expiry = None
        try:  # FF70: marking state; firmware or an FN without marking refuses it (0x37, A0h)
            marking: mk.MarkingStatus | None = mk.decode_status(self._command(
                mk.FN_MARKING_STATUS, admin=True, timeout=self.status_timeout,
                allow=(codes.NOT_SUPPORTED, mk.NOT_ALLOWED)))
        except _Allowed:
            marking = None
        self._fn_serial = fn.fn_serial
        mode = full.mode & 0x0F
        extra = {"mode": f"{full.mode:#04x}", "submode": str(full.submode)}
        if expiry is not None:
            extra["fn_valid_until"] = expiry.valid_until.isoformat()
            extra["fn_registrations_left"] = str(expiry.registrations_left)
        return DeviceStatus(
            register_serial=str(full.serial), fn_serial=fn.fn_serial, last_fd_number=fn.last_fd,
            shift_open=fn.shift_open, shift_number=shift_no,
            shift_opened_at=self._shift_opened_at(fn, shift_no, receipt_no) if fn.shift_open else None,
            shift_expired=mode == 3, receipt_open=mode == 8 or fn.current_document == 0x04,
            paper_ok=bool(full.flags & m.FLAG_RECEIPT_ROLL) and full.submode not in (1, 2),
            cover_closed=not full.flags & m.FLAG_COVER_OPEN, unsent_documents=unsent, model=self.model,
            # an FN past its validity date refuses every document: an operator must replace it
            fn_ok=expiry is None or expiry.valid_until >= full.now.date(), extra=extra,
            fn_valid_until=expiry.valid_until if expiry is not None else None, register_time=full.now,
            marking_blocked=bool(marking and marking.blocked),
            marking_unsent_notifications=marking.notifications_queued if marking else 0)

    def _shift_opened_at(self, fn: m.FnStatus, shift_no: int, receipt_no: int) -> dt.datetime | None:
        """When the open shift began, or None when it cannot be told cheaply.

        No status command reports it. If only receipts were made since the shift opened, the
        opening report is FD ``last - receipts``; one FF0A checks (type 2, same shift number), so
        the answer is never wrong, only sometimes missing (e.g. after an X report with a document).
        """
        candidate = fn.last_fd - receipt_no
        if candidate < 1:
            return None
        try:
            found = m.decode_found_document(self._command(
                p.FN_FIND_DOCUMENT, p.u32(candidate), admin=True, timeout=self.status_timeout,
                allow=(codes.FN_NO_DATA,)))
        except _Allowed:
            return None
        if found.doc_type == p.DOC_OPEN_SHIFT and found.shift_number == shift_no:
            return found.when
        return None

    # -- shifts ----------------------------------------------------------------------------
    def open_shift(self, cashier: str | None = None) -> FiscalDocument:
        """FF41 → FF0C(1021 *cashier*) → E0; the document is read back from the FN.

        Without a cashier, E0 alone (the register then prints its table-2 operator name).
        """
        self._begin_shift_report(p.FN_BEGIN_OPEN_SHIFT, cashier)
        self._command(p.OPEN_SHIFT, timeout=self.long_timeout)
        return self._last_document()

    def close_shift(self, cashier: str | None = None) -> FiscalDocument:
        """FF42 → FF0C(1021 *cashier*) → 41 (Z report); allowed for an expired shift."""
        self._begin_shift_report(p.FN_BEGIN_CLOSE_SHIFT, cashier)
        self._command(p.Z_REPORT, admin=True, timeout=self.long_timeout)
        return self._last_document()

    def _begin_shift_report(self, begin: int, cashier: str | None) -> None:
        """FF41/FF42 then the cashier's 1021, as the vendor's drivers do (spec v1.17 p.51)."""
        if not cashier:
            return
        block = p.tlv_str(1021, fit(cashier, p.TLV_ENCODING, "shifts.cashier"))
        if len(block) > FF0C_MAX:
            raise DriverConfigError("shifts.cashier is too long for FF0C")
        self._command(begin, admin=True)
        self._command(p.FN_WRITE_TLV, block, admin=True)

    def x_report(self) -> None:
        self._command(p.X_REPORT, admin=True, timeout=self.long_timeout)

    def _last_document(self) -> FiscalDocument:
        with _garbled_is_transient():
            fn = m.decode_fn_status(self._command(p.FN_STATUS, admin=True, timeout=self.status_timeout))
        doc = self.document(fn.last_fd)
        if doc is None:
            raise TransientError(f"document {fn.last_fd} reported by FF01 cannot be read back")
        return doc

    # -- receipts --------------------------------------------------------------------------
    def cancel_receipt(self) -> None:
        """88; a register with no open receipt answers 0x55, which is fine here."""
        try:
            self._command(p.CANCEL_RECEIPT, allow=(codes.RECEIPT_CLOSED,))
        except _Allowed:
            pass

    def continue_print(self) -> None:
        """B0 after paper was reloaded."""
        self._command(p.CONTINUE_PRINT, admin=True)

    def fiscalize(self, receipt: Receipt) -> FiscalDocument:
        if receipt.marking_codes and self.permit is not None:
            receipt = self.permit.apply(receipt, self._fn_serial or self.status().fn_serial)
        # RejectedError / DriverConfigError here: nothing was sent
        items, tlvs, close = encode_receipt(receipt, nano=self.nano)
        for n, it in enumerate(receipt.items):
            row = codes.TAX_ROW_BY_VAT[it.vat]
            if row in self.unusable_rows:
                raise DriverConfigError(
                    f"items[{n}].vat: table 6 row {row} ({it.vat.value}) holds no rate on this register "
                    "(not set up or not licensed); nothing was sent")
        rtype = p.RECEIPT_TYPE_BY_OPERATION[int(receipt.operation)]
        correction = correction_tlv(receipt) if receipt.correction is not None else b""
        results: dict[int, int] = {}
        if receipt.marking_codes:
            # FF70, then FF61 → FF69 per code, before the receipt is opened (marking_steps)
            results = marking_steps.check_codes(self._command, receipt, timeout=max(self.timeout, self.marking_timeout),
                                      sell_unanswered=self.marking_unanswered)
        if receipt.correction is not None:
            # FFD 1.2 correction: 8D with 0x80 | type, then 1173/1174 (javapos openReceipt)
            self._command(p.OPEN_RECEIPT, bytes([p.CORRECTION_RECEIPT_FLAG | rtype]))
            self._step("receipt_opened")
            self._command(p.FN_WRITE_TLV, correction, admin=True)
        else:
            self._command(p.OPEN_RECEIPT, bytes([rtype]))
            self._step("receipt_opened")
        for it, (item_tlv, line) in zip(receipt.items, items):
            # FF4D binds 2108 to the operation that follows (vendor staff's order: FF4D, FF46);
            # a marked line adds FF4D(1260) and FF67 in the firmware's order (marking_steps)
            marking_steps.send_item(self._command, it, item_tlv, line, order=self.marking_order,
                                    timeout=max(self.timeout, self.marking_timeout))
        for block in tlvs:
            self._command(p.FN_WRITE_TLV, block, admin=True)
        try:
            # "close_sent": the register ACKed FF45, so it executes it whatever happens to us now
            data = self._command(p.FN_CLOSE_RECEIPT, close, admin=True, resend_on_silence=False,
                                 on_accepted=lambda: self._step("close_sent"))
            answer = m.decode_close_answer(data)
        except LinkError as exc:
            if not exc.sent:
                raise  # the frame was never written: certainly not fiscalized
            raise OutcomeUnknownError(f"close command sent, no answer: {exc}") from exc
        except TransientError as exc:  # e.g. an answer to some other command: we cannot tell
            raise OutcomeUnknownError(f"close command sent, answer unusable: {exc}") from exc
        except p.FrameError as exc:
            raise OutcomeUnknownError(f"close command answered OK but unreadable: {exc}") from exc
        # an explicit error code from FF45 means no document was made: it propagates as classified
        self._step("register_answered")
        try:
            doc = self.document(answer.fd_number)
        except KktError as exc:
            log.warning("receipt FD %d made, read-back failed: %s", answer.fd_number, exc)
            doc = None
        if doc is not None and doc.fiscal_sign == answer.fiscal_sign:
            return replace(doc, marking_results=marking_flow.as_results(receipt, results))
        return FiscalDocument(marking_results=marking_flow.as_results(receipt, results),
            fd_number=answer.fd_number, fiscal_sign=answer.fiscal_sign, fn_serial=self._fn_serial,
            kind=DocumentKind.CORRECTION if receipt.correction else DocumentKind.RECEIPT,
            issued_at=dt.datetime.now().replace(microsecond=0), shift_number=0,
            operation=receipt.operation, total=receipt.total, tag=receipt.tag)

    # -- the shift's counters (kkt_drivers.shtrih.counters) ------------------------------------
    def shift_totals(self, shift: int | None = None) -> ShiftTotals | None:
        """The open shift's cash registers (1A) and receipt counts (1B); a closed shift's counters
        from its Z report in the FN (1194, read with FF3A/FF3B), looked for among the last
        :data:`Z_REPORT_SEARCH` documents. None when neither is found (the Z report clears the
        registers)."""
        with _garbled_is_transient():
            st = self._status()
            if not st.shift_open or (shift is not None and shift != st.shift_number):
                return self._z_report_totals(st.shift_number if shift is None else shift, st.last_fd_number)
            cash: dict[int, int] = {}
            for operation in sc.RECEIPT_TYPE:
                for t in sc.PAYMENT_TYPES:
                    number = sc.cash_register(operation, t)
                    try:
                        cash[number] = sc.decode_cash_answer(self._command(
                            sc.READ_CASH_REGISTER, sc.encode_register_number(number), timeout=self.status_timeout,
                            allow=(codes.BAD_PARAMETERS, codes.NOT_SUPPORTED) if t > 4 else ()))
                    except _Allowed:       # firmware without payment types 5..16 (GUESS: answers 33h)
                        cash[number] = 0
            counts = {operation: sc.decode_count_answer(self._command(
                sc.READ_OPERATION_REGISTER, bytes([sc.receipts_register(operation)]), timeout=self.status_timeout))
                for operation in sc.RECEIPT_TYPE}
        return sc.build_totals(st.shift_number, cash, counts,
                               "Shtrih cash registers 193–208 and 4144–4191 (1Ah), receipt counts 144–147 (1Bh)")

    def _z_report_totals(self, shift: int, last_fd: int) -> ShiftTotals | None:
        for fd in range(last_fd, max(0, last_fd - Z_REPORT_SEARCH), -1):
            try:
                found = m.decode_found_document(self._command(p.FN_FIND_DOCUMENT, p.u32(fd), admin=True,
                                                              allow=(codes.FN_NO_DATA,)))
            except _Allowed:
                continue
            if found.shift_number is not None and found.shift_number < shift:
                return None                      # walked past the shift: its Z report is not there
            if found.doc_type == p.DOC_CLOSE_SHIFT and found.shift_number == shift:
                stats = self._read_tlv(fd).get(sc.TAG_SHIFT_STATS)
                if stats is None:
                    return None                  # firmware that cannot read documents back
                try:
                    return sc.decode_shift_stats(stats, shift, f"Z report FD {fd} (FN tag 1194)")
                except (p.FrameError, KeyError, ValueError) as exc:
                    raise TransientError(f"Z report FD {fd}: counters (1194) unreadable: {exc}") from exc
        return None

    # -- documents -------------------------------------------------------------------------
    def document(self, fd_number: int) -> FiscalDocument | None:
        """FF0A, then FF3A/FF3B for the tag (1192). None when the FN has no such document, or it
        is a kind the worker does not model (registration reports)."""
        with _garbled_is_transient():
            return self._document(fd_number)

    def _document(self, fd_number: int) -> FiscalDocument | None:
        try:
            found = m.decode_found_document(self._command(p.FN_FIND_DOCUMENT, p.u32(fd_number), admin=True,
                                                          allow=(codes.FN_NO_DATA,)))
        except _Allowed:
            return None
        kind = _KIND_BY_DOC_TYPE.get(found.doc_type)
        if kind is None:
            return None
        tlv = self._read_tlv(fd_number)
        tag = tlv[1192].decode(p.TLV_ENCODING) if 1192 in tlv else None
        shift = found.shift_number if found.shift_number is not None else _int(tlv.get(1038))
        return FiscalDocument(
            fd_number=found.fd_number, fiscal_sign=found.fiscal_sign, fn_serial=self._fn_serial, kind=kind,
            issued_at=found.when, shift_number=shift or 0, receipt_number=_int(tlv.get(1042)),
            operation=_operation(found.operation), total=found.total, tag=tag)

    def _read_tlv(self, fd_number: int) -> dict[int, bytes]:
        """The document's top-level TLVs; empty when the firmware cannot read documents back."""
        try:
            head = self._command(p.FN_READ_DOC_BEGIN, p.u32(fd_number), admin=True,
                                 allow=(codes.NOT_SUPPORTED, codes.FN_NO_DATA))
        except _Allowed:
            return {}
        length = p.read_uint(head, 2, 2)
        raw = bytearray()
        while len(raw) < length:
            try:
                raw += self._command(p.FN_READ_DOC_BLOCK, admin=True, allow=(codes.FN_NO_DATA,))
            except _Allowed:
                break
        return {tag: value for tag, value in p.parse_tlv(bytes(raw))}


@contextlib.contextmanager
def _garbled_is_transient() -> Iterator[None]:
    """An answer we cannot decode (firmware variant, line noise) is a link problem, not a bug."""
    try:
        yield
    except p.FrameError as exc:
        raise TransientError(f"unreadable answer from the register: {exc}") from exc


class _Allowed(Exception):
    """A non-zero answer the caller asked to handle itself."""

    def __init__(self, code: int) -> None:
        super().__init__(codes.describe(code))
        self.code = code


def _int(raw: bytes | None) -> int | None:
    return int.from_bytes(raw, "little") if raw else None


def _operation(value: int | None) -> Operation | None:
    return Operation(value) if value in (1, 2, 3, 4) else None
