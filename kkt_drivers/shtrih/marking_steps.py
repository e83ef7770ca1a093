"""What :class:`~kkt_drivers.shtrih.driver.ShtrihDriver` sends for marked lines (FFD 1.2).

Order (marking.md §3, SPEC117 and the vendor's staff):

* check phase, **before 8D** (vendor staff, fr_drv_ng#145): FF70 (refuse when marking is blocked),
  then per code FF61 → FF69 (accept / reject, «после проверки каждого КМ»); the decision is
  :mod:`kkt_drivers.marking_flow`'s;
* per marked line, in one of the two orders the firmware uses (URL option ``marking_order``):
  ``item_first`` (classic firmware, SPEC117 p.63, JPOS ``printReceiptItem``):
  FF4D(2108) → FF46 → FF4D(1260) → FF67; ``tags_first`` («Кассовое ядро», staff example
  fr_drv_ng_examples#42): FF4D(2108) → FF4D(1260) → FF67 → FF46.

FF61 and FF67 get a long timeout (JPOS: 40 s; fr_drv_ng#236 failed with 10 s).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Callable

from kkt_drivers import marking_flow
from kkt_drivers.errors import DeviceStateError, DriverConfigError
from kkt_drivers.receipt import Item, PlannedStatus, Receipt
from kkt_drivers.shtrih import marking as mk, protocol as p

#: JPOS gives FF61/FF67 40 s (PrinterCommand, History.txt)
MARKING_TIMEOUT_S = 40.0
ITEM_FIRST, TAGS_FIRST = "item_first", "tags_first"

Command = Callable[..., bytes]


def marking_order(value: str | None) -> str:
    """Parse the ``marking_order`` URL option (default ``item_first``)."""
    if value in (None, "", ITEM_FIRST):
        return ITEM_FIRST
    if value == TAGS_FIRST:
        return TAGS_FIRST
    raise DriverConfigError(f"shtrih URL option 'marking_order' must be {ITEM_FIRST} or {TAGS_FIRST}")


def check_tlv(item: Item, status: PlannedStatus) -> bytes:
    """FF61's TLV: {2108, 1023, 1291} only for measured or partial sales (marking.md §2.2)."""
    if status not in (PlannedStatus.MEASURED_SOLD, PlannedStatus.MEASURED_RETURNED):
        return b""
    out = p.tlv_uint(2108, int(item.measure_unit), 1) + p.tlv(1023, fvln(item.quantity))
    if item.fraction is not None:
        n, d = item.fraction
        out += p.tlv(1291, p.tlv_uint(1293, n) + p.tlv_uint(1294, d))
    return out


#: 1023 goes with 6 decimal places, as in the real «Кассовое ядро» log of fr_drv_ng#249
FVLN_PLACES = 6


def fvln(value: Decimal) -> bytes:
    """FVLN: one byte of decimal places, then the integer LE (fr_drv_ng#249: 06 40420F = 1.000000)."""
    n = int(value.scaleb(FVLN_PLACES).to_integral_value())
    return bytes([FVLN_PLACES]) + n.to_bytes(max(1, (n.bit_length() + 7) // 8), "little")


def industry_tlv(item: Item) -> bytes:
    """1260 blocks of *item* (1262, 1263, 1264, 1265 as CP866 strings) for FF4D."""
    return b"".join(p.tlv(1260, p.tlv_str(1262, r.foiv) + p.tlv_str(1263, r.doc_date)
                          + p.tlv_str(1264, r.doc_number) + p.tlv_str(1265, r.value))
                    for r in item.industry)


def check_codes(command: Command, receipt: Receipt, *, timeout: float, sell_unanswered: bool) -> dict[int, int]:
    """FF70, then FF61 → FF69 for every code; raise as :mod:`kkt_drivers.marking_flow` decides."""
    status = mk.decode_status(command(mk.FN_MARKING_STATUS, admin=True))
    if status.blocked:
        raise DeviceStateError(f"marking is blocked: {status.notifications_queued} notifications not sent "
                               "to ОИСМ (the register must reach the OFD)",
                               condition=marking_flow.COND_MARKING_BLOCKED, vendor_code="FF70")

    def check(n: int, item: Item, planned: PlannedStatus) -> marking_flow.CheckOutcome:
        data = command(mk.FN_MARKING_CHECK, mk.encode_check(mk.CheckRequest(
            code=item.marking_code or b"", status=int(planned), mode=item.marking_mode,
            tlv=check_tlv(item, planned))), admin=True, timeout=timeout)
        a = mk.decode_check_answer(data)
        if a.fn_answer is None:  # autonomous register: no online part (SPEC117: N = 0)
            return marking_flow.CheckOutcome(result=marking_flow.B_AUTONOMOUS, fn_answer=None, local=a.local)
        return marking_flow.CheckOutcome(result=a.result or 0, fn_answer=a.fn_answer, local=a.local)

    def decide(accept: bool) -> object:
        return command(mk.FN_MARKING_DECIDE, bytes([mk.ACCEPT if accept else mk.REJECT]), admin=True)

    return marking_flow.check_receipt(receipt, check, decide, sell_unanswered_codes=sell_unanswered)


def send_item(command: Command, item: Item, measure_tlv: bytes, line: bytes, *, order: str,
              timeout: float) -> None:
    """The frames of one line: unmarked FF4D(2108) → FF46; marked in the firmware's order."""
    command(p.FN_WRITE_OPERATION_TLV, measure_tlv, admin=True)
    if item.marking_code is None:
        command(p.FN_OPERATION, line)
        return
    tags = industry_tlv(item)
    bind = mk.encode_bind(item.marking_code)
    if order == TAGS_FIRST:
        if tags:
            command(p.FN_WRITE_OPERATION_TLV, tags, admin=True)
        command(mk.FN_MARKING_BIND, bind, timeout=timeout)
        command(p.FN_OPERATION, line)
    else:
        command(p.FN_OPERATION, line)
        if tags:
            command(p.FN_WRITE_OPERATION_TLV, tags, admin=True)
        command(mk.FN_MARKING_BIND, bind, timeout=timeout)

