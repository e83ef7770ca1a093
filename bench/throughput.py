"""Throughput and memory of the real worker: MariaDB shop → SQLite ledger → emulated register.

    python -m bench.throughput --payments 2000 [--registers 2] [--admin-url mysql+pymysql://root@127.0.0.1:3306]

Prints JSON: ingest rows/s (poll into the ledger), fiscalize receipts/s (`run --burst` wall time),
the worker's peak RSS, and whether the targets in bench/README.md are met.
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from tests.chaos.campaign import ADMIN_URL, create_shop, drop_shop
from tests.chaos.invariants import check
from tests.shop import cli_env, insert_payment, run_cli, write_settings
from worker.ingest.poller import Ingestor
from worker.ledger.store import Ledger
from worker.ingest.planner import Planner
from worker.settings import load_settings
from worker.app import open_shop_source, receipt_config

TARGETS = {"ingest_rows_per_s": 500, "fiscalize_receipts_per_s": 50, "worker_peak_rss_mb": 200}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--payments", type=int, default=2000)
    ap.add_argument("--registers", type=int, default=1)
    ap.add_argument("--admin-url", default=ADMIN_URL)
    args = ap.parse_args()
    rng = random.Random(1)
    shop = create_shop(args.admin_url)
    try:
        with sa.create_engine(shop).begin() as conn:
            for _ in range(args.payments):
                price = Decimal(rng.randint(100, 900000)) / 100
                n = rng.randint(1, 5)
                insert_payment(conn, [{"line_no": i + 1, "name": f"Товар {i + 1}", "price": price,
                                       "quantity": Decimal(1), "amount": price, "vat": "vat22"} for i in range(n)])
        with tempfile.TemporaryDirectory(prefix="kkt-bench-") as d:
            work = Path(d)
            regs = [work / f"reg{i}" for i in range(args.registers)]
            ledger_url = f"sqlite:///{work / 'ledger.db'}"
            settings = write_settings(work / "settings.yaml", source_url=shop.render_as_string(hide_password=False),
                                      ledger_url=ledger_url,
                                      registers=[(f"kkt{i}", f"emulator://{r}?serial=EMU{i}") for i, r in enumerate(regs)],
                                      log={"level": "WARNING"})
            run_cli(settings, "migrate")
            # ingest alone: every register disabled → nothing is fiscalized, the poller drains the shop
            s = load_settings(settings)
            ledger = Ledger(ledger_url)
            ing = Ingestor(open_shop_source(s), ledger, Planner(ledger, receipt_config(s)))
            t0 = time.perf_counter()
            while ing.poll_once().fetched:
                pass
            ingest_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "worker", "-c", str(settings), "run", "--burst"],
                                  cwd=work, env=cli_env(), capture_output=True, text=True)
            fiscalize_s = time.perf_counter() - t1
            rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            report = check(shop, ledger_url, regs)
        out = {
            "payments": args.payments, "registers": args.registers,
            "ingest_rows_per_s": round(args.payments / ingest_s, 1),
            "fiscalize_receipts_per_s": round(report.done / fiscalize_s, 1),
            "worker_peak_rss_mb": round(rss_mb, 1), "worker_exit": proc.returncode,
            "exactly_once": report.ok and report.done == args.payments,
        }
        out["targets_met"] = (out["ingest_rows_per_s"] >= TARGETS["ingest_rows_per_s"]
                              and out["fiscalize_receipts_per_s"] >= TARGETS["fiscalize_receipts_per_s"]
                              and out["worker_peak_rss_mb"] <= TARGETS["worker_peak_rss_mb"])
        out["targets"] = TARGETS
        print(json.dumps(out, indent=2))
    finally:
        drop_shop(args.admin_url, shop)


if __name__ == "__main__":
    main()
