"""Alerts against a local webhook receiver: sent once, retried after failures, resolved once."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from worker.ledger.store import Ledger, utcnow
from worker.ops.alerts import Alerter, WebhookSink
from worker.ops.health import Thresholds

from .test_ledger import entry


class Receiver:
    """A webhook endpoint that fails the first ``fail_first`` requests with 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_left = fail_first
        self.received: list[dict] = []
        self.signatures: list[str | None] = []
        receiver = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.fail_left > 0:
                    receiver.fail_left -= 1
                    self.send_response(500)
                else:
                    receiver.received.append(json.loads(body))
                    receiver.signatures.append(self.headers.get("X-KKT-Signature"))
                    receiver.bodies.append(body)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        self.bodies: list[bytes] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=4)
    yield r
    r.httpd.shutdown()


def test_a_condition_is_alerted_once_retried_and_resolved_once(ledger: Ledger, receiver: Receiver) -> None:
    ledger.lane_heartbeat("kkt1", state="running")
    ledger.add_payments([entry(1)])
    # the test moves time forward by minutes: keep the worker "up" meanwhile
    alerter = Alerter(ledger, [WebhookSink(receiver.url, secret="k")], Thresholds(heartbeat_stale_s=3600),
                      wait_s=0.01)
    now = utcnow()
    assert alerter.run_once(now) == 0                      # healthy: nothing to say
    rec = ledger.list_receipts()[0]
    with ledger.write() as conn:                           # a receipt runs out of attempts
        from worker.ledger.schema import receipts
        conn.execute(receipts.update().where(receipts.c.id == rec.id).values(state="failed"))
    assert alerter.run_once(now) == 0                      # 3 tries in this run, all 500
    row = next(a for a in ledger.alerts() if a["key"] == "receipts_failed")
    assert row["state"] == "firing" and row["delivered"] == 0 and row["attempts"] == 1 and "500" in row["last_error"]
    assert alerter.run_once(now) == 0                      # the backoff is not over: not tried
    later = now + dt.timedelta(minutes=2)
    assert alerter.run_once(later) == 1                    # 4th try fails, 5th delivers
    assert alerter.run_once(later) == 0                    # never twice for one state
    assert [m["status"] for m in receiver.received] == ["firing"]
    assert receiver.received[0]["key"] == "receipts_failed" and "1 receipt(s) ran out" in receiver.received[0]["message"]
    expected = "sha256=" + hmac.new(b"k", receiver.bodies[0], hashlib.sha256).hexdigest()
    assert receiver.signatures[0] == expected

    with ledger.write() as conn:                           # an admin resent it and it was printed
        conn.execute(receipts.update().where(receipts.c.id == rec.id).values(state="done"))
    ledger.lane_heartbeat("kkt1", state="running")
    assert alerter.run_once(later) == 1
    assert alerter.run_once(later + dt.timedelta(minutes=5)) == 0
    assert [m["status"] for m in receiver.received] == ["firing", "resolved"]


def test_alerts_survive_a_restart_without_resending(ledger: Ledger) -> None:
    r = Receiver()
    try:
        ledger.lane_heartbeat("kkt1", state="running")
        with ledger.write() as conn:
            from worker.ledger.schema import lanes
            conn.execute(lanes.update().values(heartbeat_at=utcnow() - dt.timedelta(hours=1)))
        assert Alerter(ledger, [WebhookSink(r.url)]).run_once() == 1
        assert Alerter(ledger, [WebhookSink(r.url)]).run_once() == 0   # a new process: same ledger state
        assert [m["key"] for m in r.received] == ["worker_down"]
    finally:
        r.httpd.shutdown()


def test_prune_erases_contacts_of_settled_payments_and_keeps_the_requisites(ledger: Ledger) -> None:
    from kkt_drivers.receipt import DocumentKind, FiscalDocument

    ledger.add_payments([entry(1), entry(2)])
    first = ledger.list_receipts()[0]
    attempt = ledger.record_intent(first.id, register="kkt1", fn_serial="FN1", fd_before=3)
    ledger.record_done(first.id, FiscalDocument(4, 123456, "FN1", DocumentKind.RECEIPT, utcnow(), 1,
                                                receipt_number=1, tag=first.tag),
                       attempt_id=attempt)
    assert ledger.anonymise_contacts(utcnow() - dt.timedelta(days=1)) == 0     # too recent
    assert ledger.anonymise_contacts(utcnow() + dt.timedelta(seconds=1)) == 1  # only the done one
    assert ledger.payment_snapshot(1).customer_email is None
    assert ledger.payment_snapshot(2).customer_email == "a@b.ru"               # still queued: kept
    done = ledger.get(first.id)
    assert done.receipt().customer_contact == "(anonymised)" and done.fd_number == 4 and done.fiscal_sign == 123456


def test_a_webhook_that_got_the_alert_is_not_posted_again_while_smtp_is_down(ledger: Ledger) -> None:
    """Given a webhook that answers and an SMTP server that is down, when the alerter retries (same run,
    later runs, a restarted process) until SMTP is back, then the webhook got exactly one POST per
    state and the mail went out once per state."""
    from worker.ops.alerts import SmtpSink

    from .smtp_receiver import SmtpReceiver

    hook, smtp = Receiver(), SmtpReceiver()            # smtp not started: connection refused
    try:
        def alerter() -> Alerter:
            return Alerter(ledger, [WebhookSink(hook.url), SmtpSink("127.0.0.1", smtp.port, "kkt@shop.example",
                                                                    ["ops@shop.example"], timeout_s=5)],
                           Thresholds(heartbeat_stale_s=60), wait_s=0.01)

        ledger.lane_heartbeat("kkt1", state="running")
        with ledger.write() as conn:
            from worker.ledger.schema import lanes
            conn.execute(lanes.update().values(heartbeat_at=utcnow() - dt.timedelta(hours=1)))
        now = utcnow()
        assert alerter().run_once(now) == 0                 # webhook OK, SMTP refused 3 times
        row = next(a for a in ledger.alerts() if a["key"] == "worker_down")
        assert row["delivered"] == 0 and row["delivered_sinks"] == "webhook" and row["attempts"] == 1
        assert row["last_error"].startswith("smtp: ConnectionRefusedError")
        assert alerter().run_once(now + dt.timedelta(minutes=2)) == 0      # a later run, SMTP still down
        assert alerter().run_once(now + dt.timedelta(minutes=10)) == 0     # a restarted process, still down
        assert next(a for a in ledger.alerts() if a["key"] == "worker_down")["attempts"] == 3
        assert [m["status"] for m in hook.received] == ["firing"]          # one POST, not one per retry

        smtp.start()
        assert alerter().run_once(now + dt.timedelta(minutes=30)) == 1     # SMTP back: only the mail goes
        assert alerter().run_once(now + dt.timedelta(minutes=40)) == 0     # delivered everywhere: nothing more
        assert [m["status"] for m in hook.received] == ["firing"]
        assert len(smtp.messages) == 1 and json.loads(smtp.messages[0].get_content())["key"] == "worker_down"
        row = next(a for a in ledger.alerts() if a["key"] == "worker_down")
        assert row["delivered"] == 1 and row["delivered_sinks"] == "smtp,webhook"

        ledger.lane_heartbeat("kkt1", state="running")      # the worker is back: resolved, once to each sink
        assert alerter().run_once(utcnow()) == 1
        assert alerter().run_once(utcnow()) == 0
        assert [m["status"] for m in hook.received] == ["firing", "resolved"]
        assert [json.loads(m.get_content())["status"] for m in smtp.messages] == ["firing", "resolved"]
    finally:
        hook.httpd.shutdown()
        smtp.stop()
