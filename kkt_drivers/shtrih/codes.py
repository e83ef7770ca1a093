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
RECEIPT_BUFFER_FULL = 0x4B
CASHLESS_OVER_TOTAL = 0x4D
BAD_PARAMETERS_FOR_IMPLEMENTATION = 0x36
FN_WRONG_STATE = 0x02
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
    # (0x4B = javapos PrinterConst.SMFP_EFPTR_RECBUF_OVERFLOW)
    # the receipt holds more than the register's buffer: this receipt's data can never fit
    0x4B: Code("Буфер чека переполнен", _REJECT),
    0x4D: Code("Вносимая безналичной оплатой сумма больше суммы чека", _REJECT),
    0x4E: Code("Смена превысила 24 часа", _STATE, DS.COND_SHIFT_EXPIRED),
    # a wrong password is a register misconfiguration: pause the lane, the payment is fine
    0x4F: Code("Неверный пароль", _STATE),
    0x50: Code("Идет печать результатов выполнения предыдущей команды", _TRANSIENT),
    0x55: Code("Чек закрыт, операция невозможна", _STATE),
    0x58: Code("Ожидание команды продолжения печати", _STATE, DS.COND_PAPER_OUT),
    # another operator's document is open on the register: someone else is using it
    0x59: Code("Документ открыт другим оператором", _STATE, DS.COND_RECEIPT_OPEN),
    0x5E: Code("Некорректная операция", _REJECT),
    0x5F: Code("Отрицательный итог чека", _REJECT),
    0x61: Code("Переполнение диапазона цены", _REJECT),
    0x62: Code("Переполнение диапазона количества", _REJECT),
    0x6B: Code("Нет чековой ленты", _STATE, DS.COND_PAPER_OUT),
    0x71: Code("Ошибка отрезчика", _STATE),
    0x77: Code("Принтер: нет сигнала с датчиков", _STATE),
    0x72: Code("Команда не поддерживается в данном подрежиме", _STATE),
    0x73: Code("Команда не поддерживается в данном режиме", _STATE),
    0x7E: Code("Неверное значение в поле длины", _REJECT),
    0x8E: Code("Нулевой итог чека", _REJECT),
    # a register that refuses a table read/write for a table it does not have (javapos 0x5D)
    0x5D: Code("Таблица не определена", _STATE),
    0x90: Code("Поле превышает размер, установленный в настройках", _REJECT),
    0x94: Code("Исчерпан лимит операций в чеке", _REJECT),
    # marking (SPEC117 pp.68–70): the FN's table and notification state pause the lane; a code
    # the FN cannot take in this receipt is the receipt's fault
    0xA0: Code("Работа с маркировкой не разрешена (ФН без признака маркировки)", _STATE),
    0xA1: Code("Неверная последовательность команд группы BXh", _STATE),
    0xA2: Code("Работа с маркированными товарами временно заблокирована", _STATE, "marking_blocked"),
    0xA3: Code("Переполнена таблица проверки кодов маркировки", _REJECT),
    0xA4: Code("Отсутствует обязательный TLV", _REJECT),
    0xA5: Code("В реквизите 2007 содержится КМ, который ранее не проверялся в ФН", _REJECT),
    0xC0: Code("Контроль даты и времени (подтвердите дату и время)", _STATE),
    # UNVERIFIED: C2 is "превышение напряжения в блоке питания" in the v1.16/1.17 lists as we read
    # them; a power fault is the register's state, never the payment's
    0xC2: Code("Превышение напряжения в блоке питания", _STATE),
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


#: FF46 tax byte per table 6 row on desktop firmware (javapos_shtrih ``getVatCodeShtrih()``,
#: commit af0a237b, and ``Doc/VatTable.txt``): rows 1–6 are the documented bitmask, rows 7–10 a
#: second bank 0x81/0x82/0x84/0x88, rows 11–12 a third bank 0xC0 + row (22 % = 0xCB, 22/122 = 0xCC).
_TAX_BYTE_BY_ROW: dict[int, int] = {
    1: 0x01, 2: 0x02, 3: 0x04, 4: 0x08, 5: 0x10, 6: 0x20,
    7: 0x81, 8: 0x82, 9: 0x84, 10: 0x88,
    11: 0xCB, 12: 0xCC,
}
#: Shtrih-Nano firmware differs for rows 11–12 only (javapos ``getVatCodeShtrihNano()``)
_TAX_BYTE_BY_ROW_NANO: dict[int, int] = {**_TAX_BYTE_BY_ROW, 11: 0x90, 12: 0xA0}


def tax_byte(vat: Vat, *, nano: bool = False) -> int:
    """The FF46 tax byte the vendor's own driver sends for *vat* (model-dependent for rows 11–12).

    A byte of the form ``0x40 | row`` is sent by no vendor driver and must never reach a register.
    """
    row = TAX_ROW_BY_VAT[vat]
    return (_TAX_BYTE_BY_ROW_NANO if nano else _TAX_BYTE_BY_ROW)[row]


_VAT_BY_ROW = {row: vat for vat, row in TAX_ROW_BY_VAT.items()}


def vat_for_tax_byte(value: int, *, nano: bool = False) -> Vat | None:
    """Inverse of :func:`tax_byte` for the given firmware family; None for a byte it does not define."""
    table = _TAX_BYTE_BY_ROW_NANO if nano else _TAX_BYTE_BY_ROW
    for row, byte in table.items():
        if byte == value:
            return _VAT_BY_ROW[row]
    return None
