"""CPU per payment of ingest alone: MariaDB shop backlog → SQLite (or PostgreSQL) ledger, in this process.

    python -m bench.ingest --payments 5000 [--lines 3] [--batch 500] [--repeat 1] [--profile 25]
    python -m bench.ingest --ledger postgresql      # a scratch PostgreSQL ledger (--pg-admin-url)

Fills a scratch MariaDB shop (``bench.harness.fill_shop``: one line per payment, plus ``--lines - 1`` more
lines per payment), migrates a scratch ledger, then drains the shop with the worker's own
:class:`~worker.ingest.poller.Ingestor` (built by :func:`worker.app.build_ingestor`, as ``run`` builds it)
until a poll fetches nothing. No register runs: this is the ingest half of issue 10's "CPU per receipt".

Prints ONE JSON object: ``cpu_ms_per_payment`` (``time.process_time`` of this process over the polls:
the shop driver's decoding, planning, snapshot/receipt JSON and the ledger's writes; the MariaDB
and PostgreSQL servers' own CPU is not in it), wall time, and with ``--profile N`` the top N functions
of a cProfile run by own time (a separate drain of a fresh shop, so the timed run is not slowed by the
profiler).
``--repeat`` drains ``repeat`` fresh shops and reports each figure and the minimum (noisy shared cores);
``--batch 1`` shows the fixed cost of a poll (the worker's steady state: one new payment per poll).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.harness import PG_ADMIN_URL, Ledgers, fill_shop
from tests.chaos.campaign import ADMIN_URL, create_shop, drop_shop
from tests.shop import run_cli, write_settings
from worker.app import build_ingestor, open_ledger, open_shop_source
from worker.settings import load_settings


def add_lines(shop: sa.URL, lines: int) -> None:
    """Give every payment ``lines`` lines in all (fill_shop made line 1); the payment amount is kept
    equal to the lines' sum so that every payment plans a valid receipt."""
    if lines <= 1:
        return
    eng = sa.create_engine(shop, poolclass=sa.NullPool)
    with eng.begin() as c:
        for no in range(2, lines + 1):
            c.exec_driver_sql(
                "INSERT INTO payment_items (payment_id, line_no, name, price, quantity, amount, vat) "
                f"SELECT id, {no}, CONCAT('Товар ', {no}), 99.90, 2.000, 199.80, 'vat22' FROM payments")
        c.exec_driver_sql(f"UPDATE payments SET amount = 150.50 + {lines - 1} * 199.80")
    eng.dispose()


def drain(work: Path, shop: sa.URL, profile: cProfile.Profile | None = None, batch: int = 500,
          ledger_url: str | None = None) -> dict[str, Any]:
    """Migrate a fresh ledger (*ledger_url*, else SQLite under *work*) and ingest the whole shop; CPU
    and wall time of the polls."""
    ledger_url = ledger_url or f"sqlite:///{work / 'ledger.db'}"
    settings = write_settings(work / "settings.yaml", source_url=shop.render_as_string(hide_password=False),
                              ledger_url=ledger_url, registers=[("kkt0", f"emulator://{work / 'reg0'}?serial=EMU0")],
                              log={"level": "WARNING"}, source={"batch_size": batch})
    run_cli(settings, "migrate")
    s = load_settings(settings)
    ledger = open_ledger(s)
    source = open_shop_source(s)
    try:
        ing = build_ingestor(s, ledger, source)
        ing.source.max_id()   # connect first: the pool's first handshake is not ingest work
        polls = added = 0
        c0, w0 = time.process_time(), time.perf_counter()
        if profile is not None:
            profile.enable()
        while True:
            r = ing.poll_once()
            polls += 1
            added += r.added
            if not r.fetched:
                break
        if profile is not None:
            profile.disable()
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    finally:
        source.close()
    return {"added": added, "polls": polls, "cpu_s": cpu, "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--payments", type=int, default=5000)
    ap.add_argument("--lines", type=int, default=1, help="lines per payment (default 1, as bench.pool)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--batch", type=int, default=500, help="source.batch_size: rows per poll (default 500)")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="also print cProfile's top N by own time")
    ap.add_argument("--admin-url", default=ADMIN_URL)
    ap.add_argument("--ledger", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="PostgreSQL URL allowed to create databases")
    args = ap.parse_args()
    runs = []
    top: list[str] = []
    for i in range(args.repeat + (1 if args.profile else 0)):
        shop = create_shop(args.admin_url)
        try:
            fill_shop(shop, args.payments)
            add_lines(shop, args.lines)
            with tempfile.TemporaryDirectory(prefix="kkt-bench-ingest-") as d:
                ledgers = Ledgers(args.ledger, args.pg_admin_url, Path(d))
                prof = cProfile.Profile() if i == args.repeat else None
                try:
                    run = drain(Path(d), shop, prof, args.batch, ledgers.new("ingest"))
                finally:
                    ledgers.drop()
        finally:
            drop_shop(args.admin_url, shop)
        if run["added"] != args.payments:
            raise SystemExit(f"ingested {run['added']} of {args.payments} payments")
        if prof is None:
            runs.append(run)
        else:
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.profile)
            top = [ln for ln in out.getvalue().splitlines() if ln.strip()]
    per = [1000 * r["cpu_s"] / args.payments for r in runs]
    result: dict[str, Any] = {
        "ledger": args.ledger,
        "payments": args.payments, "lines_per_payment": args.lines, "batch": args.batch, "polls": runs[0]["polls"],
        "cpu_ms_per_payment": round(min(per), 3), "cpu_ms_per_payment_runs": [round(p, 3) for p in per],
        "wall_ms_per_payment": round(min(1000 * r["wall_s"] / args.payments for r in runs), 3),
    }
    if top:
        result["profile_top_by_tottime"] = top
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
