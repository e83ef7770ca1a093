"""The Shtrih-M command set on top of :class:`~kkt_drivers.emulator.model.RegisterModel`.

:class:`ShtrihEmulation` turns one request payload into one answer payload; the link layer
(ENQ/ACK/NAK, sockets, wire faults) lives in :mod:`.server`. Every fiscal effect goes through the
shared model, so this register's fiscal storage behaves exactly like the in-process emulator's.
Model errors become Shtrih error codes via :func:`.codes.code_for`; unknown commands answer 0x37.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace
from decimal import Decimal
from typing import Any, Callable

from kkt_drivers.emulator.model import RegisterModel
from kkt_drivers.errors import DeviceStateError, KktError
from kkt_drivers.receipt import (
    KOPECK, MARKED_SUBJECTS, IndustryRequisite, Item, MeasureUnit, Operation, Payment, PaymentMethod, PaymentSubject, PaymentType, TaxSystem,
    money,
)
from kkt_drivers.shtrih import counters as sc
from kkt_drivers.shtrih import codes, marking as mk, messages as m, protocol as p
from kkt_drivers.shtrih.fn_documents import correction_requisites, document_tlvs
from kkt_drivers.shtrih.protocol import read_text

#: operator numbers by password: cashiers 1..28, administrator 29, system administrator 30
ADMIN_PASSWORDS = (29, 30)
CASHIER_PASSWORDS = tuple(range(1, 31))
#: commands that need the administrator's password (Z/X reports and the FN commands)
ADMIN_COMMANDS = {p.X_REPORT, p.Z_REPORT, p.READ_TABLE, p.WRITE_TABLE}
DEVICE_NAME = "ШТРИХ-М-01Ф"
#: FC of the desktop model: ШТРИХ-М-01Ф, model 250 (protocol spec v1.16, FC table)
DESKTOP_MODEL = 250
# GUESS: the Nano's FC name string (only its model number matters to the vendor's driver)
NANO_NAME = "ШТРИХ-NANO-Ф"
#: FC model of the Shtrih-Nano-Ф (javapos PrinterConst.PRINTER_MODEL_SHTRIH_NANO_F)
NANO_MODEL = 152

# -- tables (1F/1E) ---------------------------------------------------------------------------
T_TYPE_AND_MODE, T_TAX_RATES, T_FISCAL_STORAGE = 1, 6, 17
F_TAX_ACCRUAL = 14          # table 1 field 14 "начисление налогов": 1 = tax sums come from the software
F_VAT22_SUBSTITUTION = 71   # table 17 field 71: 1 = print row 1 (20 %) as 22 % from 2026, 2 = no substitution
F_RATE, F_RATE_NAME = 1, 2  # table 6: rate (hundredths of a percent), name
#: table 6 rows 1..12 (javapos VatRate.java): rate in hundredths of a percent, name
TAX_ROWS: dict[int, tuple[int, str]] = {
    1: (2000, "НДС 20%"), 2: (1000, "НДС 10%"), 3: (0, "НДС 0%"), 4: (0, "БЕЗ НДС"),
    5: (2000, "НДС 20/120"), 6: (1000, "НДС 10/110"), 7: (500, "НДС 5%"), 8: (700, "НДС 7%"),
    9: (500, "НДС 5/105"), 10: (700, "НДС 7/107"), 11: (2200, "НДС 22%"), 12: (2200, "НДС 22/122"),
}


def default_tables() -> dict[tuple[int, int, int], int | str]:
    """The settings this emulator ships with: the ones docs/shtrih.md asks of a real register.

    A factory-fresh register has table 17 field 71 = 1 (per the vendor's staff, fr_drv_ng #328);
    we ship 2, as the worker requires. GUESS: the factory value of table 1 field 14 (we use 0) and
    the layout of table 6 (rate in hundredths of a percent in field 1, name in field 2).
    """
    tables: dict[tuple[int, int, int], int | str] = {
        (T_TYPE_AND_MODE, 1, F_TAX_ACCRUAL): 0,
        (T_FISCAL_STORAGE, 1, F_VAT22_SUBSTITUTION): 2,
    }
    for row, (rate, name) in TAX_ROWS.items():
        tables[(T_TAX_RATES, row, F_RATE)] = rate
        tables[(T_TAX_RATES, row, F_RATE_NAME)] = name
    return tables
#: requisites whose TLV value is a number (1 byte) rather than a CP866 string
INT_TAGS = {1125, 1055, 1054}

_DOC_TYPE = {"receipt": p.DOC_RECEIPT, "correction": p.DOC_CORRECTION,
             "open_shift": p.DOC_OPEN_SHIFT, "close_shift": p.DOC_CLOSE_SHIFT}
_PAYMENT_BY_SLOT = {slot: PaymentType(name) for name, slot in p.PAYMENT_SLOTS.items()}


class CommandError(Exception):
    """Answer the current command with this Shtrih error code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"0x{code:02X}")
        self.code = code


class ShtrihEmulation:
    """One emulated Shtrih register: request payload in, answer payload out (not thread-safe)."""

    def __init__(self, model: RegisterModel, *, register_serial: int = 1,
                 z_report_delay_s: float = 0.0, clock: Callable[[], dt.datetime] = dt.datetime.now,
                 nano: bool = False, tables: dict[tuple[int, int, int], int | str] | None = None,
                 unlicensed_rows: set[int] | frozenset[int] = frozenset()) -> None:
        self.model = model
        #: a Shtrih-Nano: other FC answer, other tax bytes for rows 11–12
        self.nano = nano
        #: table settings by (table, row, field); tests change them with :meth:`set_table` or 1E
        self.tables = default_tables() if tables is None else dict(tables)
        #: table 6 rows this firmware is not licensed for: they read 0 and FF46 refuses them
        # (GUESS: the code a real register answers for an unlicensed rate; we use 0x36)
        self.unlicensed_rows = set(unlicensed_rows)
        for row in self.unlicensed_rows:
            self.tables[(T_TAX_RATES, row, F_RATE)] = 0
        self.register_serial = register_serial
        self.z_report_delay_s = z_report_delay_s
        self._clock = clock
        self._operator = 30
        self._receipt_operation: int | None = None
        self._awaiting_continue = False
        self._tlv_cursor: list[bytes] = []
        #: FF41 or FF42 once begun: E0 / 41 completes it with the cashier sent by FF0C in between
        self._shift_step: int | None = None
        self._shift_cashier: dict[int, str] = {}
        #: FF4D TLVs waiting for the next FF46 (the vendor sends them before the operation)
        self._item_tlvs: list[tuple[int, bytes]] = []
        self._handlers: dict[int, Callable[[bytes], bytes]] = {
            p.DEVICE_TYPE: self._device_type, p.SHORT_STATUS: self._short_status,
            p.FULL_STATUS: self._full_status, p.FN_STATUS: self._fn_status,
            p.FN_SHIFT_PARAMS: self._shift_params, p.FN_OFD_STATUS: self._ofd_status,
            p.OPEN_SHIFT: self._open_shift, p.X_REPORT: self._x_report, p.Z_REPORT: self._z_report,
            p.OPEN_RECEIPT: self._open_receipt, p.FN_OPERATION: self._operation,
            p.FN_WRITE_TLV: self._write_tlv, p.FN_CLOSE_RECEIPT: self._close_receipt,
            p.CANCEL_RECEIPT: self._cancel, p.CONTINUE_PRINT: self._continue_print,
            p.FN_FIND_DOCUMENT: self._find_document, p.FN_READ_DOC_BEGIN: self._read_doc_begin,
            p.FN_READ_DOC_BLOCK: self._read_doc_block,
            p.READ_TABLE: self._read_table, p.WRITE_TABLE: self._write_table, p.FN_EXPIRY: self._fn_expiry,
            p.FN_BEGIN_OPEN_SHIFT: self._begin_open_shift, p.FN_BEGIN_CLOSE_SHIFT: self._begin_close_shift,
            p.FN_WRITE_OPERATION_TLV: self._write_operation_tlv,
            mk.FN_MARKING_CHECK: self._marking_check, mk.FN_MARKING_DECIDE: self._marking_decide,
            mk.FN_MARKING_BIND: self._marking_bind, mk.FN_MARKING_STATUS: self._marking_status,
            sc.READ_CASH_REGISTER: self._cash_register, sc.READ_OPERATION_REGISTER: self._operation_register,
        }
        #: FF67 before FF46 («Кассовое ядро» order): the code the next marked FF46 carries
        self._bound_code: bytes | None = None
        #: FF46 of a marked item before its FF67 (classic order): held until FF67 names the code
        self._held: tuple[Item, dict[str, str]] | None = None

    def handle(self, payload: bytes) -> bytes:
        """Execute one request payload; return the answer payload (echo, error, data)."""
        cmd, rest = p.split_command(payload)
        handler = self._handlers.get(cmd)
        if handler is None:
            return _answer(cmd, codes.NOT_SUPPORTED)
        try:
            if cmd != p.DEVICE_TYPE:
                rest = self._check_password(cmd, rest)
            return _answer(cmd, codes.OK, handler(rest))
        except CommandError as exc:
            return _answer(cmd, exc.code)
        except KktError as exc:
            if exc.vendor_code in _MARKING_CODES:  # the FN's marking errors keep their own codes
                return _answer(cmd, _MARKING_CODES[exc.vendor_code])
            if isinstance(exc, DeviceStateError) and exc.condition == DeviceStateError.COND_PAPER_OUT \
                    and self._receipt_operation is not None:
                self._awaiting_continue = True  # printing stopped mid-receipt: B0 is needed later
            return _answer(cmd, codes.code_for(exc))
        except (p.FrameError, ValueError, IndexError):
            return _answer(cmd, codes.BAD_PARAMETERS)

    # -- helpers ---------------------------------------------------------------------------
    def _check_password(self, cmd: int, rest: bytes) -> bytes:
        if len(rest) < 4:
            raise CommandError(codes.BAD_PARAMETERS)
        pw = p.read_uint(rest, 0, 4)
        # FF46 and FF67 take any operator (JPOS sends FF67 with the operator's password)
        admin = cmd in ADMIN_COMMANDS or (cmd > 0xFF and cmd not in (p.FN_OPERATION, mk.FN_MARKING_BIND))
        allowed = ADMIN_PASSWORDS if admin else CASHIER_PASSWORDS
        if pw not in allowed:
            raise CommandError(codes.WRONG_PASSWORD)
        self._operator = pw
        return rest[4:]

    def _op(self) -> bytes:
        return bytes([self._operator])

    def _mode(self) -> tuple[int, int, int]:
        """(mode, submode, flags) as 0x10/0x11 report them."""
        st = self.model.status()
        if st.receipt_open:
            rtype = p.RECEIPT_TYPE_BY_OPERATION.get(self._receipt_operation or 1, 0)
            mode = 0x08 | (rtype << 4)
        elif st.shift_open:
            mode = 3 if st.shift_expired else 2
        else:
            mode = 4
        if not st.paper_ok:
            submode = 2 if st.receipt_open else 1
        else:
            submode = 3 if self._awaiting_continue else 0
        flags = m.FLAG_RECEIPT_ROLL if st.paper_ok else 0
        return mode, submode, flags

    def _receipt_count(self, shift: int) -> int:
        for doc in reversed(self.model.documents()):
            if doc.get("shift") == shift and doc["kind"] in ("receipt", "correction"):
                return int(doc.get("receipt_no") or 0)
        return 0

    # -- the shift's registers (1A/1B; kkt_drivers.shtrih.counters) --------------------------
    def _shift_counters(self) -> Any:
        """The open shift's running counters; None once the Z report cleared them (shift closed)."""
        return self.model.shift_totals() if self.model.status().shift_open else None

    def _cash_register(self, rest: bytes) -> bytes:
        number = sc.decode_register_number(rest)
        return sc.encode_cash_answer(self._operator, sc.register_value(self._shift_counters(), number))

    def _operation_register(self, rest: bytes) -> bytes:
        if len(rest) != 1:
            raise CommandError(codes.BAD_PARAMETERS)
        return sc.encode_count_answer(self._operator, sc.count_value(self._shift_counters(), rest[0]))

    # -- status ----------------------------------------------------------------------------
    def _device_type(self, rest: bytes) -> bytes:
        if self.nano:
            return m.encode_device_type(NANO_NAME, NANO_MODEL)
        return m.encode_device_type(DEVICE_NAME, DESKTOP_MODEL)

    def set_table(self, table: int, row: int, field: int, value: int | str) -> None:
        """Change a setting as a service engineer would (tests: T17F71 = 1 or 2, T1F14 = 0 or 1)."""
        self.tables[(table, row, field)] = value

    def _read_table(self, rest: bytes) -> bytes:
        table, row, field, _ = m.decode_table_address(rest)
        value = self.tables.get((table, row, field))
        if value is None:
            # UNVERIFIED: the code for a field the firmware does not have (0x33 "некорректные параметры")
            raise CommandError(codes.BAD_PARAMETERS)
        if isinstance(value, str):
            return value.encode(p.TEXT_ENCODING)
        return p.uint(value, 2 if table == T_TAX_RATES else 1)

    def _write_table(self, rest: bytes) -> bytes:
        table, row, field, raw = m.decode_table_address(rest)
        old = self.tables.get((table, row, field))
        if old is None or not raw:
            raise CommandError(codes.BAD_PARAMETERS)
        self.tables[(table, row, field)] = (read_text(raw) if isinstance(old, str)
                                            else int.from_bytes(raw, "little"))
        return b""

    def _fn_expiry(self, rest: bytes) -> bytes:
        # the emulated FN is valid 36 months from its first document (a 36-month FN model)
        docs = self.model.documents()
        first = dt.datetime.fromisoformat(docs[0]["dt"]).date() if docs else self._clock().date()
        return m.encode_fn_expiry(m.FnExpiry(first.replace(year=first.year + 3, day=min(first.day, 28)), 11, 1))

    def _short_status(self, rest: bytes) -> bytes:
        mode, submode, flags = self._mode()
        return m.encode_short_status(m.ShortStatus(self._operator, flags, mode, submode))

    def _full_status(self, rest: bytes) -> bytes:
        mode, submode, flags = self._mode()
        st = self.model.status()
        last_closed = st.shift_number if not st.shift_open else max(0, st.shift_number - 1)
        return m.encode_full_status(m.FullStatus(self._operator, flags, mode, submode, self._clock(),
                                                 self.register_serial, last_closed))

    def _fn_status(self, rest: bytes) -> bytes:
        st = self.model.status()
        return m.encode_fn_status(m.FnStatus(
            phase=0x03, current_document=0x04 if st.receipt_open else 0, document_data=0,
            shift_open=st.shift_open, warnings=0, now=self._clock(), fn_serial=st.fn_serial,
            last_fd=st.last_fd_number))

    def _shift_params(self, rest: bytes) -> bytes:
        st = self.model.status()
        return m.encode_shift_params(st.shift_open, st.shift_number, self._receipt_count(st.shift_number))

    def _ofd_status(self, rest: bytes) -> bytes:
        return m.encode_ofd_status(0, 0, self._clock())  # the emulator has no OFD: nothing unsent

    # -- shifts and reports ----------------------------------------------------------------
    def _begin_open_shift(self, rest: bytes) -> bytes:
        return self._begin_shift_step(p.FN_BEGIN_OPEN_SHIFT, want_open=False)

    def _begin_close_shift(self, rest: bytes) -> bytes:
        return self._begin_shift_step(p.FN_BEGIN_CLOSE_SHIFT, want_open=True)

    def _begin_shift_step(self, cmd: int, *, want_open: bool) -> bytes:
        st = self.model.status()
        if st.receipt_open:
            raise CommandError(codes.RECEIPT_OPEN)
        if st.shift_open != want_open:
            raise CommandError(codes.SHIFT_OPEN if st.shift_open else codes.SHIFT_CLOSED)
        self._shift_step, self._shift_cashier = cmd, {}
        return b""

    def _take_cashier(self, cmd: int) -> tuple[str | None, str | None]:
        """The 1021/1203 sent after FF41/FF42 *cmd*, consumed by E0/41."""
        if self._shift_step != cmd:
            return None, None
        self._shift_step, cashier = None, self._shift_cashier
        self._shift_cashier = {}
        return cashier.get(1021), cashier.get(1203)

    def _open_shift(self, rest: bytes) -> bytes:
        name, inn = self._take_cashier(p.FN_BEGIN_OPEN_SHIFT)
        self.model.open_shift(name, inn)
        return self._op()

    def _x_report(self, rest: bytes) -> bytes:
        self.model.x_report()
        return self._op()

    def _z_report(self, rest: bytes) -> bytes:
        if self.z_report_delay_s:
            time.sleep(self.z_report_delay_s)  # a real Z report prints for tens of seconds
        name, inn = self._take_cashier(p.FN_BEGIN_CLOSE_SHIFT)
        self.model.close_shift(name, inn)
        return self._op()

    # -- receipts --------------------------------------------------------------------------
    def _open_receipt(self, rest: bytes) -> bytes:
        """8D: type 0..3, or 0x80 | type for an FFD 1.2 correction receipt (1173/1174 follow by FF0C)."""
        if not rest:
            raise CommandError(codes.BAD_PARAMETERS)
        correction = bool(rest[0] & p.CORRECTION_RECEIPT_FLAG)
        rtype = rest[0] & ~p.CORRECTION_RECEIPT_FLAG
        if rtype not in p.OPERATION_BY_RECEIPT_TYPE:
            raise CommandError(codes.BAD_PARAMETERS)
        op = p.OPERATION_BY_RECEIPT_TYPE[rtype]
        # 1173 defaults to "self-made" until FF0C says otherwise; a non-empty record marks the correction
        record = {"1173": 0, "1178": "", "1179": ""} if correction else None
        self.model.open_receipt(Operation(op), correction=record)
        self._receipt_operation = op
        self._item_tlvs = []
        self._bound_code, self._held = None, None
        return self._op()

    def _operation(self, rest: bytes) -> bytes:
        self._no_held_item()
        line = m.decode_operation_v2(rest)
        # only the vendor's bytes: 0x40|row (our old convention) is defined by no firmware
        vat = codes.vat_for_tax_byte(line.tax, nano=self.nano)
        if vat is None or line.operation not in (1, 2, 3, 4):
            raise CommandError(codes.BAD_PARAMETERS)
        if codes.TAX_ROW_BY_VAT[vat] in self.unlicensed_rows:
            raise CommandError(codes.BAD_PARAMETERS_FOR_IMPLEMENTATION)
        if not self.model.status().receipt_open:
            # the first operation opens a receipt of its own type
            self.model.open_receipt(Operation(line.operation))
            self._receipt_operation = line.operation
        elif self._receipt_operation not in (None, line.operation):
            raise CommandError(0x49)
        computed = money(line.price * line.quantity)
        if line.amount is not None and abs(line.amount - computed) > KOPECK:
            raise CommandError(codes.BAD_PARAMETERS)  # an explicit amount must be within ±1 kopeck
        unit, extra = MeasureUnit.PIECE, {}
        for tag, value in self._item_tlvs:
            if tag == 2108:
                unit = MeasureUnit(int.from_bytes(value, "little"))
            else:
                extra[str(tag)] = value.hex()
        self._item_tlvs = []
        item = Item(
            name=line.name, price=line.price, quantity=line.quantity,
            amount=line.amount if line.amount is not None else computed, vat=vat,
            payment_method=PaymentMethod(line.payment_method),
            payment_subject=PaymentSubject(line.payment_subject), measure_unit=unit)
        if item.payment_subject in MARKED_SUBJECTS:
            if self._bound_code is None:
                self._held = (item, extra)  # classic order: FF4D tags and FF67 follow
                return b""
            item, self._bound_code = replace(item, marking_code=self._bound_code), None
        self._add_item(item, extra)
        return b""

    def _add_item(self, item: Item, extra: dict[str, str]) -> None:
        industry = extra.pop("1260", None)
        if industry is not None:
            item = replace(item, industry=(_industry(bytes.fromhex(industry)),))
        self.model.add_item(item, extra or None)

    def _no_held_item(self) -> None:
        """A marked FF46 whose FF67 never came: the line lacks its code (A4h, a required TLV)."""
        if self._held is not None:
            self._held = None
            raise CommandError(mk.TLV_MISSING)

    # -- marking (FF61, FF69, FF67, FF70; see .marking) -------------------------------------
    def _marking_check(self, rest: bytes) -> bytes:
        req = mk.decode_check(rest)
        return mk.encode_check_answer(_check_answer(self.model.check_marking(req.code, req.status, req.mode)))

    def _marking_decide(self, rest: bytes) -> bytes:
        if not rest or rest[0] not in (mk.REJECT, mk.ACCEPT, mk.CLEAR):
            raise CommandError(codes.BAD_PARAMETERS)
        if rest[0] == mk.CLEAR:  # UNVERIFIED (JPOS only): drop the pending check
            if self.model.marking_counters()["pending"]:
                self.model.decide_marking(False)
            return b"\x00"
        return bytes([self.model.decide_marking(rest[0] == mk.ACCEPT)])

    def _marking_bind(self, rest: bytes) -> bytes:
        """FF67: binds the code to the held FF46 (classic) or to the next one («Кассовое ядро»)."""
        if not self.model.status().receipt_open:
            raise CommandError(mk.WRONG_ORDER)
        code = mk.decode_bind(rest)
        check: mk.CheckAnswer | None = None
        if not self.model.marking_accepted(code):
            # not checked with FF61 first: the register runs the check itself (SPEC117 FF67)
            # GUESS: and accepts the code when fully positive
            raw = self.model.check_marking(code, 1, 0)
            check = _check_answer(raw)
            self.model.decide_marking(raw["result"] & 0x0F == 0x0F)
        if self._held is not None:
            item, extra = self._held
            self._held = None
            self._add_item(replace(item, marking_code=code), extra)
        else:
            self._bound_code = code
        # GUESS: the product-code head is the 1162 type "DM" (0x444D, JPOS barcodeTo1162Value)
        return mk.encode_bind_answer(mk.BindAnswer(head=b"DM", dm_type=_dm_type(code), check=check))

    def _marking_status(self, rest: bytes) -> bytes:
        c = self.model.marking_counters()
        # GUESS: the allowed-commands flags (all) and the storage warning only at "full"
        return mk.encode_status(mk.MarkingStatus(
            check_state=4 if c["pending"] else 1, notification_state=2 if c["blocked"] else int(c["unsent"] > 0),
            allowed=0xFF, saved_results=c["checked"], codes_in_notification=0,
            storage_warning=4 if c["blocked"] else 0, notifications_queued=c["unsent"]))

    def _write_operation_tlv(self, rest: bytes) -> bytes:
        """FF4D: TLV bound to the operation; the vendor sends it before that operation's FF46."""
        if not self.model.status().receipt_open:
            raise CommandError(codes.FN_WRONG_STATE)  # UNVERIFIED: the code outside a receipt
        blocks = p.parse_tlv(rest)
        for tag, value in blocks:
            if tag == 2108 and (len(value) != 1 or value[0] not in {int(u) for u in MeasureUnit}):
                raise CommandError(codes.BAD_PARAMETERS)
        if self._held is not None:  # classic order: tags after the marked FF46, before FF67
            self._held[1].update({str(tag): value.hex() for tag, value in blocks})
            return b""
        self._item_tlvs += blocks
        return b""

    def _write_tlv(self, rest: bytes) -> bytes:
        self._no_held_item()
        blocks = p.parse_tlv(rest)
        if self._shift_step is not None and not self.model.status().receipt_open:
            # between FF41/FF42 and E0/41: the cashier of the shift report
            for tag, value in blocks:
                self._shift_cashier[tag] = value.decode(p.TLV_ENCODING)
            return b""
        if any(tag in (1173, 1174) for tag, _ in blocks):
            self.model.update_correction(correction_requisites(rest))
            blocks = [(tag, value) for tag, value in blocks if tag not in (1173, 1174)]
        for tag, value in blocks:
            decoded: Any = (int.from_bytes(value, "little") if tag in INT_TAGS
                            else value.decode(p.TLV_ENCODING))
            self.model.add_requisite(tag, decoded)
        return b""

    def _close_receipt(self, rest: bytes) -> bytes:
        self._no_held_item()
        req = m.decode_close_receipt(rest)
        tax_system = TaxSystem(req.tax_system)  # ValueError (→ 0x33) unless exactly one known bit
        if not self.model.status().receipt_open:
            raise CommandError(codes.RECEIPT_CLOSED)
        total = self._open_total()
        if total == 0:
            raise CommandError(codes.ZERO_TOTAL)  # a real register refuses a zero receipt (0x8E)
        cash, cashless = req.payments[0], sum(req.payments[1:])
        if cashless > total:
            raise CommandError(codes.CASHLESS_OVER_TOTAL)  # electronic overpayment: 0x4D, not 0x45
        if cash + cashless < total:
            raise CommandError(codes.PAYMENTS_TOO_SMALL)
        change = cash + cashless - total  # only cash can be over: it comes back as change
        slots = [cash - change, *req.payments[1:]]
        payments = [Payment(_PAYMENT_BY_SLOT.get(i, PaymentType.ELECTRONIC), p.kop_to_money(kop))
                    for i, kop in enumerate(slots) if kop]
        doc = self.model.close_receipt(payments, tax_system,
                                       change=p.kop_to_money(change) if change else None)
        self._receipt_operation = None
        self._awaiting_continue = False
        return m.encode_close_answer(m.CloseAnswer(p.kop_to_money(change), doc["fd"], doc["fp"]))

    def _open_total(self) -> int:
        """The open receipt's total in kopecks (sum of its items' amounts)."""
        receipt = self.model.open_receipt_snapshot()
        return sum(int(Decimal(i["amount"]) * 100) for i in receipt["items"])

    def _cancel(self, rest: bytes) -> bytes:
        self._item_tlvs = []
        self._bound_code, self._held = None, None
        if not self.model.cancel_receipt():
            raise CommandError(codes.RECEIPT_CLOSED)
        self._receipt_operation = None
        self._awaiting_continue = False
        return self._op()

    def _continue_print(self, rest: bytes) -> bytes:
        if not self.model.status().paper_ok:
            raise CommandError(codes.PAPER_OUT)
        self._awaiting_continue = False
        return self._op()

    # -- documents -------------------------------------------------------------------------
    def _document(self, rest: bytes) -> dict[str, Any]:
        doc = self.model.document(p.read_uint(rest, 0, 4))
        if doc is None:
            raise CommandError(codes.FN_NO_DATA)
        return doc

    def _find_document(self, rest: bytes) -> bytes:
        doc = self._document(rest)
        receipt = doc["kind"] in ("receipt", "correction")
        return m.encode_found_document(m.FoundDocument(
            doc_type=_DOC_TYPE[doc["kind"]], ofd_ack=True, when=dt.datetime.fromisoformat(doc["dt"]),
            fd_number=doc["fd"], fiscal_sign=doc["fp"],
            operation=doc["operation"] if receipt else None,
            total=Decimal(doc["total"]) if receipt else None,
            shift_number=None if receipt else doc["shift"]))

    def _read_doc_begin(self, rest: bytes) -> bytes:
        doc = self._document(rest)
        self._tlv_cursor = document_tlvs(doc)
        return p.uint(_DOC_TYPE[doc["kind"]], 2) + p.uint(sum(len(b) for b in self._tlv_cursor), 2)

    def _read_doc_block(self, rest: bytes) -> bytes:
        if not self._tlv_cursor:
            raise CommandError(codes.FN_NO_DATA)
        return self._tlv_cursor.pop(0)


def _answer(cmd: int, error: int, data: bytes = b"") -> bytes:
    return p.command_bytes(cmd) + bytes([error]) + (data if error == 0 else b"")


#: the FN's marking errors by the model's vendor code (SPEC117 pp.68–70)
_MARKING_CODES = {"0xA1": mk.WRONG_ORDER, "0xA2": mk.BLOCKED, "0xA3": mk.TABLE_FULL, "0xA5": mk.UNCHECKED}


def _check_answer(raw: dict[str, Any]) -> mk.CheckAnswer:
    """The model's check result as the FF61 answer (TLVs 2114, 2105, 2005 as the golden trace has)."""
    answer = raw.get("answer") or {}
    tlvs = {}
    if answer:
        tlvs = {2114: p.uint(answer["2114"], 4), 2105: bytes([answer["2105"]]), 2005: bytes([answer["2005"]])}
    return mk.CheckAnswer(local=raw["local"], reason=raw["reason"], code_type=raw["type"],
                          fn_answer=raw["fn_answer"], result=raw["result"], tlvs=tlvs)


def _dm_type(code: bytes) -> int:
    """FF67's DataMatrix type byte (GUESS for the 93 check-code case: "symmetric")."""
    from kkt_drivers.marking import CodeKind, MarkingCodeError, parse
    try:
        c = parse(code)
    except MarkingCodeError:
        return mk.DM_SYMMETRIC
    if c.kind is CodeKind.TOBACCO_SHORT:
        return mk.DM_TOBACCO
    if c.crypto is not None:
        return mk.DM_88 if len(c.crypto) == 88 else mk.DM_44
    return mk.DM_SYMMETRIC


def _industry(value: bytes) -> IndustryRequisite:
    """1260's content (1262, 1263, 1264, 1265) as sent by FF4D."""
    sub = {tag: v.decode(p.TLV_ENCODING) for tag, v in p.parse_tlv(value)}
    return IndustryRequisite(sub.get(1262, ""), sub.get(1263, ""), sub.get(1264, ""), sub.get(1265, ""))
