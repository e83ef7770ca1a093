"""Reconcile a receipt left "sending" with the register's own documents. Never a blind resend.

Read the documents after the recorded ``fd_before`` and look for our tag (requisite 1192):

| register shows                                  | decision                        |
|-------------------------------------------------|---------------------------------|
| unreachable                                     | stay "sending", try again later |
| another FN serial than at the intent            | needs review                    |
| last FD < fd_before, or too many documents since | needs review                    |
| a document in the range cannot be read          | needs review                    |
| exactly one document with our tag, same total   | done, with that document        |
| one with our tag but another total or operation | needs review                    |
| none with our tag                               | queued: safe to send again      |
| two or more with our tag                        | needs review (duplicate!)       |

A driver whose API keeps our idempotency key (``Driver.lookup_by_key``: ATOL Web Requests' uuid, a
cloud service's ``external_id``) is asked by key instead: found → done (same checks on total and
operation), not found → safe to send again (the key makes a racing first request answer with its
own result, never a second document), still processing → stays "sending".
"""
from __future__ import annotations

import logging
from typing import Callable

from kkt_drivers.base import Driver
from kkt_drivers.errors import KktError
from kkt_drivers.receipt import FiscalDocument
from worker.defaults import RECONCILE_MAX_DOCUMENTS
from worker.fiscal.retry import Reaction, decide, describe
from worker.ledger.states import State
from worker.ledger.store import Fence, Ledger, ReceiptRecord, utcnow
from worker.settings import RetrySettings

log = logging.getLogger(__name__)


class RegisterUnreachable(Exception):
    """Reconciliation could not talk to the register; the receipt stays "sending"."""


class Reconciler:
    """Resolves "sending" receipts of one lane against its register."""

    def __init__(self, lane: str, driver: Driver, ledger: Ledger, policy: RetrySettings,
                 max_documents: int = RECONCILE_MAX_DOCUMENTS,
                 fence: Callable[[], Fence | None] = lambda: None) -> None:
        self.lane = lane
        self.fence = fence
        self.driver = driver
        self.ledger = ledger
        self.policy = policy
        self.max_documents = max_documents

    def reconcile(self, rec: ReceiptRecord) -> State:
        """Decide *rec*'s state from the register; RegisterUnreachable if the register can't answer."""
        ctx = {"payment_id": rec.source_id, "receipt_tag": rec.tag, "register": self.lane}
        try:
            status = self.driver.status()
            if status.receipt_open:
                # our close never happened (or the document would be closed): an open receipt is not fiscal
                self.driver.cancel_receipt()
                status = self.driver.status()
        except KktError as exc:
            raise RegisterUnreachable(describe(exc)) from exc

        attempt_id = self.ledger.open_attempt(rec.id, register=self.lane, action="reconcile", fd_before=rec.fd_before,
                                              fence=self.fence())
        if self.driver.lookup_by_key:
            return self._reconcile_by_key(rec, attempt_id, ctx, status.last_fd_number)
        fd_before = rec.fd_before if rec.fd_before is not None else 0
        last = status.last_fd_number

        def review(reason: str) -> State:
            log.error("needs review: %s", reason, extra=ctx)
            self.ledger.record_final(rec.id, State.NEEDS_REVIEW, attempt_id=attempt_id, error=reason,
                                     error_class="review", fence=self.fence())
            return State.NEEDS_REVIEW

        if rec.fn_serial and status.fn_serial != rec.fn_serial:
            return review(f"FN changed from {rec.fn_serial} to {status.fn_serial} since the intent")
        if last < fd_before:
            return review(f"register's last FD {last} is below the recorded fd_before {fd_before}")
        if last - fd_before > self.max_documents:
            return review(f"{last - fd_before} documents since the intent (more than {self.max_documents}); "
                          "is the register shared?")
        # the receipt's own 1192 (our tag; for a reverse-correction pair, the corrected receipt's ФПД,
        # shared by both documents, which the lane never has in flight at once) identifies it
        expected = rec.receipt()
        matches: list[FiscalDocument] = []
        for number in range(fd_before + 1, last + 1):
            try:
                doc = self.driver.document(number)
            except KktError as exc:
                raise RegisterUnreachable(describe(exc)) from exc
            if doc is None:
                return review(f"document {number} cannot be read back from the register")
            if doc.tag == expected.tag:
                if doc.operation is not None and doc.operation != expected.operation:
                    return review(f"document {number} carries our tag {expected.tag} but operation "
                                  f"{doc.operation}, expected {expected.operation}")
                matches.append(doc)

        return self._settle(rec, attempt_id, matches, ctx)

    def _reconcile_by_key(self, rec: ReceiptRecord, attempt_id: int, ctx: dict, last_fd: int) -> State:
        expected = rec.receipt()
        try:
            doc = self.driver.find_by_key(expected)
        except KktError as exc:  # still processing, or the service cannot be asked: stay "sending"
            raise RegisterUnreachable(describe(exc)) from exc
        if doc is not None and doc.operation is not None and doc.operation != expected.operation:
            return self._review(rec, attempt_id, ctx, f"the register's answer for key {expected.tag} is operation "
                                                      f"{doc.operation}, expected {expected.operation}")
        if doc is None and self.driver.reads_documents and rec.fd_before is not None and last_fd > rec.fd_before:
            # The service does not know our key, but documents were made since the intent. A service
            # that forgets keys (KKMServer keeps its last 100 commands) must not make us print twice:
            # look at those documents, and where one cannot be identified, a person decides.
            found: list[FiscalDocument] = []
            for number in range(rec.fd_before + 1, min(last_fd, rec.fd_before + self.max_documents) + 1):
                try:
                    other = self.driver.document(number)
                except KktError as exc:
                    raise RegisterUnreachable(describe(exc)) from exc
                if other is None or other.tag is None:
                    return self._review(rec, attempt_id, ctx, f"the service does not know key {expected.tag} and "
                                        f"document {number}, made since the intent, cannot be identified; "
                                        "check the register's journal before resending")
                if other.tag == expected.tag:
                    found.append(other)
            return self._settle(rec, attempt_id, found, ctx)
        return self._settle(rec, attempt_id, [doc] if doc is not None else [], ctx)

    def _review(self, rec: ReceiptRecord, attempt_id: int, ctx: dict, reason: str) -> State:
        log.error("needs review: %s", reason, extra=ctx)
        self.ledger.record_final(rec.id, State.NEEDS_REVIEW, attempt_id=attempt_id, error=reason,
                                 error_class="review", fence=self.fence())
        return State.NEEDS_REVIEW

    def _settle(self, rec: ReceiptRecord, attempt_id: int, matches: list[FiscalDocument], ctx: dict) -> State:
        """Done / queued again / needs review from the documents found carrying *rec*'s tag."""
        expected = rec.receipt()

        def review(reason: str) -> State:
            log.error("needs review: %s", reason, extra=ctx)
            self.ledger.record_final(rec.id, State.NEEDS_REVIEW, attempt_id=attempt_id, error=reason,
                                     error_class="review", fence=self.fence())
            return State.NEEDS_REVIEW

        if len(matches) > 1:
            numbers = ", ".join(str(d.fd_number) for d in matches)
            return review(f"DUPLICATE: documents {numbers} all carry tag {expected.tag}; a correction is needed")
        if len(matches) == 1:
            doc = matches[0]
            if doc.total != rec.total:
                return review(f"document {doc.fd_number} has our tag but total {doc.total}, expected {rec.total}")
            self.ledger.record_done(rec.id, doc, attempt_id=attempt_id, outcome="reconciled_done",
                                   fence=self.fence())
            log.info("reconciled: the register has it as FD %d", doc.fd_number, extra=ctx)
            return State.DONE
        decision = decide(Reaction.NOT_FISCALIZED, rec.attempts, self.policy, now=utcnow())
        new = self.ledger.record_retry(rec.id, attempt_id=attempt_id, new=decision.state,
                                       attempts=decision.attempts, next_attempt_at=decision.when,
                                       error="reconciled: not fiscalized", error_class="unknown",
                                       outcome="reconciled_retry", fence=self.fence())
        log.info("reconciled: no document carries our tag; %s", new.value, extra=ctx)
        return new
