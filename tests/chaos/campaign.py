"""Scenario 2: a random kill -9 campaign while payments flow in. Prints a JSON report.

    python -m tests.chaos.campaign --kills 500 --payments 5000      # the long run
    python -m tests.chaos.campaign --kills 50 --payments 300        # what CI runs

Writers insert payments into a scratch MariaDB database (some transactions held open, 5 % rolled
back) while a supervisor starts the real worker (`python -m worker run`), kills it with SIGKILL at a
random moment, and starts it again. At the end the worker drains with `run --burst` and the
invariants are checked against the emulated registers' journals.
"""
from __future__ import annotations

import argparse
import json
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.chaos.invariants import check
from tests.shop import REPO, cli_env, insert_payment, run_cli, write_settings

ADMIN_URL = "mysql+pymysql://root@127.0.0.1:3306"


def create_shop(admin_url: str) -> sa.URL:
    """A scratch shop database with the reference schema."""
    name = f"kkt_chaos_{secrets.token_hex(4)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    url = sa.make_url(admin_url).set(database=name)
    lines = [ln for ln in (REPO / "sql" / "schema.sql").read_text().splitlines() if not ln.lstrip().startswith("--")]
    with sa.create_engine(url, poolclass=sa.NullPool).begin() as c:
        for stmt in "\n".join(lines).split(";"):
            if stmt.strip():
                c.exec_driver_sql(stmt)
    return url


def drop_shop(admin_url: str, url: sa.URL) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as c:
        c.exec_driver_sql(f"DROP DATABASE IF EXISTS `{url.database}`")


class Writers:
    """Threads inserting payments, holding some transactions open and rolling some back."""

    def __init__(self, url: sa.URL, total: int, threads: int, rng: random.Random) -> None:
        self.engine = sa.create_engine(url, pool_size=threads + 1)
        self.left = total
        self.lock = threading.Lock()
        self.rng = rng
        self.committed = 0
        self.rolled_back = 0
        self.rolled_back_ids: list[int] = []
        self.long_hold = (0.5, 2.0)
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join()

    def _take(self) -> bool:
        with self.lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True

    def _run(self) -> None:
        while self._take():
            with self.lock:
                n = self.rng.randint(1, 4)
                hold = self.rng.expovariate(1 / 0.02) if self.rng.random() > 0.03 else self.rng.uniform(*self.long_hold)
                rollback = self.rng.random() < 0.05
                price = Decimal(self.rng.randint(100, 500000)) / 100
            items = [{"line_no": i + 1, "name": f"Товар {i + 1}", "price": price, "quantity": Decimal(1),
                      "amount": price, "vat": "vat22"} for i in range(n)]
            with self.engine.connect() as conn:
                tx = conn.begin()
                pid = insert_payment(conn, items)
                time.sleep(hold)
                if rollback:
                    tx.rollback()
                    self.rolled_back += 1
                    self.rolled_back_ids.append(pid)
                else:
                    tx.commit()
                    self.committed += 1
            time.sleep(self.rng.uniform(0, 0.01))


def create_pg_ledger(pg_admin_url: str, prefix: str = "kkt_chaos") -> str:
    """A scratch PostgreSQL ledger database (empty; the caller migrates it); its URL."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    with sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool).connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return sa.make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_ledger(pg_admin_url: str, ledger_url: str) -> None:
    name = sa.make_url(ledger_url).database
    with sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool).connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def campaign(kills: int, payments: int, seed: int, workdir: Path, admin_url: str = ADMIN_URL,
             min_life: float = 0.2, max_life: float = 1.8, pg_admin_url: str | None = None) -> dict[str, Any]:
    """Run the campaign; return the report (``ok`` false on any duplicate or loss). *pg_admin_url*: the
    ledger is a scratch PostgreSQL database (dropped afterwards) instead of a SQLite file."""
    rng = random.Random(seed)
    shop = create_shop(admin_url)
    ledger_url = create_pg_ledger(pg_admin_url) if pg_admin_url else f"sqlite:///{workdir / 'ledger.db'}"
    started = time.monotonic()
    try:
        regs = [workdir / "reg1", workdir / "reg2"]
        settings = write_settings(
            workdir / "settings.yaml", source_url=shop.render_as_string(hide_password=False), ledger_url=ledger_url,
            registers=[("kkt1", f"emulator://{regs[0]}?serial=EMU1"), ("kkt2", f"emulator://{regs[1]}?serial=EMU2")],
            source={"gap_timeout_s": 30, "batch_size": 50}, log={"level": "WARNING"})
        run_cli(settings, "migrate")
        writers = Writers(shop, payments, threads=4, rng=rng)
        writers.start()
        done_kills = 0
        exits: dict[str, int] = {}
        while done_kills < kills:
            proc = subprocess.Popen([sys.executable, "-m", "worker", "-c", str(settings), "run"], cwd=workdir,
                                    env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(min_life, max_life))
            proc.send_signal(signal.SIGKILL)
            code = proc.wait()
            exits[str(code)] = exits.get(str(code), 0) + 1
            done_kills += 1
        writers.join()
        drain = run_cli(settings, "run", "--burst", "--burst-timeout", "300", check=False)
        report = check(shop, ledger_url, regs)
        out = report.summary()
        out.update(seed=seed, ledger=sa.make_url(ledger_url).get_backend_name(), kills=done_kills, worker_exit_codes=exits, committed=writers.committed,
                   rolled_back=writers.rolled_back, drain_exit=drain.returncode,
                   seconds=round(time.monotonic() - started, 1))
        out["ok"] = report.ok and drain.returncode == 0 and report.done == writers.committed
        return out
    finally:
        drop_shop(admin_url, shop)
        if pg_admin_url:
            drop_pg_ledger(pg_admin_url, ledger_url)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=500)
    ap.add_argument("--payments", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--admin-url", default=ADMIN_URL, help="MariaDB server URL with rights to create a database")
    ap.add_argument("--pg-admin-url", default=None,
                    help="PostgreSQL URL allowed to create databases: the ledger is a scratch PostgreSQL database "
                         "(default: a SQLite file), e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    with tempfile.TemporaryDirectory(prefix="kkt-chaos-") as d:
        report = campaign(args.kills, args.payments, seed, Path(d), args.admin_url, pg_admin_url=args.pg_admin_url)
    print(json.dumps(report, indent=2))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
