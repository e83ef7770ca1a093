"""The check-then-accept policy every driver runs inside ``fiscalize()`` for marked lines.

The worker makes one driver call per receipt; a driver with :attr:`Driver.supports_marking`
checks every code of the receipt through the FN *before it opens the receipt* (vendor staff,
fr_drv_ng#145; marking.md §2.1, §3) and decides per code with :func:`decide`:

* ОИСМ answered and 2106 bits 0–3 are all set → accept (ATOL's own ``validateMarks`` rule, ATOLJS ✅).
* ОИСМ answered otherwise, or the FN's own crypto check failed → reject the code and raise
  :class:`RejectedError` naming the line and the reason (nothing was fiscalized).
* No valid answer in time (FN answer 0xFF, or 0x20 + reason) → reject the code and raise
  :class:`DeviceStateError` with condition ``marking_check_timeout``: the lane pauses, the payment
  waits. Only when the register URL says ``marking_unanswered=sell`` is the code accepted with the
  result the FN has (2106 bits 0/2 clear) — a documented business decision (marking.md §2.3),
  never the default.
* A register in autonomous mode (2106 bit4) cannot ask ОИСМ: accepted unless the FN's own check failed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from kkt_drivers.errors import DeviceStateError, DriverConfigError, RejectedError
from kkt_drivers.marking import MarkingCodeError, parse
from kkt_drivers.receipt import MARKING_CHECK_POSITIVE, Item, MarkingResult, PlannedStatus, Receipt

COND_MARKING_TIMEOUT = "marking_check_timeout"
COND_MARKING_BLOCKED = "marking_blocked"
#: the register URL option and its values
OPTION = "marking_unanswered"
PAUSE, SELL = "pause", "sell"
#: FN answer codes for the online part (Shtrih FF61; SPEC117): 0 valid, 0x20 + reason, 0xFF timeout
FN_ANSWER_OK = 0x00
FN_ANSWER_TIMEOUT = 0xFF
#: 2106 bits (marking.md §1.1)
B_CHECKED, B_CRYPTO_OK, B_STATUS_INFO, B_STATUS_OK, B_AUTONOMOUS = 0x01, 0x02, 0x04, 0x08, 0x10
#: 2004 bits: the FN checked the crypto part / it was positive
LOCAL_CHECKED, LOCAL_OK = 0x01, 0x02


@dataclass(frozen=True)
class CheckOutcome:
    """What one code's check returned, in the FN's terms."""

    #: 2106 as the FN derived it
    result: int
    #: 0 answer received and valid, 0x20 + reason invalid answer, 0xFF none in time; None when the
    #: driver's API does not say (KKMServer: then 2106 bit2 tells whether ОИСМ answered)
    fn_answer: int | None = None
    #: 2004, the FN's own check of the crypto part
    local: int = 0
    #: the vendor's own words, for the message (KKMServer ``DecryptionResult``)
    text: str = ""


def sell_unanswered(value: str | None) -> bool:
    """Parse the ``marking_unanswered`` URL option (default pause); DriverConfigError otherwise."""
    if value in (None, "", PAUSE):
        return False
    if value == SELL:
        return True
    raise DriverConfigError(f"register URL option {OPTION!r} must be {PAUSE!r} or {SELL!r}, got {value!r}")


def describe_2106(result: int) -> str:
    """2106 in words for the ledger."""
    if result & B_AUTONOMOUS:
        return "autonomous register, not checked online"
    words = []
    if not result & B_CHECKED:
        words.append("not checked")
    else:
        words.append("crypto part " + ("valid" if result & B_CRYPTO_OK else "NOT valid"))
    if result & B_STATUS_INFO:
        words.append("ОИСМ: planned status " + ("correct" if result & B_STATUS_OK else "INCORRECT"))
    else:
        words.append("no status answer from ОИСМ")
    return ", ".join(words) + f" (2106=0x{result:02X})"


def decide(n: int, item: Item, outcome: CheckOutcome, *, sell_unanswered_codes: bool) -> bool:
    """True to accept the code of ``items[n]``; False when it is to be rejected and then
    :func:`raise_for` raises. Pure."""
    return _problem(n, item, outcome, sell_unanswered_codes) is None


def raise_for(n: int, item: Item, outcome: CheckOutcome, *, sell_unanswered_codes: bool) -> None:
    """Raise the error for a code that :func:`decide` refused (no-op for an accepted one)."""
    problem = _problem(n, item, outcome, sell_unanswered_codes)
    if problem is not None:
        raise problem


def _problem(n: int, item: Item, o: CheckOutcome, sell: bool) -> Exception | None:
    try:
        name = parse(item.marking_code or b"").short
    except MarkingCodeError:
        name = "?"
    where = f"items[{n}].marking_code"
    text = f" — {o.text}" if o.text else ""
    if o.local & LOCAL_CHECKED and not o.local & LOCAL_OK:
        return RejectedError(f"{where}: code {name} declined: the FN found its crypto part invalid{text}",
                             field=where, vendor_code=f"2106=0x{o.result:02X}")
    if o.result & B_AUTONOMOUS:
        return None
    answered = o.fn_answer == FN_ANSWER_OK if o.fn_answer is not None else bool(o.result & B_STATUS_INFO)
    if answered and o.result & MARKING_CHECK_POSITIVE == MARKING_CHECK_POSITIVE:
        return None
    if answered:
        return RejectedError(f"{where}: code {name} declined: {describe_2106(o.result)}{text}",
                             field=where, vendor_code=f"2106=0x{o.result:02X}")
    if sell:
        return None
    why = ("no answer from ОИСМ in time" if o.fn_answer in (None, FN_ANSWER_TIMEOUT)
           else f"the FN found ОИСМ's answer invalid (0x{o.fn_answer:02X})")
    return DeviceStateError(f"{where}: code {name}: {why}; the lane waits (register option "
                            f"{OPTION}={SELL} would sell without the online result){text}",
                            condition=COND_MARKING_TIMEOUT,
                            vendor_code=f"fn_answer=0x{(o.fn_answer if o.fn_answer is not None else 0xFF):02X}")


def marked_lines(receipt: Receipt) -> list[tuple[int, Item, PlannedStatus]]:
    """(index, item, 2003) of every line with a code, in order."""
    return [(n, it, it.status_for(receipt.operation)) for n, it in enumerate(receipt.items)
            if it.marking_code is not None]


def check_receipt(receipt: Receipt, check: Callable[[int, Item, PlannedStatus], CheckOutcome],
                  accept: Callable[[bool], object] | None, *, sell_unanswered_codes: bool) -> dict[int, int]:
    """Check every code of *receipt*, accept or reject each; return line index → 2106.

    *check* runs the FN check of one code; *accept* (None for an API that accepts by itself) tells
    the FN the decision. Raises on the first refused code, after rejecting it (see the module doc).
    """
    problems = receipt.marking_problems()
    if problems:
        field = problems[0].split(":", 1)[0]
        raise RejectedError(problems[0], field=field)
    results: dict[int, int] = {}
    for n, item, status in marked_lines(receipt):
        outcome = check(n, item, status)
        ok = decide(n, item, outcome, sell_unanswered_codes=sell_unanswered_codes)
        if accept is not None:
            accept(ok)
        raise_for(n, item, outcome, sell_unanswered_codes=sell_unanswered_codes)
        results[n] = outcome.result
    return results


def as_results(receipt: Receipt, results: dict[int, int]) -> tuple[MarkingResult, ...]:
    """:func:`check_receipt`'s line → 2106 as the :attr:`FiscalDocument.marking_results` the ledger keeps."""
    return tuple(MarkingResult(n, receipt.items[n].marking_code or b"", r) for n, r in sorted(results.items()))
