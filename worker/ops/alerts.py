"""Alerts: one message when a condition starts, one when it ends, retried until delivered.

The conditions are :func:`worker.ops.health.evaluate`'s problems. :meth:`Alerter.run_once` syncs
them into the ledger's ``alerts`` table (new → firing, gone → resolved) and delivers every message
not yet delivered to every sink. Delivery is recorded per sink (``alerts.delivered_sinks``): a
failed sink is retried a few times at once (tenacity) and then again on later runs with a capped
backoff kept in the ledger, and only the sinks that failed are tried again, so a restart never
re-sends what went out and never forgets what did not.

Sinks: a webhook (POST JSON, optionally signed with HMAC-SHA256 in ``X-KKT-Signature``) and SMTP.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol, Sequence

import httpx
from tenacity import Retrying, stop_after_attempt, wait_exponential

from worker.ledger.ops_writes import FIRING, sink_names
from worker.ledger.records import utcnow
from worker.ledger.store import Ledger
from worker.ops.health import Thresholds, evaluate
from worker.ops.snapshot import take_snapshot

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_S = 10.0
SMTP_TIMEOUT_S = 20.0
#: in-process tries per run (tenacity), then the ledger's backoff takes over
TRIES_PER_RUN = 3
RETRY_BASE_S = 30.0
RETRY_CAP_S = 3600.0


@dataclass(frozen=True)
class AlertMessage:
    """What a sink sends."""

    key: str
    state: str          # firing | resolved
    severity: str
    message: str
    started_at: dt.datetime
    resolved_at: dt.datetime | None

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "status": self.state, "severity": self.severity, "message": self.message,
                "started_at": self.started_at.isoformat() + "Z",
                "resolved_at": self.resolved_at.isoformat() + "Z" if self.resolved_at else None}

    @property
    def subject(self) -> str:
        word = "RESOLVED" if self.state != FIRING else self.severity.upper()
        return f"[kkt-worker {word}] {self.message}"


class Sink(Protocol):
    #: unique among the configured sinks: the ledger records delivery under this name
    name: str

    def send(self, alert: AlertMessage) -> None:
        """Deliver or raise."""


class WebhookSink:
    """POST the alert as JSON; a 2xx answer is delivery."""

    name = "webhook"

    def __init__(self, url: str, *, secret: str | None = None, timeout_s: float = WEBHOOK_TIMEOUT_S) -> None:
        self.url = url
        self.secret = secret
        self.timeout_s = timeout_s

    def send(self, alert: AlertMessage) -> None:
        body = json.dumps(alert.as_json(), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self.secret:
            headers["X-KKT-Signature"] = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        resp = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout_s)
        resp.raise_for_status()


class SmtpSink:
    """A plain e-mail per alert (STARTTLS when the server offers it)."""

    name = "smtp"

    def __init__(self, host: str, port: int, sender: str, recipients: Sequence[str], *,
                 user: str | None = None, password: str | None = None, timeout_s: float = SMTP_TIMEOUT_S) -> None:
        self.host, self.port, self.sender, self.recipients = host, port, sender, list(recipients)
        self.user, self.password, self.timeout_s = user, password, timeout_s

    def send(self, alert: AlertMessage) -> None:
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = alert.subject, self.sender, ", ".join(self.recipients)
        msg.set_content(json.dumps(alert.as_json(), ensure_ascii=False, indent=2))
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls()
                smtp.ehlo()
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(msg)


def backoff(attempts: int, base_s: float = RETRY_BASE_S, cap_s: float = RETRY_CAP_S) -> dt.timedelta:
    """Wait before the next run's try after *attempts* failed runs: doubling, capped."""
    return dt.timedelta(seconds=min(cap_s, base_s * 2 ** max(attempts, 0)))


class Alerter:
    """Evaluates the conditions and delivers what changed."""

    def __init__(self, ledger: Ledger, sinks: Sequence[Sink], thresholds: Thresholds = Thresholds(), *,
                 tries_per_run: int = TRIES_PER_RUN, wait_s: float = 1.0) -> None:
        self.ledger = ledger
        self.sinks = list(sinks)
        self.thresholds = thresholds
        self.tries_per_run = tries_per_run
        self.wait_s = wait_s

    def run_once(self, now: dt.datetime | None = None) -> int:
        """Sync conditions into the ledger and deliver pending messages; returns messages delivered."""
        now = now or utcnow()
        problems = evaluate(take_snapshot(self.ledger, now=now, heartbeat_stale_s=self.thresholds.heartbeat_stale_s),
                            self.thresholds)
        self.ledger.alert_sync({p.key: (p.severity, p.message) for p in problems}, now)
        if not self.sinks:
            return 0
        sent = 0
        for row in self.ledger.alerts_to_deliver(now):
            alert = AlertMessage(row["key"], row["state"], row["severity"], row["message"], row["started_at"],
                                 row["resolved_at"])
            if self._deliver(alert, sink_names(row["delivered_sinks"]), row["attempts"], now):
                sent += 1
        return sent

    def _deliver(self, alert: AlertMessage, already: set[str], attempts: int, now: dt.datetime) -> bool:
        """Send *alert* to every sink that does not have it yet; True once every sink has it.

        Each sink's delivery is recorded as soon as it succeeds, so a retry (this run's tenacity
        tries, a later run, a restart) goes only to the sinks that failed.
        """
        errors: list[str] = []
        for sink in self.sinks:
            if sink.name in already:
                continue
            try:
                for attempt in Retrying(stop=stop_after_attempt(self.tries_per_run), reraise=True,
                                        wait=wait_exponential(multiplier=self.wait_s, max=10 * self.wait_s)):
                    with attempt:
                        sink.send(alert)
            except Exception as exc:  # any sink failure: keep it pending for that sink, try on a later run
                errors.append(f"{sink.name}: {type(exc).__name__}: {exc}")
                continue
            if not self.ledger.alert_sink_delivered(alert.key, alert.state, sink.name):
                return False          # the condition changed state meanwhile: the new message is due instead
        if errors:
            error = "; ".join(errors)
            self.ledger.alert_failed(alert.key, alert.state, error, now + backoff(attempts))
            log.warning("alert %s (%s) not delivered: %s", alert.key, alert.state, error)
            return False
        self.ledger.alert_delivered(alert.key, alert.state)
        log.info("alert %s %s delivered", alert.key, alert.state)
        return True
