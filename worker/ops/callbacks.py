"""Shop callbacks: tell the shop when a receipt is made (or needs attention), signed, retried, once.

When a receipt reaches ``done``, ``rejected`` or ``needs_review``, the shop's URL gets one POST:

    {"payment_id": 42, "tag": "S42", "stage": "single", "part": 1, "state": "done",
     "total": "1220.00", "fn": "…", "fd": 17, "fp": 3533869763, "shift": 4, "receipt_number": 3,
     "fiscal_at": "2026-11-30T14:05:00", "zone": "Europe/Moscow", "qr": "t=…&s=…", "reason": null}

with ``X-KKT-Signature: sha256=<HMAC-SHA256 of the body with the shared secret>`` and
``X-KKT-Delivery: <receipt id>-<state>`` (the shop can de-duplicate on it). A 2xx answer is delivery;
anything else is retried with a doubling backoff kept in the ledger, so a restart neither loses nor
repeats a callback. Money is a string (exact); a rejected payment carries the reason.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from typing import Any

import httpx

from worker.ledger.records import ReceiptRecord, utcnow
from worker.ledger.store import Ledger
from worker.ops.alerts import backoff

log = logging.getLogger(__name__)

CALLBACK_TIMEOUT_S = 10.0
SIGNATURE_HEADER = "X-KKT-Signature"


def payload(state: str, r: ReceiptRecord, zone: str) -> dict[str, Any]:
    """What the shop is told about receipt *r* reaching *state*."""
    return {
        "payment_id": r.source_id, "tag": r.tag, "stage": r.stage, "part": r.part, "state": state,
        "total": None if r.total is None else f"{r.total:.2f}", "fn": r.fn_serial, "fd": r.fd_number,
        "fp": r.fiscal_sign, "shift": r.shift_number, "receipt_number": r.receipt_number,
        "fiscal_at": r.fiscal_at.isoformat() if r.fiscal_at else None, "zone": zone, "qr": r.qr,
        "reason": None if state == "done" else r.last_error,
    }


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class ShopCallbacks:
    """Queues and delivers callbacks; call :meth:`run_once` now and then (the worker does, every few s)."""

    def __init__(self, ledger: Ledger, url: str, secret: str, *, zone: str,
                 timeout_s: float = CALLBACK_TIMEOUT_S) -> None:
        self.ledger = ledger
        self.url = url
        self.secret = secret
        self.zone = zone
        self.client = httpx.Client(timeout=timeout_s)

    def run_once(self, now: dt.datetime | None = None) -> int:
        """Queue new callbacks and deliver those due; returns callbacks delivered."""
        now = now or utcnow()
        self.ledger.enqueue_callbacks(now)
        delivered = 0
        for state, rec in self.ledger.callbacks_due(now):
            body = json.dumps(payload(state, rec, self.zone), ensure_ascii=False).encode()
            headers = {"Content-Type": "application/json; charset=utf-8", SIGNATURE_HEADER: sign(self.secret, body),
                       "X-KKT-Delivery": f"{rec.id}-{state}"}
            ctx = {"payment_id": rec.source_id, "receipt_tag": rec.tag}
            try:
                self.client.post(self.url, content=body, headers=headers).raise_for_status()
            except httpx.HTTPError as exc:
                rows = self.ledger.callback_rows(rec.id)
                tries = next((r["attempts"] for r in rows if r["state"] == state), 0)
                self.ledger.callback_failed(rec.id, state, f"{type(exc).__name__}: {exc}", now + backoff(tries, 5.0))
                log.warning("shop callback (%s) not delivered: %s", state, exc, extra=ctx)
                continue
            self.ledger.callback_delivered(rec.id, state, now)
            delivered += 1
        return delivered

    def close(self) -> None:
        self.client.close()
