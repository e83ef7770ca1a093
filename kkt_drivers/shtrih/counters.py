"""Shtrih-M shift counters: cash registers (1Ah) and operational registers (1Bh), pure encode/decode.

Register numbers are the vendor's (shtrih-m/javapos_shtrih: ``CashRegister.java`` and
``OperationRegister.java`` name them; ``SMFiscalPrinterImpl.readDayPayments`` and
``RegisterReportReader.getDayPayments`` add them up the same way). A receipt type ``rt`` is
0 приход (sale), 1 расход (expense), 2 возврат прихода (sale refund), 3 возврат расхода:

| register                    | meaning ("в смене": cleared by the Z report)                      |
|-----------------------------|-------------------------------------------------------------------|
| cash 193 + rt + 4·(t−1), t = 1..4 | the shift's receipts of type rt paid by payment type t (1 = cash) |
| cash 4144 + rt + 4·(t−5), t = 5..16 | the same for payment types 5..16 (newer FN firmware; 2-byte number) |
| operational 144 + rt        | the number of receipts of type rt in the shift                     |

Payment types are FF45's 16 slots: 1 cash, 2..13 electronic (summed as "электронными" in the FN),
14 prepayment, 15 credit, 16 counter-provision (our ``other``) — see :data:`protocol.PAYMENT_SLOTS`.

Layouts (javapos ``ReadCashRegister`` / ``ReadOperationRegister``, pyshtrih ``handlers/commands.py``):

* 1Ah request: password (4) + register number (1 byte for 0..255, 2 bytes little-endian above);
  answer: error (1), operator (1), value (6, little-endian kopecks);
* 1Bh request: password (4) + register number (1); answer: error (1), operator (1), value (2).

GUESS (no vendor source): whether correction receipts add to these registers (the emulator adds
them, as the FN's shift counters do); that a register number a firmware lacks is answered with
33h "некорректные параметры" (the driver then counts that payment type as 0).
"""
from __future__ import annotations

from decimal import Decimal

from kkt_drivers.counters import OPERATIONS, OperationTotals, ShiftTotals
from kkt_drivers.shtrih import protocol as p

READ_CASH_REGISTER = 0x1A
READ_OPERATION_REGISTER = 0x1B

#: receipt type offset of each operation (1054 order differs: 8D's receipt types)
RECEIPT_TYPE = {"sale": 0, "expense": 1, "sale_refund": 2, "expense_refund": 3}
#: payment type 1..16 → our payment type name
PAYMENT_NAME = {1: "cash", **{t: "electronic" for t in range(2, 14)}, 14: "prepaid", 15: "credit", 16: "other"}
PAYMENT_TYPES = tuple(range(1, 17))
FIRST_SHIFT_CASH, FIRST_EXTENDED_CASH, FIRST_SHIFT_COUNT = 193, 4144, 144


def cash_register(operation: str, payment_type: int) -> int:
    """The cash register holding the shift's *operation* receipts paid by *payment_type* (1..16)."""
    rt = RECEIPT_TYPE[operation]
    if not 1 <= payment_type <= 16:
        raise ValueError(f"payment type {payment_type} is not 1..16")
    if payment_type <= 4:
        return FIRST_SHIFT_CASH + rt + 4 * (payment_type - 1)
    return FIRST_EXTENDED_CASH + rt + 4 * (payment_type - 5)


def receipts_register(operation: str) -> int:
    """The operational register counting the shift's *operation* receipts."""
    return FIRST_SHIFT_COUNT + RECEIPT_TYPE[operation]


def what_register(number: int) -> tuple[str, int] | None:
    """(operation, payment type) a shift cash register holds; None for another register."""
    by_rt = {rt: op for op, rt in RECEIPT_TYPE.items()}
    if FIRST_SHIFT_CASH <= number < FIRST_SHIFT_CASH + 16:
        off = number - FIRST_SHIFT_CASH
        return by_rt[off % 4], off // 4 + 1
    if FIRST_EXTENDED_CASH <= number < FIRST_EXTENDED_CASH + 48:
        off = number - FIRST_EXTENDED_CASH
        return by_rt[off % 4], off // 4 + 5
    return None


def encode_register_number(number: int) -> bytes:
    """1Ah's register number: one byte up to 255, two (little-endian) above."""
    return p.uint(number, 1 if number <= 0xFF else 2)


def decode_register_number(data: bytes) -> int:
    """The register number of a 1Ah/1Bh request (after the password)."""
    if len(data) not in (1, 2):
        raise ValueError("a register number is 1 or 2 bytes")
    return p.read_uint(data, 0, len(data))


def encode_cash_answer(operator: int, kopecks: int) -> bytes:
    """1Ah answer data after the error byte: operator (1), value (6)."""
    return bytes([operator]) + p.uint(kopecks, 6)


def decode_cash_answer(data: bytes) -> int:
    """Kopecks from 1Ah answer data (operator byte first)."""
    return p.read_uint(data, 1, 6)


def encode_count_answer(operator: int, count: int) -> bytes:
    """1Bh answer data after the error byte: operator (1), value (2)."""
    return bytes([operator]) + p.uint(count, 2)


def decode_count_answer(data: bytes) -> int:
    """The count from 1Bh answer data (operator byte first)."""
    return p.read_uint(data, 1, 2)


def register_value(totals: ShiftTotals | None, number: int) -> int:
    """What cash register *number* holds for the emulator, in kopecks (0 for registers not modelled).

    The model's payment types map to the slots our driver sends (cash 1, electronic 2, prepaid 14,
    credit 15, other 16), so electronic money sits in payment type 2 only.
    """
    found = what_register(number)
    if totals is None or found is None:
        return 0
    operation, payment_type = found
    op = totals.operations.get(operation)
    if op is None:
        return 0
    slot = {"cash": 1, "electronic": 2, "prepaid": 14, "credit": 15, "other": 16}
    amount = sum((v for k, v in op.by_payment.items() if slot.get(k) == payment_type), Decimal("0"))
    return int(amount * 100)


def count_value(totals: ShiftTotals | None, number: int) -> int:
    """What operational register *number* holds for the emulator (receipt counts 144..147)."""
    by_rt = {rt: op for op, rt in RECEIPT_TYPE.items()}
    if totals is None or not FIRST_SHIFT_COUNT <= number < FIRST_SHIFT_COUNT + 4:
        return 0
    op = totals.operations.get(by_rt[number - FIRST_SHIFT_COUNT])
    return op.count or 0 if op else 0


def build_totals(shift: int, cash: dict[int, int], counts: dict[str, int], source: str) -> ShiftTotals:
    """Driver side: :class:`ShiftTotals` from register values (``cash``: register number → kopecks)."""
    ops: dict[str, OperationTotals] = {}
    for operation in OPERATIONS:
        pays: dict[str, Decimal] = {}
        for t in PAYMENT_TYPES:
            kop = cash.get(cash_register(operation, t), 0)
            if kop:
                pays[PAYMENT_NAME[t]] = pays.get(PAYMENT_NAME[t], Decimal("0.00")) + p.kop_to_money(kop)
        ops[operation] = OperationTotals(counts.get(operation), sum(pays.values(), Decimal("0.00")),
                                         dict(sorted(pays.items())))
    return ShiftTotals(shift, ops, source)


# -- a closed shift: the FN's Z report (close-shift report, FFD tag 1194) ------------------------
#
# The FFD 1.2 close-shift report carries 1194 "счётчики итогов смены" (the totals of receipts AND
# correction receipts), holding one STLV per operation — 1129 приход, 1130 возврат прихода, 1131
# расход, 1132 возврат расхода — each with 1135 (receipts, 4 bytes), 1136 cash, 1138 electronic,
# 1218 prepayment, 1219 credit, 1220 counter-provision (VLN kopecks). Tag numbers and meanings: the
# FFD tables as the open-source FFD parser crates list them (``(1194) Счетчики итогов смены`` …).
# The driver reads the report back with FF3A/FF3B like any document. GUESS: which of the optional
# VAT sums (1139…1143, 1183) a firmware adds; they are not used here, the amount is the payments' sum.

TAG_SHIFT_STATS = 1194
TAG_BY_OPERATION = {"sale": 1129, "sale_refund": 1130, "expense": 1131, "expense_refund": 1132}
TAG_COUNT = 1135
TAG_BY_PAYMENT = {"cash": 1136, "electronic": 1138, "prepaid": 1218, "credit": 1219, "other": 1220}


def encode_shift_stats(totals: ShiftTotals) -> bytes:
    """1194 for the emulator's Z report."""
    body = b""
    for name, tag in TAG_BY_OPERATION.items():
        op = totals.operations.get(name) or OperationTotals(0, Decimal("0.00"))
        inner = p.tlv_uint(TAG_COUNT, op.count or 0, 4)
        for kind, ptag in TAG_BY_PAYMENT.items():
            inner += p.tlv_uint(ptag, int(op.by_payment.get(kind, Decimal("0")) * 100))
        body += p.tlv(tag, inner)
    return p.tlv(TAG_SHIFT_STATS, body)


def decode_shift_stats(value: bytes, shift: int, source: str) -> ShiftTotals:
    """:class:`ShiftTotals` (final) from the value of a 1194 block; FrameError when malformed."""
    blocks = dict(p.parse_tlv(value))
    ops: dict[str, OperationTotals] = {}
    for name, tag in TAG_BY_OPERATION.items():
        inner = dict(p.parse_tlv(blocks.get(tag, b"")))
        count = p.read_uint(inner[TAG_COUNT], 0, len(inner[TAG_COUNT])) if TAG_COUNT in inner else 0
        pays = {kind: p.kop_to_money(p.read_uint(inner[ptag], 0, len(inner[ptag])))
                for kind, ptag in TAG_BY_PAYMENT.items() if inner.get(ptag)}
        pays = {k: v for k, v in pays.items() if v}
        ops[name] = OperationTotals(count, sum(pays.values(), Decimal("0.00")), dict(sorted(pays.items())))
    return ShiftTotals(shift, ops, source, final=True)
