"""Operations' writes: the alerts table, and erasing customers' contacts after N days (152-FZ)."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import insert, select, update

from worker.errors import StateConflict
from worker.ledger.base import LedgerBase
from worker.ledger.schema import alerts, payments, receipts
from worker.ledger.states import State

FIRING = "firing"
RESOLVED = "resolved"
#: what replaces a contact in a stored receipt body after anonymisation
ANONYMISED = "(anonymised)"
#: receipts in these states will not be sent again, so their payment's contacts may go
SETTLED_STATES = (State.DONE.value, State.REJECTED.value)


#: compare-and-set tries when recording a sink's delivery (another writer changed the row meanwhile)
_CAS_TRIES = 5


def sink_names(stored: str | None) -> set[str]:
    """The sink names of an alert row's ``delivered_sinks`` (comma-separated, NULL = none)."""
    return {n for n in (stored or "").split(",") if n}


class OpsWrites(LedgerBase):
    """Alerts (one message when a condition starts, one when it ends) and personal-data pruning."""

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert row, firing first."""
        with self.read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(alerts).order_by(alerts.c.key))]
        return sorted(rows, key=lambda r: r["state"] != FIRING)

    def alert_sync(self, current: dict[str, tuple[str, str]], now: dt.datetime) -> None:
        """Make the table match *current* (key → (severity, message)): new keys fire, gone keys resolve.

        A condition that comes back after it was resolved fires again (a new message). Only state
        changes reset ``delivered`` (and ``delivered_sinks``); a firing alert whose message text changes is not re-sent.
        """
        with self.write() as conn:
            rows = {r.key: r for r in conn.execute(select(alerts.c.key, alerts.c.state))}
            for key, (severity, message) in current.items():
                row = rows.get(key)
                if row is None:
                    conn.execute(insert(alerts).values(key=key, severity=severity, message=message, state=FIRING,
                                                       started_at=now, delivered=0, delivered_sinks=None,
                                                       attempts=0, next_try_at=now))
                elif row.state == RESOLVED:
                    conn.execute(update(alerts).where(alerts.c.key == key).values(
                        severity=severity, message=message, state=FIRING, started_at=now, resolved_at=None,
                        delivered=0, delivered_sinks=None, attempts=0, next_try_at=now, last_error=None))
                else:
                    conn.execute(update(alerts).where(alerts.c.key == key).values(message=message))
            for key, row in rows.items():
                if row.state == FIRING and key not in current:
                    conn.execute(update(alerts).where(alerts.c.key == key, alerts.c.state == FIRING).values(
                        state=RESOLVED, resolved_at=now, delivered=0, delivered_sinks=None, attempts=0,
                        next_try_at=now, last_error=None))

    def alerts_to_deliver(self, now: dt.datetime) -> list[dict[str, Any]]:
        """Alerts whose current state's message has not gone out and whose next try is due."""
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(alerts).where(alerts.c.delivered == 0, alerts.c.next_try_at <= now).order_by(alerts.c.key))]

    def alert_sink_delivered(self, key: str, state: str, sink: str) -> bool:
        """*sink* has the message for *state*; False if the alert changed state meanwhile.

        Compare-and-set on the previous list, so two writers never drop each other's sink.
        """
        for _ in range(_CAS_TRIES):
            with self.write() as conn:
                row = conn.execute(select(alerts.c.delivered_sinks)
                                   .where(alerts.c.key == key, alerts.c.state == state)).first()
                if row is None:
                    return False
                old = row.delivered_sinks
                names = sink_names(old)
                if sink in names:
                    return True
                same = alerts.c.delivered_sinks.is_(None) if old is None else alerts.c.delivered_sinks == old
                done = conn.execute(update(alerts).where(alerts.c.key == key, alerts.c.state == state, same)
                                    .values(delivered_sinks=",".join(sorted(names | {sink}))))
                if done.rowcount == 1:
                    return True
        raise StateConflict(f"alert {key}: delivered_sinks kept changing under {_CAS_TRIES} tries")

    def alert_delivered(self, key: str, state: str) -> None:
        """The message for *state* went out to every sink (guarded: a state change meanwhile keeps it
        undelivered)."""
        with self.write() as conn:
            conn.execute(update(alerts).where(alerts.c.key == key, alerts.c.state == state)
                         .values(delivered=1, last_error=None))

    def alert_failed(self, key: str, state: str, error: str, next_try_at: dt.datetime) -> None:
        """Sending failed; try again at *next_try_at*."""
        with self.write() as conn:
            conn.execute(update(alerts).where(alerts.c.key == key, alerts.c.state == state).values(
                attempts=alerts.c.attempts + 1, next_try_at=next_try_at, last_error=error[:2000]))

    def anonymise_contacts(self, ingested_before: dt.datetime) -> int:
        """Erase customers' e-mails and phones of payments ingested before the cutoff (152-FZ).

        Only payments whose every receipt is settled (done, or rejected for good) are touched; the
        fiscal requisites (FD, FP, FN, shift, QR, totals) stay. Returns payments anonymised.
        """
        done = 0
        with self.write() as conn:
            rows = conn.execute(select(payments.c.id, payments.c.snapshot).where(
                payments.c.ingested_at < ingested_before,
                ~select(receipts.c.id).where(receipts.c.payment_id == payments.c.id,
                                             receipts.c.state.notin_(SETTLED_STATES)).exists()))
            for pid, snap in rows:
                data = json.loads(snap)
                if not (data.get("customer_email") or data.get("customer_phone")):
                    continue
                data["customer_email"] = data["customer_phone"] = None
                conn.execute(update(payments).where(payments.c.id == pid).values(
                    snapshot=json.dumps(data, ensure_ascii=False)))
                for rid, body in conn.execute(select(receipts.c.id, receipts.c.body)
                                              .where(receipts.c.payment_id == pid, receipts.c.body.isnot(None))):
                    receipt = json.loads(body)
                    if receipt.get("customer_contact"):
                        receipt["customer_contact"] = ANONYMISED
                        conn.execute(update(receipts).where(receipts.c.id == rid).values(
                            body=json.dumps(receipt, ensure_ascii=False)))
                done += 1
        return done
