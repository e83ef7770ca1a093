"""What a finished run's ledger says about its pace: receipts and span, when each register started and
stopped, and the rate while every register was sending (bench.pool's efficiency figures)."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def _done_rows(ledger_url: str) -> list[Any]:
    """(register, intent_at, outcome time) of every done receipt, by register and intent."""
    from worker.ledger.schema import receipts

    eng = sa.create_engine(ledger_url, poolclass=sa.NullPool)
    with eng.connect() as c:   # typed columns: SQLite keeps datetimes as text
        rows = c.execute(sa.select(receipts.c.register, receipts.c.intent_at, receipts.c.updated_at)
                         .where(receipts.c.state == "done")
                         .order_by(receipts.c.register, receipts.c.intent_at)).all()
    eng.dispose()
    return rows


def done_span(ledger_url: str) -> tuple[int, float, dict[str, tuple[int, float]]]:
    """(done receipts, seconds from the first intent to the last outcome, per register (count, span))."""
    rows = _done_rows(ledger_url)
    if not rows:
        return 0, 0.0, {}
    span = (max(r[2] for r in rows) - min(r[1] for r in rows)).total_seconds()
    per: dict[str, list] = {}
    for r in rows:
        per.setdefault(r[0], []).append(r)
    per_reg = {k: (len(v), (max(x[2] for x in v) - min(x[1] for x in v)).total_seconds()) for k, v in per.items()}
    return len(rows), span, per_reg


def ingest_overlap(ledger_url: str) -> dict[str, float]:
    """The lanes' pace while the poller was still ingesting the backlog (outcomes up to the last payment's
    ``ingested_at``) and after it: a backlog's ingest slows the lanes it feeds (on SQLite they share one
    writer; with ``source.ingest_process: false`` also one GIL, which starved the lanes). Seconds from the
    first intent."""
    from worker.ledger.schema import payments

    rows = _done_rows(ledger_url)
    eng = sa.create_engine(ledger_url, poolclass=sa.NullPool)
    with eng.connect() as c:
        last_ingest = c.execute(sa.select(sa.func.max(payments.c.ingested_at))).scalar()
    eng.dispose()
    if not rows or last_ingest is None:
        return {}
    start, end = min(r[1] for r in rows), max(r[2] for r in rows)
    during = sum(1 for r in rows if r[2] <= last_ingest)
    window = (last_ingest - start).total_seconds()
    rest = (end - last_ingest).total_seconds()
    return {"ingest_window_s": round(window, 2),
            "receipts_per_s_while_ingesting": round(during / window, 1) if window > 0 else None,
            "receipts_per_s_after_ingest": round((len(rows) - during) / rest, 1) if rest > 0 else None}


def lane_starts(ledger_url: str) -> dict[str, float]:
    """When each register's first intent came, relative to the first register's: a pool whose lanes
    start one after another loses that ramp from its aggregate efficiency (and the tail at the end)."""
    from worker.ledger.schema import receipts

    eng = sa.create_engine(ledger_url, poolclass=sa.NullPool)
    with eng.connect() as c:
        rows = c.execute(sa.select(receipts.c.register, sa.func.min(receipts.c.intent_at),
                                   sa.func.max(receipts.c.updated_at))
                         .where(receipts.c.state == "done").group_by(receipts.c.register)).all()
    eng.dispose()
    if not rows:
        return {}
    t0 = min(r[1] for r in rows)
    starts = sorted((r[1] - t0).total_seconds() for r in rows)
    t1 = max(r[2] for r in rows)
    ends = sorted((t1 - r[2]).total_seconds() for r in rows)
    return {"first_intent_spread_s": round(starts[-1], 2), "first_intent_p50_s": round(starts[len(starts) // 2], 2),
            "last_outcome_spread_s": round(ends[-1], 2)}


def all_lanes_rate(ledger_url: str) -> tuple[float | None, float]:
    """Receipts per second while EVERY register was sending, between the last register's first intent and
    the first register's last outcome (None if that window is under 1 s: the ramp and the tail overlapped).
    Each receipt counts with the share of its intent → outcome time inside the window, so the window's
    edges do not bias the count by a receipt per register. A farm that runs all day lives in this window;
    the aggregate efficiency also pays the start-up ramp once."""
    rows = _done_rows(ledger_url)
    first: dict[str, Any] = {}
    last: dict[str, Any] = {}
    for reg, intent, outcome in rows:
        first[reg] = min(first.get(reg, intent), intent)
        last[reg] = max(last.get(reg, outcome), outcome)
    if not rows:
        return None, 0.0
    t_a, t_b = max(first.values()), min(last.values())
    window = (t_b - t_a).total_seconds()
    if window < 1.0:
        return None, window
    share = 0.0
    for _reg, intent, out in rows:
        busy = (out - intent).total_seconds()
        inside = (min(out, t_b) - max(intent, t_a)).total_seconds()
        if busy > 0 and inside > 0:
            share += inside / busy
    return share / window, window


def lane_pace(ledger_url: str) -> dict[str, float]:
    """Where a lane's time goes, over all registers: each receipt's intent → outcome (the register's
    work plus the worker's between intent and outcome) and each outcome → that register's next intent
    (the worker between receipts), p50 and p90 in seconds. With a 1 s register, a lane at 0.92 of its
    ideal spends ~0.09 s a receipt somewhere: these say on which side of the outcome."""
    rows = _done_rows(ledger_url)
    busy = sorted((out - intent).total_seconds() for _reg, intent, out in rows)
    between = sorted((b[1] - a[2]).total_seconds() for a, b in zip(rows, rows[1:]) if a[0] == b[0])

    def q(xs: list[float], p: float) -> float:
        return round(xs[min(int(len(xs) * p), len(xs) - 1)], 3) if xs else 0.0

    return {"intent_to_outcome_p50_s": q(busy, 0.5), "intent_to_outcome_p90_s": q(busy, 0.9),
            "outcome_to_next_intent_p50_s": q(between, 0.5), "outcome_to_next_intent_p90_s": q(between, 0.9)}
