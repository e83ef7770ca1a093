"""Shop callbacks against a local receiver: signature checked, retried after a failure, once per state."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

from kkt_drivers.receipt import DocumentKind, FiscalDocument
from worker.ledger.states import State
from worker.ledger.store import Ledger, utcnow
from worker.ops.callbacks import ShopCallbacks

from .test_alerts import Receiver
from .test_ledger import entry


def test_done_and_rejected_are_called_back_once_signed_and_retried(ledger: Ledger) -> None:
    receiver = Receiver(fail_first=1)
    try:
        ledger.add_payments([entry(1), entry(2), entry(3)])
        r1, r2, _ = ledger.list_receipts()
        attempt = ledger.record_intent(r1.id, register="kkt1", fn_serial="FN1", fd_before=3)
        ledger.record_done(r1.id, FiscalDocument(4, 987654, "FN1", DocumentKind.RECEIPT, dt.datetime(2026, 11, 30, 12),
                                                 2, receipt_number=1, total=r1.total, tag=r1.tag),
                           attempt_id=attempt)
        attempt = ledger.record_intent(r2.id, register="kkt1", fn_serial="FN1", fd_before=4)
        ledger.record_final(r2.id, State.REJECTED, attempt_id=attempt, error="0x4D: overpayment", error_class="rejected")
        cb = ShopCallbacks(ledger, receiver.url, "shop-secret", zone="Europe/Moscow")
        now = utcnow()
        assert cb.run_once(now) == 1                 # the first POST gets 500; the second callback goes
        assert cb.run_once(now) == 0                 # the failed one waits for its backoff
        assert cb.run_once(now + dt.timedelta(minutes=1)) == 1
        assert cb.run_once(now + dt.timedelta(hours=1)) == 0     # never twice for one state
        got = {(m["payment_id"], m["state"]): m for m in receiver.received}
        assert set(got) == {(1, "done"), (2, "rejected")}
        done = got[(1, "done")]
        assert (done["fd"], done["fp"], done["fn"], done["total"]) == (4, 987654, "FN1", "150.50")
        assert done["qr"].startswith("t=20261130T1200&s=150.50&fn=FN1&i=4&fp=987654") and done["reason"] is None
        assert got[(2, "rejected")]["reason"] == "0x4D: overpayment"
        for body, signature in zip(receiver.bodies, receiver.signatures):
            assert signature == "sha256=" + hmac.new(b"shop-secret", body, hashlib.sha256).hexdigest()
            json.loads(body)
        rows = ledger.callback_rows(r1.id) + ledger.callback_rows(r2.id)
        assert all(r["delivered_at"] is not None for r in rows)
        cb.close()
    finally:
        receiver.httpd.shutdown()
