"""Shtrih-M error codes and VAT codes, and the one place that maps them to our error classes.

Codes 0x01..0x20 come from the fiscal storage (ФН), 0x26 and up from the register itself
(protocol v1.16 pp.61–64). Every error keeps ``vendor_code`` = ``"0xNN <message>"``.
"""
from __future__ import annotations

from dataclasses import dataclass

from kkt_drivers.errors import DeviceStateError, KktError, RejectedError, TransientError
from kkt_drivers.receipt import Vat

DS = DeviceStateError

# kinds
_STATE = "state"
_REJECT = "reject"
_TRANSIENT = "transient"


@dataclass(frozen=True)
class Code:
    """One vendor error: its message, how the caller must react, and the device condition."""

    message: str
    kind: str
    condition: str = DS.COND_OTHER


OK = 0x00
FN_NO_DATA = 0x08
FN_SHIFT_OVER_24H = 0x16
BAD_PARAMETERS = 0x33
NOT_SUPPORTED = 0x37
SHIFT_OPEN = 0x3C
SHIFT_CLOSED = 0x3D
PAYMENTS_TOO_SMALL = 0x45
RECEIPT_OPEN = 0x4A
SHIFT_OVER_24H = 0x4E
WRONG_PASSWORD = 0x4F
STILL_PRINTING = 0x50
RECEIPT_CLOSED = 0x55
WAIT_CONTINUE_PRINT = 0x58
PAPER_OUT = 0x6B
WRONG_MODE = 0x73
TOO_MANY_OPERATIONS = 0x94
ZERO_TOTAL = 0x8E
FN_FAILURE = 0x03

CODES: dict[int, Code] = {
    0x01: Code("ФН: неизвестная команда, неверный формат посылки или неизвестные параметры", _REJECT),
    0x02: Code("ФН: другое состояние ФН", _STATE),
    0x03: Code("ФН: отказ ФН", _STATE, DS.COND_FN_ERROR),
    0x04: Code("ФН: отказ КС", _STATE, DS.COND_FN_ERROR),
    0x05: Code("ФН: параметры команды не соответствуют сроку жизни ФН", _STATE, DS.COND_FN_ERROR),
    0x06: Code("ФН: архив ФН переполнен", _STATE, DS.COND_FN_ERROR),
    0x07: Code("ФН: неверные дата и/или время", _STATE),
    0x08: Code("ФН: нет запрошенных данных", _REJECT),
    0x09: Code("ФН: некорректное значение параметров команды", _REJECT),
    0x10: Code("ФН: превышение размеров TLV данных", _REJECT),
    0x11: Code("ФН: нет транспортного соединения", _TRANSIENT),
    0x12: Code("ФН: исчерпан ресурс КС", _STATE, DS.COND_FN_ERROR),
    0x14: Code("ФН: исчерпан ресурс хранения документов для ОФД", _STATE, DS.COND_FN_ERROR),
    0x15: Code("ФН: исчерпан ресурс ожидания передачи сообщения", _STATE, DS.COND_FN_ERROR),
    0x16: Code("ФН: продолжительность смены более 24 часов", _STATE, DS.COND_SHIFT_EXPIRED),
    0x17: Code("ФН: неверная разница во времени между двумя операциями", _STATE),
    0x20: Code("ФН: сообщение от ОФД не может быть принято", _STATE),
    0x2F: Code("Таймаут обмена с ФН", _TRANSIENT),
    0x30: Code("ФН не отвечает", _STATE, DS.COND_FN_ERROR),
    0x33: Code("Некорректные параметры в команде", _REJECT),
    0x35: Code("Некорректный параметр при данных настройках", _REJECT),
    0x36: Code("Некорректные параметры в команде для данной реализации ККТ", _REJECT),
    0x37: Code("Команда не поддерживается в данной реализации ККТ", _STATE),
    0x3C: Code("Смена открыта, операция невозможна", _STATE, DS.COND_SHIFT_OPEN),
    0x3D: Code("Смена не открыта, операция невозможна", _STATE, DS.COND_SHIFT_CLOSED),
    0x45: Code("Сумма всех типов оплаты меньше итога чека", _REJECT),
    0x46: Code("Не хватает наличности в кассе", _REJECT),
    0x49: Code("Операция невозможна в открытом чеке данного типа", _STATE, DS.COND_RECEIPT_OPEN),
    0x4A: Code("Открыт чек, операция невозможна", _STATE, DS.COND_RECEIPT_OPEN),
    0x4E: Code("Смена превысила 24 часа", _STATE, DS.COND_SHIFT_EXPIRED),
    # a wrong password is a register misconfiguration: pause the lane, the payment is fine
    0x4F: Code("Неверный пароль", _STATE),
    0x50: Code("Идет печать результатов выполнения предыдущей команды", _TRANSIENT),
    0x55: Code("Чек закрыт, операция невозможна", _STATE),
    0x58: Code("Ожидание команды продолжения печати", _STATE, DS.COND_PAPER_OUT),
    0x5E: Code("Некорректная операция", _REJECT),
    0x6B: Code("Нет чековой ленты", _STATE, DS.COND_PAPER_OUT),
    0x72: Code("Команда не поддерживается в данном подрежиме", _STATE),
    0x73: Code("Команда не поддерживается в данном режиме", _STATE),
    0x7E: Code("Неверное значение в поле длины", _REJECT),
    0x8E: Code("Нулевой итог чека", _REJECT),
    0x94: Code("Исчерпан лимит операций в чеке", _REJECT),
    0xC0: Code("Контроль даты и времени (подтвердите дату и время)", _STATE),
    0xC4: Code("Несовпадение номеров смен", _STATE),
}


def describe(code: int) -> str:
    """``"0xNN message"`` for logs and ``vendor_code``."""
    entry = CODES.get(code)
    return f"0x{code:02X} {entry.message if entry else 'неизвестная ошибка'}"


def error_for(code: int, command: int) -> KktError:
    """The error to raise for a non-zero answer *code* to *command*.

    Unknown codes pause the lane (DeviceStateError) rather than reject the payment: the register
    said no for a reason we cannot classify, which is not evidence that the data is wrong.
    """
    entry = CODES.get(code)
    vendor = describe(code)
    msg = f"register refused command 0x{command:X}: {vendor}"
    if entry is None:
        return DeviceStateError(msg, vendor_code=vendor)
    if entry.kind == _REJECT:
        return RejectedError(msg, vendor_code=vendor)
    if entry.kind == _TRANSIENT:
        return TransientError(msg, vendor_code=vendor)
    return DeviceStateError(msg, condition=entry.condition, vendor_code=vendor)


def code_for(exc: KktError) -> int:
    """The code the emulator answers with when the register model raises *exc*."""
    if isinstance(exc, DeviceStateError):
        return {
            DS.COND_PAPER_OUT: PAPER_OUT, DS.COND_SHIFT_CLOSED: SHIFT_CLOSED,
            DS.COND_SHIFT_OPEN: SHIFT_OPEN, DS.COND_SHIFT_EXPIRED: SHIFT_OVER_24H,
            DS.COND_RECEIPT_OPEN: RECEIPT_OPEN, DS.COND_FN_ERROR: FN_FAILURE,
        }.get(exc.condition, RECEIPT_CLOSED)
    if isinstance(exc, RejectedError):
        by_field = {"payments": PAYMENTS_TOO_SMALL, "items": TOO_MANY_OPERATIONS}
        return by_field.get(exc.field or "", BAD_PARAMETERS)
    return BAD_PARAMETERS


# -- VAT ------------------------------------------------------------------------------------
#: Table 6 row ("Tax1") per rate; rows 11/12 = 22 % and 22/122 (javapos, 2026-02).
TAX_ROW_BY_VAT: dict[Vat, int] = {
    Vat.VAT20: 1, Vat.VAT10: 2, Vat.VAT0: 3, Vat.NONE: 4, Vat.VAT120: 5, Vat.VAT110: 6,
    Vat.VAT5: 7, Vat.VAT7: 8, Vat.VAT105: 9, Vat.VAT107: 10, Vat.VAT22: 11, Vat.VAT122: 12,
}


def tax_byte(vat: Vat) -> int:
    """The FF46 tax byte for *vat*.

    Rows 1..6 use the documented bitmask (bit row-1). The spec's one-byte bitmask has no room for
    rows 7..12, whose wire form differs by firmware; we send ``0x40 | row`` (never a single bit,
    so never confused with rows 1..6). This is OUR convention, shared with our emulator only:
    check it against the target firmware before sending 5 %, 7 % or 22 % to a real register.
    """
    row = TAX_ROW_BY_VAT[vat]
    return 1 << (row - 1) if row <= 6 else 0x40 | row


_VAT_BY_TAX_BYTE = {tax_byte(v): v for v in TAX_ROW_BY_VAT}


def vat_for_tax_byte(value: int) -> Vat | None:
    """Inverse of :func:`tax_byte`; None for an invalid byte."""
    return _VAT_BY_TAX_BYTE.get(value)
