"""The Shtrih-M command set on top of :class:`~kkt_drivers.emulator.model.RegisterModel`.

:class:`ShtrihEmulation` turns one request payload into one answer payload; the link layer
(ENQ/ACK/NAK, sockets, wire faults) lives in :mod:`.server`. Every fiscal effect goes through the
shared model, so this register's fiscal storage behaves exactly like the in-process emulator's.
Model errors become Shtrih error codes via :func:`.codes.code_for`; unknown commands answer 0x37.
"""
from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any, Callable

from kkt_drivers.emulator.model import RegisterModel
from kkt_drivers.errors import DeviceStateError, KktError
from kkt_drivers.receipt import (
    Item, Operation, Payment, PaymentMethod, PaymentSubject, PaymentType, TaxSystem, money,
)
from kkt_drivers.shtrih import codes, messages as m, protocol as p

#: operator numbers by password: cashiers 1..28, administrator 29, system administrator 30
ADMIN_PASSWORDS = (29, 30)
CASHIER_PASSWORDS = tuple(range(1, 31))
#: commands that need the administrator's password (Z/X reports and the FN commands)
ADMIN_COMMANDS = {p.X_REPORT, p.Z_REPORT}
DEVICE_NAME = "ШТРИХ-М-01Ф"
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
                 z_report_delay_s: float = 0.0, clock: Callable[[], dt.datetime] = dt.datetime.now) -> None:
        self.model = model
        self.register_serial = register_serial
        self.z_report_delay_s = z_report_delay_s
        self._clock = clock
        self._operator = 30
        self._receipt_operation: int | None = None
        self._awaiting_continue = False
        self._tlv_cursor: list[bytes] = []
        #: after FF35 and before the first item: requisites of the correction being started
        self._correction: dict[str, Any] | None = None
        self._handlers: dict[int, Callable[[bytes], bytes]] = {
            p.DEVICE_TYPE: self._device_type, p.SHORT_STATUS: self._short_status,
            p.FULL_STATUS: self._full_status, p.FN_STATUS: self._fn_status,
            p.FN_SHIFT_PARAMS: self._shift_params, p.FN_OFD_STATUS: self._ofd_status,
            p.OPEN_SHIFT: self._open_shift, p.X_REPORT: self._x_report, p.Z_REPORT: self._z_report,
            p.OPEN_RECEIPT: self._open_receipt, p.FN_OPERATION: self._operation,
            p.FN_WRITE_TLV: self._write_tlv, p.FN_CLOSE_RECEIPT: self._close_receipt,
            p.CANCEL_RECEIPT: self._cancel, p.CONTINUE_PRINT: self._continue_print,
            p.FN_FIND_DOCUMENT: self._find_document, p.FN_READ_DOC_BEGIN: self._read_doc_begin,
            p.FN_READ_DOC_BLOCK: self._read_doc_block, p.FN_BEGIN_CORRECTION: self._begin_correction,
        }

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
        admin = cmd in ADMIN_COMMANDS or (cmd > 0xFF and cmd != p.FN_OPERATION)  # FF46 takes any operator
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

    # -- status ----------------------------------------------------------------------------
    def _device_type(self, rest: bytes) -> bytes:
        return m.encode_device_type(DEVICE_NAME)

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
    def _open_shift(self, rest: bytes) -> bytes:
        self.model.open_shift()
        return self._op()

    def _x_report(self, rest: bytes) -> bytes:
        self.model.x_report()
        return self._op()

    def _z_report(self, rest: bytes) -> bytes:
        if self.z_report_delay_s:
            time.sleep(self.z_report_delay_s)  # a real Z report prints for tens of seconds
        self.model.close_shift()
        return self._op()

    # -- receipts --------------------------------------------------------------------------
    def _open_receipt(self, rest: bytes) -> bytes:
        if not rest or rest[0] not in p.OPERATION_BY_RECEIPT_TYPE:
            raise CommandError(codes.BAD_PARAMETERS)
        op = p.OPERATION_BY_RECEIPT_TYPE[rest[0]]
        self.model.open_receipt(Operation(op))
        self._receipt_operation = op
        return self._op()

    def _operation(self, rest: bytes) -> bytes:
        line = m.decode_operation_v2(rest)
        vat = codes.vat_for_tax_byte(line.tax)
        if vat is None or line.operation not in (1, 2, 3, 4):
            raise CommandError(codes.BAD_PARAMETERS)
        if not self.model.status().receipt_open:
            # the first operation opens a receipt (a correction if FF35 came before)
            self.model.open_receipt(Operation(line.operation), correction=self._correction_dict())
            self._correction = None
            self._receipt_operation = line.operation
        elif self._receipt_operation not in (None, line.operation):
            raise CommandError(0x49)
        amount = line.amount if line.amount is not None else money(line.price * line.quantity)
        self.model.add_item(Item(
            name=line.name, price=line.price, quantity=line.quantity, amount=amount, vat=vat,
            payment_method=PaymentMethod(line.payment_method),
            payment_subject=PaymentSubject(line.payment_subject)))
        return b""

    def _begin_correction(self, rest: bytes) -> bytes:
        st = self.model.status()
        if st.receipt_open or self._correction is not None:
            raise CommandError(codes.RECEIPT_OPEN)
        if not st.shift_open:
            raise CommandError(codes.SHIFT_CLOSED)
        if st.shift_expired:
            raise CommandError(codes.SHIFT_OVER_24H)
        self._correction = {}
        return b""

    def _correction_dict(self) -> dict[str, Any] | None:
        """The model's correction record (1173 type, 1178 date, 1179 order) from FF0C after FF35."""
        c = self._correction
        if c is None:
            return None
        return {"1173": c.get("1173", 0), "1178": c.get("1178", ""), "1179": c.get("1179", "")}

    def _write_tlv(self, rest: bytes) -> bytes:
        if self._correction is not None and not self.model.status().receipt_open:
            self._correction.update(correction_requisites(rest))
            return b""
        for tag, value in p.parse_tlv(rest):
            decoded: Any = (int.from_bytes(value, "little") if tag in INT_TAGS
                            else value.decode(p.TLV_ENCODING))
            self.model.add_requisite(tag, decoded)
        return b""

    def _close_receipt(self, rest: bytes) -> bytes:
        req = m.decode_close_receipt(rest)
        payments = [Payment(_PAYMENT_BY_SLOT.get(i, PaymentType.ELECTRONIC), p.kop_to_money(kop))
                    for i, kop in enumerate(req.payments) if kop]
        tax_system = TaxSystem(req.tax_system)  # ValueError (→ 0x33) unless exactly one known bit
        doc = self.model.close_receipt(payments, tax_system)
        self._receipt_operation = None
        self._awaiting_continue = False
        return m.encode_close_answer(m.CloseAnswer(Decimal("0.00"), doc["fd"], doc["fp"]))

    def _cancel(self, rest: bytes) -> bytes:
        if self._correction is not None and not self.model.status().receipt_open:
            self._correction = None
            return self._op()
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


def document_tlvs(doc: dict[str, Any]) -> list[bytes]:
    """A journal document as the TLV blocks FF3B hands out one by one."""
    when = dt.datetime.fromisoformat(doc["dt"])
    unix = int(when.replace(tzinfo=dt.timezone.utc).timestamp())  # FFD stores local time as UnixTime
    out = [p.tlv_uint(1012, unix, 4), p.tlv_uint(1040, doc["fd"], 4), p.tlv_str(1041, doc["fn"]),
           p.tlv_uint(1077, doc["fp"], 6), p.tlv_uint(1038, doc["shift"], 4)]
    if doc["kind"] in ("receipt", "correction"):
        out += [p.tlv_uint(1042, doc.get("receipt_no") or 0, 4), p.tlv_uint(1054, doc["operation"], 1),
                p.tlv_uint(1055, doc["tax_system"], 1),
                p.tlv_uint(1020, int(Decimal(doc["total"]) * 100))]
        for item in doc["items"]:
            body = (p.tlv_str(1030, item["name"]) + p.tlv_uint(1079, int(Decimal(item["price"]) * 100))
                    + _fvln(1023, Decimal(item["quantity"]))
                    + p.tlv_uint(1043, int(Decimal(item["amount"]) * 100))
                    + p.tlv_uint(1199, item["vat"], 1) + p.tlv_uint(1214, item["method"], 1)
                    + p.tlv_uint(1212, item["subject"], 1))
            out.append(p.tlv(1059, body))
        for tag, value in sorted(doc.get("requisites", {}).items()):
            out.append(p.tlv_uint(int(tag), value, 1) if isinstance(value, int)
                       else p.tlv_str(int(tag), str(value)))
    return out


def correction_requisites(raw: bytes) -> dict[str, Any]:
    """1173 and 1174 (an STLV of 1178 UnixTime and 1179 text) as the model records them."""
    out: dict[str, Any] = {}
    for tag, value in p.parse_tlv(raw):
        if tag == 1173:
            out["1173"] = int.from_bytes(value, "little")
        elif tag == 1174:
            for sub, sval in p.parse_tlv(value):
                if sub == 1178:
                    when = dt.datetime.fromtimestamp(int.from_bytes(sval, "little"), dt.timezone.utc)
                    out["1178"] = when.date().isoformat()
                elif sub == 1179:
                    out["1179"] = sval.decode(p.TLV_ENCODING)
    return out


def _fvln(tag: int, value: Decimal) -> bytes:
    """FFD FVLN: one byte of decimal places, then the scaled integer."""
    scaled = int(value * 1000)
    return p.tlv(tag, bytes([3]) + p.uint(scaled, max(1, (scaled.bit_length() + 7) // 8)))


def _answer(cmd: int, error: int, data: bytes = b"") -> bytes:
    return p.command_bytes(cmd) + bytes([error]) + (data if error == 0 else b"")
