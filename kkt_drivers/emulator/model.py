"""An emulated cash register: the one model behind the in-process driver and every wire server.

The register's state lives in a directory so that it outlives any process that drives it, the
way a real register outlives a crashed worker: the journal (the fiscal storage, ФН), the state file and
the cross-process lock are :mod:`kkt_drivers.emulator.storage`; this module is what the register does.

Commands mirror what a register's protocol offers (open receipt, add item, add requisite, close,
cancel, shifts, read a document back), so a wire-protocol server maps its frames onto them 1:1.
Model-level faults (paper running out mid-receipt, FN failure at close) come from
:class:`~kkt_drivers.emulator.faults.Faults`; link-level faults belong to the driver or server.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable
from zoneinfo import ZoneInfo

from kkt_drivers import counters
from kkt_drivers.counters import ShiftTotals
from kkt_drivers.emulator import fn_marking
from kkt_drivers.emulator.faults import Faults
from kkt_drivers.emulator.storage import RegisterStorage, fn_serial_for
from kkt_drivers.errors import DeviceStateError, RejectedError
from kkt_drivers.receipt import (
    DeviceStatus,
    DocumentKind,
    FiscalDocument,
    Item,
    Operation,
    Payment,
    TaxSystem,
    money,
)

SHIFT_MAX_AGE = dt.timedelta(hours=24)
#: the emulated register's clock zone (KKT_EMULATOR_TZ overrides it for a shop elsewhere)
REGISTER_ZONE = ZoneInfo(os.environ.get("KKT_EMULATOR_TZ", "Europe/Moscow"))
#: how long the emulated FN stays valid after the register state is created (an FN-1.2 for 15 months)
FN_VALIDITY = dt.timedelta(days=456)
#: how long an emulated cashier takes to load new paper after it ran out
PAPER_RELOAD_SECONDS = 2.0
#: receipt limits of the emulated model (a real FN stores up to 32 KiB per document)
MAX_ITEMS_PER_RECEIPT = 100
MAX_PAYMENTS_PER_RECEIPT = 5

Clock = Callable[[], dt.datetime]


@dataclass
class OpenReceipt:
    """A receipt being built; not fiscal until :meth:`RegisterModel.close_receipt`."""

    operation: int
    items: list[dict[str, Any]] = field(default_factory=list)
    requisites: dict[str, Any] = field(default_factory=dict)
    correction: dict[str, Any] | None = None


class RegisterModel(RegisterStorage):
    """The emulated register rooted at *state_dir* (its storage: :class:`RegisterStorage`). Thread- and
    process-safe per command."""

    def __init__(self, state_dir: str | os.PathLike[str], *, serial: str = "0000000000000001",
                 faults: Faults | None = None, clock: Clock | None = None, fsync: bool = True) -> None:
        super().__init__(state_dir, serial=serial, fsync=fsync)
        self.faults = faults or Faults()
        self._clock = clock

    # -- state -----------------------------------------------------------------------------
    def _new_state(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "fn_serial": fn_serial_for(self.serial, 1),
            "fn_generation": 1,
            "last_fd": 0,
            "shift_open": False,
            "shift_number": 0,
            "shift_opened_at": None,
            "receipts_in_shift": 0,
            "receipt": None,
            "paper_out_until": None,
            "clock_offset_s": 0,
        }

    # -- clock -----------------------------------------------------------------------------
    def _now(self, state: dict[str, Any]) -> dt.datetime:
        # a register keeps its shop's wall-clock time (Moscow by default, as the worker's default zone)
        base = self._clock() if self._clock else dt.datetime.now(REGISTER_ZONE)
        offset = state.get("clock_offset_s", 0)
        if not offset:   # one replace instead of three steps: several calls per receipt
            return base.replace(tzinfo=None, microsecond=0)
        return (base.replace(tzinfo=None) + dt.timedelta(seconds=offset)).replace(microsecond=0)

    def advance_clock(self, seconds: float) -> None:
        """Move the register's clock forward (tests of the 24 h shift limit, across processes)."""
        with self._locked() as s:
            s["clock_offset_s"] = s.get("clock_offset_s", 0) + seconds

    # -- queries ---------------------------------------------------------------------------
    def status(self) -> DeviceStatus:
        """The register's status as a driver reports it."""
        with self._locked() as s:
            now = self._now(s)
            opened = dt.datetime.fromisoformat(s["shift_opened_at"]) if s["shift_opened_at"] else None
            return DeviceStatus(
                register_serial=s["serial"], fn_serial=s["fn_serial"], last_fd_number=s["last_fd"],
                shift_open=s["shift_open"], shift_number=s["shift_number"], shift_opened_at=opened,
                shift_expired=bool(s["shift_open"] and opened and now - opened > SHIFT_MAX_AGE),
                receipt_open=s["receipt"] is not None, paper_ok=self._paper_ok(s, now),
                model="emulator", register_time=now, fn_valid_until=self._fn_valid_until(s, now),
                marking_blocked=fn_marking.blocked(s),
                marking_unsent_notifications=fn_marking.counters(s)["unsent"],
                **self._ofd_backlog(s),
            )

    def _fn_valid_until(self, s: dict[str, Any], now: dt.datetime) -> dt.date:
        if not s.get("fn_valid_until"):  # a fresh FN is valid for 15 months (FN-1.2 for 15 months)
            s["fn_valid_until"] = (now + FN_VALIDITY).date().isoformat()
        return dt.date.fromisoformat(s["fn_valid_until"])

    def _ofd_backlog(self, s: dict[str, Any]) -> dict[str, Any]:
        first = s.get("ofd_unsent_from_fd")
        if first is None or first > s["last_fd"]:
            return {"unsent_documents": 0, "ofd_oldest_unsent_at": None}
        oldest = self._read_document(s["fn_serial"], first)
        return {"unsent_documents": s["last_fd"] - first + 1,
                "ofd_oldest_unsent_at": dt.datetime.fromisoformat(oldest["dt"]) if oldest else None}

    def document(self, fd_number: int, fn_serial: str | None = None) -> dict[str, Any] | None:
        """The raw journal record of document *fd_number* in the current (or given) FN."""
        with self._locked() as s:
            return self._read_document(fn_serial or s["fn_serial"], fd_number)

    def fiscal_document(self, fd_number: int) -> FiscalDocument | None:
        """Document *fd_number* as a :class:`FiscalDocument`; None if it does not exist."""
        doc = self.document(fd_number)
        return to_fiscal_document(doc) if doc else None

    def documents(self) -> list[dict[str, Any]]:
        """Every document ever written, in journal order (the ground truth for tests)."""
        with self._locked():
            return sorted(self._journal_documents(), key=lambda d: (d["fn"], d["fd"]))

    # -- shifts ----------------------------------------------------------------------------
    def open_shift(self, cashier: str | None = None, cashier_inn: str | None = None) -> dict[str, Any]:
        """Open a new shift; DeviceStateError if one is open. *cashier_inn* (1203) is kept if given."""
        with self._locked() as s:
            self._check_paper(s)
            if s["shift_open"]:
                raise DeviceStateError("shift is already open", condition=DeviceStateError.COND_SHIFT_OPEN)
            now = self._now(s)
            s.update(shift_open=True, shift_number=s["shift_number"] + 1,
                     shift_opened_at=now.isoformat(), receipts_in_shift=0)
            doc = {"kind": "open_shift", "dt": now.isoformat(), "shift": s["shift_number"], "cashier": cashier}
            if cashier_inn is not None:
                doc["cashier_inn"] = cashier_inn
            return self._append_document(s, doc)

    def close_shift(self, cashier: str | None = None, cashier_inn: str | None = None) -> dict[str, Any]:
        """Close the shift (Z report); allowed for an expired shift, refused with a receipt open."""
        with self._locked() as s:
            self._check_paper(s)
            if not s["shift_open"]:
                raise DeviceStateError("shift is closed", condition=DeviceStateError.COND_SHIFT_CLOSED)
            if s["receipt"] is not None:
                raise DeviceStateError("a receipt is open", condition=DeviceStateError.COND_RECEIPT_OPEN)
            now = self._now(s)
            s.update(shift_open=False)
            # the Z report carries the shift's counters (FFD 1194 "счётчики итогов смены"), as its
            # register counted them — a tampered counter (tests) is printed tampered
            totals = self._running_totals(s, s["shift_number"], final=True)
            doc = {"kind": "close_shift", "dt": now.isoformat(), "shift": s["shift_number"],
                   "cashier": cashier, "receipts": s["receipts_in_shift"], "totals": totals.to_json()}
            if cashier_inn is not None:
                doc["cashier_inn"] = cashier_inn
            return self._append_document(s, doc)

    # -- the register's own counters --------------------------------------------------------
    def shift_totals(self, shift: int | None = None) -> ShiftTotals | None:
        """The register's counters of *shift* (default: the current or last one).

        The open shift's are running counters (added up from the journal, as the register adds
        every closed receipt up); a closed shift's come from its Z report. None for a shift this FN
        does not hold.
        """
        with self._locked() as s:
            number = s["shift_number"] if shift is None else shift
            if number == s["shift_number"] and s["shift_open"]:
                return self._running_totals(s, number)
            for doc in self._journal_documents():
                if doc["fn"] == s["fn_serial"] and doc["kind"] == "close_shift" and doc["shift"] == number:
                    if "totals" not in doc:
                        return None      # a Z report written before the emulator kept counters
                    return counters.from_json(doc["totals"], source=f"Z report FD {doc['fd']}")
            return None

    def _running_totals(self, s: dict[str, Any], shift: int, *, final: bool = False) -> ShiftTotals:
        b = counters.TotalsBuilder()
        for doc in self._journal_documents():
            if doc["fn"] == s["fn_serial"] and doc["shift"] == shift and doc["kind"] in ("receipt", "correction"):
                b.add(Operation(doc["operation"]).name.lower(), Decimal(doc["total"]),
                      [(p["type"], Decimal(p["amount"])) for p in doc.get("payments", ())])
        totals = b.build(shift, "Z report" if final else "the register's running counters", final=final)
        skew = s.get("counter_skew")
        return counters.skewed(totals, skew) if skew else totals

    def tamper_counter(self, operation: str, amount: Decimal | str, payment: str | None = None) -> None:
        """A test's fault: the register's own counter of *operation* drifts by *amount* (on
        *payment*), from now on and in the next Z report; the documents stay as they are."""
        if operation not in counters.OPERATIONS:
            raise ValueError(f"unknown operation {operation!r} (known: {', '.join(counters.OPERATIONS)})")
        with self._locked() as s:
            skew = s.setdefault("counter_skew", {})
            prev = skew.get(operation, {})
            skew[operation] = {"amount": str(money(Decimal(prev.get("amount", "0")) + money(amount))),
                               **({"payment": payment} if payment else {})}

    def x_report(self) -> None:
        """An X report prints but makes no fiscal document."""
        with self._locked() as s:
            self._check_paper(s)

    # -- receipts --------------------------------------------------------------------------
    def open_receipt(self, operation: Operation, correction: dict[str, Any] | None = None) -> None:
        """Start a receipt; requires an open, unexpired shift and no other open receipt."""
        with self._locked() as s:
            self._check_ready(s)
            if s["receipt"] is not None:
                raise DeviceStateError("a receipt is already open",
                                       condition=DeviceStateError.COND_RECEIPT_OPEN)
            s["receipt"] = OpenReceipt(int(operation), correction=correction).__dict__

    def add_item(self, item: Item, requisites: dict[str, Any] | None = None) -> None:
        """Register one item in the open receipt (paper may run out here: a model fault).

        *requisites*: item-level tags other than the item's own fields (1162, agent data, …),
        recorded with the item when given (a wire protocol binds them to the operation).
        """
        with self._locked() as s:
            r = self._open(s)
            self._check_paper(s)
            if self.faults.fire("paper_out_mid_receipt"):
                s["paper_out_until"] = (self._now(s) + dt.timedelta(seconds=PAPER_RELOAD_SECONDS)).isoformat()
                raise DeviceStateError("paper ran out during the receipt",
                                       condition=DeviceStateError.COND_PAPER_OUT)
            if len(r["items"]) >= MAX_ITEMS_PER_RECEIPT:
                raise RejectedError(f"more than {MAX_ITEMS_PER_RECEIPT} items", field="items")
            if money(item.price * item.quantity) != item.amount:
                raise RejectedError(f"item amount {item.amount} != price x quantity", field="items.amount")
            marking: dict[str, Any] = {}
            if item.marking_code is not None:
                marking = {"marking": fn_marking.line_record(item.marking_code,
                                                             fn_marking.bind(s, item.marking_code))}
                if item.fraction is not None:
                    marking["marking"]["1291"] = {"1293": item.fraction[0], "1294": item.fraction[1]}
            if item.industry:
                marking["1260"] = [[x.foiv, x.doc_date, x.doc_number, x.value] for x in item.industry]
            r["items"].append({
                "name": item.name, "price": str(item.price), "quantity": str(item.quantity),
                "amount": str(item.amount), "vat": item.vat.ffd_code, "method": int(item.payment_method),
                "subject": int(item.payment_subject), "unit": int(item.measure_unit),
                **({"requisites": requisites} if requisites else {}), **marking,
            })

    def add_requisite(self, tag: int, value: Any) -> None:
        """Attach a receipt-level requisite (1008, 1192, 1125, 1187, 1021, 1203, 1117, …)."""
        with self._locked() as s:
            r = self._open(s)
            if tag == 1192 and not (1 <= len(str(value)) <= 16):
                raise RejectedError("requisite 1192 must be 1..16 characters", field="tag")
            r["requisites"][str(tag)] = value

    def open_receipt_snapshot(self) -> dict[str, Any]:
        """A copy of the open receipt (items, requisites); DeviceStateError when none is open."""
        with self._locked() as s:
            return json.loads(json.dumps(self._open(s)))

    def update_correction(self, values: dict[str, Any]) -> None:
        """Fill the open correction receipt's 1173/1178/1179 (a wire protocol sends them after opening)."""
        with self._locked() as s:
            r = self._open(s)
            if r["correction"] is None:
                raise RejectedError("the open receipt is not a correction", field="correction")
            r["correction"].update(values)

    def close_receipt(self, payments: list[Payment], tax_system: TaxSystem, *,
                      change: Decimal | None = None) -> dict[str, Any]:
        """Close the receipt: the fiscal document is written here, atomically.

        *payments* must sum to the total; *change* (cash handed back, already deducted from the
        cash payment) is recorded when a wire protocol accepted a cash overpayment.
        """
        with self._locked() as s:
            r = self._open(s)
            self._check_ready(s)
            if not r["items"]:
                raise RejectedError("receipt has no items", field="items")
            total = money(sum((Decimal(i["amount"]) for i in r["items"]), Decimal(0)))
            paid = money(sum((p.amount for p in payments), Decimal(0)))
            if len(payments) > MAX_PAYMENTS_PER_RECEIPT or paid != total:
                raise RejectedError(f"payments {paid} do not match total {total}", field="payments")
            if self.faults.fire("fn_error"):
                raise DeviceStateError("FN error: storage did not accept the document",
                                       condition=DeviceStateError.COND_FN_ERROR)
            now = self._now(s)
            s["receipts_in_shift"] += 1
            s["receipt"] = None
            req = r["requisites"]
            extra: dict[str, Any] = {"change": str(money(change))} if change is not None else {}
            marked = [i["marking"] for i in r["items"] if "marking" in i]
            notification = fn_marking.receipt_closed(s, len(marked), online=self._online(s))
            if marked:
                # 2107: 1 when any line's check was not fully positive (PRIL2 T5)
                extra.update({"2107": int(any(m["2106"] != 0x0F for m in marked)),
                              "notification": notification})
            return self._append_document(s, {**extra,
                "kind": "correction" if r["correction"] else "receipt",
                "dt": now.isoformat(), "shift": s["shift_number"], "receipt_no": s["receipts_in_shift"],
                "operation": r["operation"], "tax_system": int(tax_system), "total": str(total),
                "tag": req.get("1192"), "items": r["items"],
                "payments": [{"type": p.type.value, "amount": str(p.amount)} for p in payments],
                "requisites": req, "correction": r["correction"],
            })

    def cancel_receipt(self) -> bool:
        """Cancel the open receipt (nothing fiscal happened); False when none was open."""
        with self._locked() as s:
            if s["receipt"] is None:
                return False
            s["receipt"] = None
            return True

    # -- marking (ФН-М): see fn_marking ------------------------------------------------------
    def _online(self, s: dict[str, Any]) -> bool:
        return s.get("ofd_unsent_from_fd") is None

    def check_marking(self, code: bytes, status: int, mode: int = 0) -> dict[str, Any]:
        """The FN's check of one code (offline part, then ОИСМ through the OFD); see fn_marking.check."""
        with self._locked() as s:
            self._check_ready(s)
            return fn_marking.check(s, code, status, mode, faults=self.faults, online=self._online(s),
                                    now=self._now(s))

    def decide_marking(self, accept: bool) -> int:
        """Accept or reject the code checked last; returns its 2106."""
        with self._locked() as s:
            return fn_marking.decide(s, accept)

    def set_marking_verdict(self, code: bytes, verdict: str) -> None:
        """What ОИСМ answers for *code* (valid / invalid / late / bad_answer / unrecognized)."""
        with self._locked() as s:
            fn_marking.set_verdict(s, code, verdict)

    def marking_accepted(self, code: bytes) -> bool:
        """Whether *code* is checked and accepted in the FN's table for the current receipt."""
        with self._locked() as s:
            try:
                fn_marking.bind(s, code)
            except RejectedError:
                return False
            return True

    def set_unsent_notifications(self, count: int) -> None:
        """Pretend *count* marking notifications wait for ОИСМ (tests of the blocked state)."""
        with self._locked() as s:
            fn_marking.counters(s)
            s["marking"]["unsent"] = count

    def marking_counters(self) -> dict[str, Any]:
        """Checked codes, pending decision, unsent notifications, blocked (FF70, checkImcWorkState)."""
        with self._locked() as s:
            return fn_marking.counters(s)

    # -- operator actions (tests and the ``emulator`` CLI) ------------------------------------
    def load_paper(self) -> None:
        """The cashier loads paper."""
        with self._locked() as s:
            s["paper_out_until"] = None

    def take_paper(self, seconds: float = 3600) -> None:
        """Paper runs out for *seconds* (until :meth:`load_paper`)."""
        with self._locked() as s:
            s["paper_out_until"] = (self._now(s) + dt.timedelta(seconds=seconds)).isoformat()

    def set_fn_valid_until(self, day: dt.date) -> None:
        """The FN's validity ends on *day* (tests of the expiry alert)."""
        with self._locked() as s:
            s["fn_valid_until"] = day.isoformat()

    def ofd_link(self, up: bool) -> None:
        """The register's link to the OFD goes down (documents pile up unsent) or comes back (all sent)."""
        with self._locked() as s:
            if up:
                s["ofd_unsent_from_fd"] = None
                fn_marking.link_up(s)
            elif s.get("ofd_unsent_from_fd") is None:
                s["ofd_unsent_from_fd"] = s["last_fd"] + 1

    def replace_fn(self) -> str:
        """Install a new fiscal storage: new serial, FD numbering restarts. Returns the serial."""
        with self._locked() as s:
            s["fn_generation"] += 1
            s.update(fn_serial=fn_serial_for(s["serial"], s["fn_generation"]), last_fd=0,
                     shift_open=False, receipt=None)
            return s["fn_serial"]

    # -- checks ----------------------------------------------------------------------------
    def _paper_ok(self, s: dict[str, Any], now: dt.datetime) -> bool:
        until = s.get("paper_out_until")
        return until is None or now >= dt.datetime.fromisoformat(until)

    def _check_paper(self, s: dict[str, Any]) -> None:
        if not self._paper_ok(s, self._now(s)):
            raise DeviceStateError("paper out", condition=DeviceStateError.COND_PAPER_OUT)

    def _check_ready(self, s: dict[str, Any]) -> None:
        self._check_paper(s)
        if not s["shift_open"]:
            raise DeviceStateError("shift is closed", condition=DeviceStateError.COND_SHIFT_CLOSED)
        opened = dt.datetime.fromisoformat(s["shift_opened_at"])
        if self._now(s) - opened > SHIFT_MAX_AGE:
            raise DeviceStateError("shift is over 24 hours", condition=DeviceStateError.COND_SHIFT_EXPIRED)

    @staticmethod
    def _open(s: dict[str, Any]) -> dict[str, Any]:
        if s["receipt"] is None:
            raise DeviceStateError("no receipt is open", condition=DeviceStateError.COND_OTHER)
        return s["receipt"]


def to_fiscal_document(doc: dict[str, Any]) -> FiscalDocument:
    """Convert a journal record to the driver-neutral :class:`FiscalDocument`."""
    return FiscalDocument(
        fd_number=doc["fd"], fiscal_sign=doc["fp"], fn_serial=doc["fn"],
        kind=DocumentKind(doc["kind"]), issued_at=dt.datetime.fromisoformat(doc["dt"]),
        shift_number=doc["shift"], receipt_number=doc.get("receipt_no"),
        operation=Operation(doc["operation"]) if doc.get("operation") else None,
        total=Decimal(doc["total"]) if doc.get("total") is not None else None, tag=doc.get("tag"),
    )
