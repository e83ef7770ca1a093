"""The register is the truth: watermarks, examined documents, adoption of our own documents.

Per register and FN the ledger keeps the highest FD number it has accounted for (a document it made
or examined). Documents after the watermark are read back and recorded here:

* ``ours``      — the document the normal path recorded (the receipt is done with this FD);
* ``adopted``   — a document with one of our tags (1192 + operation + total) whose receipt the
  ledger did not have as done (queued, failed, rejected, … — a restored or rebuilt ledger, a
  takeover): the receipt becomes done with its requisites and is never sent again;
* ``unclaimed`` — a tag of ours whose payment is not in the ledger yet (ledger lost): adopted the
  moment ingest plans a receipt with that tag (:meth:`DocumentWrites.claim_for`);
* ``service``   — not a receipt: shift openings, Z reports, FN reports (ours or anyone's): examined once;
* ``foreign``   — a receipt without one of our tags (other software printing on the same register):
  examined once;
* ``conflict``  — our tag with another total or operation, or a second document with a tag already
  done: never adopted, shown in ``status`` and logged at ERROR (a correction may be needed).
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Sequence

from sqlalchemy import Connection, bindparam, func, insert, select, update

from kkt_drivers.receipt import DocumentKind, FiscalDocument
from worker.ledger import fastpath
from worker.ledger.leases import Fence, LeaseWrites
from worker.ledger.records import utcnow
from worker.ledger.schema import attempts, register_documents, register_watermarks, receipts
from worker.ledger.states import State

log = logging.getLogger(__name__)

_RECEIPT_KINDS = (DocumentKind.RECEIPT, DocumentKind.CORRECTION)


@dataclass(frozen=True)
class Examined:
    """What one examined document turned out to be."""

    fd_number: int
    disposition: str
    tag: str | None
    receipt_id: int | None = None
    note: str | None = None


class DocumentWrites(LeaseWrites):
    """Watermarks, examined documents and adoption (every write fenced by the register's lease)."""

    def watermark(self, register: str, fn_serial: str) -> int | None:
        """The highest FD the ledger accounted for on (*register*, *fn_serial*); None if never scanned."""
        with self.reading() as tx:
            row = fastpath.run(tx, _WATERMARK, {"b_register": register, "b_fn": fn_serial}).first()
        return row[0] if row is not None else None

    def own_last_fd(self, fn_serial: str) -> int:
        """The highest FD of a done receipt on FN *fn_serial* (0 if none): the start of a first scan."""
        with self.reading() as tx:
            return int(fastpath.run(tx, _OWN_LAST_FD, {"b_fn": fn_serial}).rows[0][0] or 0)

    def set_watermark(self, register: str, fn_serial: str, last_fd: int, *, fence: Fence | None) -> None:
        """Move the watermark to *last_fd* (an admin's ``adopt --from-fd`` may move it down or up).
        Batched with the lanes' writes in the worker: 200 lanes starting at once share commits."""
        def put(conn: Connection) -> None:
            self.check_fence(conn, fence)
            self._put_watermark(conn, register, fn_serial, last_fd, only_up=False)
        self.batched(put)

    def record_examined(self, register: str, fn_serial: str, docs: Sequence[FiscalDocument], upto: int, *,
                        fence: Fence | None) -> list[Examined]:
        """Record *docs* (read back after the watermark), adopt ours, move the watermark to *upto*.

        One transaction (in the worker, shared with the other lanes' writes), fenced: a worker whose lease
        was taken over records nothing.
        """
        now = utcnow()

        def examine(conn: Connection) -> list[Examined]:
            self.check_fence(conn, fence)
            out: list[Examined] = []
            known: set[int] = set()
            if docs:
                # the documents already examined among these: one range read (prebuilt; an IN list is not)
                numbers = [d.fd_number for d in docs]
                known = {r[0] for r in fastpath.run(conn, _EXAMINED_BETWEEN, {
                    "b_fn": fn_serial, "b_lo": min(numbers), "b_hi": max(numbers)}).rows}
            for doc in docs:
                if doc.fd_number in known:
                    continue
                ex = self._examine(conn, register, doc, now)
                fastpath.run(conn, _EXAMINED_INSERT, {
                    "b_fn": fn_serial, "b_fd": doc.fd_number, "b_register": register, "b_kind": doc.kind.value[:16],
                    "b_tag": doc.tag, "b_operation": int(doc.operation) if doc.operation is not None else None,
                    "b_total": doc.total, "b_fiscal_sign": doc.fiscal_sign, "b_shift": doc.shift_number,
                    "b_receipt_no": doc.receipt_number, "b_issued_at": doc.issued_at,
                    "b_disposition": ex.disposition, "b_receipt_id": ex.receipt_id, "b_now": now})
                out.append(ex)
            self._put_watermark(conn, register, fn_serial, upto, only_up=True)
            return out

        return self.batched(examine)

    def _examine(self, conn: Connection, register: str, doc: FiscalDocument, now: dt.datetime) -> Examined:
        if doc.kind not in _RECEIPT_KINDS:
            return Examined(doc.fd_number, "service", doc.tag)
        if not doc.tag:
            return Examined(doc.fd_number, "foreign", doc.tag)
        row = self._receipt_for_tag(conn, doc)
        if row is None:
            return Examined(doc.fd_number, "unclaimed", doc.tag)
        state = State(row.state)
        if state is State.DONE:
            if row.fd_number == doc.fd_number and row.fn_serial == doc.fn_serial:
                return Examined(doc.fd_number, "ours", doc.tag, row.id)
            note = (f"DUPLICATE: FD {doc.fd_number} carries tag {doc.tag} of receipt {row.tag}, "
                    f"already done as FD {row.fd_number}; a correction is needed")
            log.error(note, extra={"register": register, "receipt_tag": row.tag})
            return Examined(doc.fd_number, "conflict", doc.tag, row.id, note)
        if doc.total != row.total or (doc.operation is not None and row.operation is not None
                                      and int(doc.operation) != row.operation):
            note = (f"FD {doc.fd_number} carries tag {doc.tag} but operation {doc.operation} total {doc.total}; "
                    f"receipt {row.tag} expects operation {row.operation} total {row.total}")
            log.error("needs review: %s", note, extra={"register": register, "receipt_tag": row.tag})
            if state is not State.NEEDS_REVIEW:
                self._cas(conn, row.id, state, State.NEEDS_REVIEW, error_class="review", last_error=note)
            return Examined(doc.fd_number, "conflict", doc.tag, row.id, note)
        self._adopt(conn, row.id, state, doc, register, now)
        log.warning("adopted FD %d as receipt %s (it was %s in the ledger)", doc.fd_number, row.tag, state.value,
                    extra={"register": register, "receipt_tag": row.tag})
        return Examined(doc.fd_number, "adopted", doc.tag, row.id, f"was {state.value}")

    @staticmethod
    def _receipt_for_tag(conn: Connection, doc: FiscalDocument):  # type: ignore[no-untyped-def]
        cols = (receipts.c.id, receipts.c.tag, receipts.c.state, receipts.c.total, receipts.c.operation,
                receipts.c.fd_number, receipts.c.fn_serial)
        row = conn.execute(select(*cols).where(receipts.c.tag == doc.tag)).first()
        if row is None and doc.tag and doc.tag.isdigit():
            # a reverse/correct correction pair carries the corrected receipt's ФПД in 1192: the operation
            # tells the two documents apart
            row = conn.execute(select(*cols).where(
                receipts.c.stage == "correction", receipts.c.corrects_fiscal_sign == int(doc.tag),
                receipts.c.operation == (int(doc.operation) if doc.operation is not None else None))).first()
        return row

    def _adopt(self, conn: Connection, receipt_id: int, state: State, doc: FiscalDocument, register: str,
               now: dt.datetime) -> None:
        self._cas(conn, receipt_id, state, State.DONE, register=register, fd_number=doc.fd_number,
                  fiscal_sign=doc.fiscal_sign, fn_serial=doc.fn_serial, shift_number=doc.shift_number,
                  receipt_number=doc.receipt_number, fiscal_at=doc.issued_at, qr=doc.qr, error_class=None,
                  last_error=f"adopted from the register (was {state.value})")
        conn.execute(insert(attempts).values(receipt_id=receipt_id, register=register, action="adopt",
                                             started_at=now, finished_at=now, outcome="adopted",
                                             fd_number=doc.fd_number))

    def claim_for(self, conn: Connection, receipt_id: int, tag: str, now: dt.datetime) -> bool:
        """Inside ingest's transaction: adopt a just-planned receipt whose tag is already on a register."""
        doc = conn.execute(select(register_documents).where(
            register_documents.c.tag == tag, register_documents.c.disposition == "unclaimed")
            .order_by(register_documents.c.fd_number)).first()
        if doc is None:
            return False
        row = conn.execute(select(receipts.c.state, receipts.c.total, receipts.c.operation)
                           .where(receipts.c.id == receipt_id)).one()
        fdoc = FiscalDocument(fd_number=doc.fd_number, fiscal_sign=doc.fiscal_sign, fn_serial=doc.fn_serial,
                              kind=DocumentKind(doc.kind), issued_at=doc.issued_at, shift_number=doc.shift_number,
                              receipt_number=doc.receipt_number, operation=doc.operation, total=doc.total, tag=tag)
        if row.total != doc.total or (row.operation is not None and doc.operation is not None
                                      and row.operation != doc.operation):
            note = f"FD {doc.fd_number} on {doc.register} carries tag {tag} with total {doc.total}; expected {row.total}"
            log.error("needs review: %s", note, extra={"receipt_tag": tag})
            if State(row.state) is State.QUEUED:
                self._cas(conn, receipt_id, State.QUEUED, State.NEEDS_REVIEW, error_class="review", last_error=note)
            disposition = "conflict"
        else:
            self._adopt(conn, receipt_id, State(row.state), fdoc, doc.register, now)
            log.warning("receipt %s adopted at ingest: the register already has it as FD %d", tag, doc.fd_number,
                        extra={"receipt_tag": tag, "register": doc.register})
            disposition = "adopted"
        conn.execute(update(register_documents).where(register_documents.c.fn_serial == doc.fn_serial,
                                                      register_documents.c.fd_number == doc.fd_number)
                     .values(disposition=disposition, receipt_id=receipt_id))
        return True

    def document_counts(self) -> list[dict]:
        """Examined documents by register and disposition, with the watermarks (for ``status``)."""
        with self.read() as conn:
            counts = [dict(r._mapping) for r in conn.execute(
                select(register_documents.c.register, register_documents.c.disposition,
                       func.count().label("n")).group_by(register_documents.c.register,
                                                         register_documents.c.disposition))]
            marks = [dict(r._mapping) for r in conn.execute(select(register_watermarks))]
        return [{"watermarks": marks, "documents": counts}]

    @staticmethod
    def _put_watermark(conn: Connection, register: str, fn_serial: str, last_fd: int, *, only_up: bool) -> None:
        params = {"b_register": register, "b_fn": fn_serial, "b_fd": last_fd, "b_now": utcnow()}
        row = fastpath.run(conn, _WATERMARK, params).first()
        if row is None:
            fastpath.run(conn, _WATERMARK_INSERT, params)
        elif not only_up or last_fd > row[0]:
            fastpath.run(conn, _WATERMARK_SET, params)


# a lane's start-up statements (200 lanes start at once, issue 10): built once, run through fastpath
_WATERMARK = select(register_watermarks.c.last_fd).where(register_watermarks.c.register == bindparam("b_register"),
                                                         register_watermarks.c.fn_serial == bindparam("b_fn"))
_WATERMARK_INSERT = insert(register_watermarks).values(register=bindparam("b_register"), fn_serial=bindparam("b_fn"),
                                                       last_fd=bindparam("b_fd"), updated_at=bindparam("b_now"))
_WATERMARK_SET = (update(register_watermarks)
                  .where(register_watermarks.c.register == bindparam("b_register"),
                         register_watermarks.c.fn_serial == bindparam("b_fn"))
                  .values(last_fd=bindparam("b_fd"), updated_at=bindparam("b_now")))
_OWN_LAST_FD = select(func.max(receipts.c.fd_number)).where(receipts.c.fn_serial == bindparam("b_fn"),
                                                            receipts.c.state == State.DONE.value)
_EXAMINED_BETWEEN = select(register_documents.c.fd_number).where(
    register_documents.c.fn_serial == bindparam("b_fn"), register_documents.c.fd_number >= bindparam("b_lo"),
    register_documents.c.fd_number <= bindparam("b_hi"))
_EXAMINED_INSERT = insert(register_documents).values(
    fn_serial=bindparam("b_fn"), fd_number=bindparam("b_fd"), register=bindparam("b_register"),
    kind=bindparam("b_kind"), tag=bindparam("b_tag"), operation=bindparam("b_operation"), total=bindparam("b_total"),
    fiscal_sign=bindparam("b_fiscal_sign"), shift_number=bindparam("b_shift"), receipt_number=bindparam("b_receipt_no"),
    issued_at=bindparam("b_issued_at"), disposition=bindparam("b_disposition"), receipt_id=bindparam("b_receipt_id"),
    examined_at=bindparam("b_now"))
