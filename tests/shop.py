"""Test helpers: write shop rows (reference schema), write settings, run the real CLI, read journals."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Sequence

import sqlalchemy as sa
import yaml

REPO = Path(__file__).resolve().parent.parent
PAID_AT = dt.datetime(2026, 11, 20, 12, 0, 0)


def sale_items(n: int = 2, price: str = "100.00") -> list[dict[str, Any]]:
    """*n* simple item rows at *price* each, VAT 22 %."""
    return [{"line_no": i + 1, "name": f"Товар {i + 1}", "price": Decimal(price), "quantity": Decimal("1.000"),
             "amount": Decimal(price), "vat": "vat22"} for i in range(n)]


def insert_payment(conn: sa.Connection, items: Sequence[dict[str, Any]], *, kind: str = "sale",
                   refund_of: int | None = None, email: str | None = "buyer@example.ru",
                   amount: Decimal | None = None, order_ref: str = "ORD") -> int:
    """Insert one payment with its items on *conn* (the caller controls the transaction). Returns its id."""
    total = amount if amount is not None else sum((Decimal(i["amount"]) for i in items), Decimal(0))
    res = conn.execute(sa.text(
        "INSERT INTO payments (kind, order_ref, refund_of, amount, customer_email, paid_at) "
        "VALUES (:k, :o, :r, :a, :e, :p)"), {"k": kind, "o": order_ref, "r": refund_of, "a": total, "e": email,
                                             "p": PAID_AT})
    pid = res.lastrowid
    for it in items:
        conn.execute(sa.text(
            "INSERT INTO payment_items (payment_id, line_no, name, price, quantity, amount, vat) "
            "VALUES (:pid, :line_no, :name, :price, :quantity, :amount, :vat)"), {"pid": pid, **it})
    return int(pid)


def write_settings(path: Path, *, source_url: str, ledger_url: str, registers: Sequence[tuple[str, str]],
                   **sections: Any) -> Path:
    """A settings.yaml for a test run; retry delays short so that --burst finishes quickly."""
    data: dict[str, Any] = {
        "source": {"url": source_url, "poll_interval_s": 0.2, "gap_timeout_s": 5},
        "ledger": {"url": ledger_url},
        "registers": [{"name": n, "url": u} for n, u in registers],
        "receipts": {"tax_system": "osn", "default_vat": "vat22", "settlement_place": "https://shop.example.ru"},
        "retry": {"base_delay_s": 0.2, "max_delay_s": 1, "device_pause_s": 0.3, "source_backoff_max_s": 1},
        "log": {"level": "INFO"},
        # tests run many workers side by side: the HTTP endpoints are tested where a test asks for them
        "http": {"enabled": False},
    }
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KKT_")}
    env.update(extra)
    return env


def run_cli(settings: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``python -m worker -c settings args…`` to completion."""
    proc = subprocess.run([sys.executable, "-m", "worker", "-c", str(settings), *args], cwd=settings.parent,
                          env=env or cli_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kkt-worker {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}")
    return proc


def start_cli(settings: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``python -m worker`` in the background."""
    return subprocess.Popen([sys.executable, "-m", "worker", "-c", str(settings), *args], cwd=settings.parent,
                            env=env or cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def dump_threads(proc: subprocess.Popen[str], settle_s: float = 1.0) -> None:
    """Ask a running worker to write every thread's stack to its stderr (SIGUSR1, ``worker.signals.on_dump``),
    so that a test giving up on it shows what it was waiting for (see :func:`thread_dump`)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(settle_s)


def thread_dump(stderr: str, limit: int = 8000) -> str:
    """The thread dump in a worker's stderr (what :func:`dump_threads` asked for), or "" if there is none."""
    at = stderr.find(" (most recent call first):")
    if at < 0:
        return ""
    start = stderr.rfind("\n", 0, at) + 1
    return stderr[start:start + limit]


def stop_worker(proc: subprocess.Popen[str], timeout: float, log_path: Path | None = None) -> str:
    """SIGTERM (a warm stop) and its stderr (or *log_path*'s text); a worker still running after *timeout*
    seconds is made to dump its threads, killed, and reported as an AssertionError with that dump."""
    if proc.poll() is None:
        proc.terminate()
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        dump_threads(proc)
        proc.kill()
        _, err = proc.communicate()
        err = err or (log_path.read_text() if log_path is not None else "")
        raise AssertionError(f"the worker did not stop within {timeout} s after SIGTERM; its threads:\n"
                             f"{thread_dump(err) or '(no dump)'}\n--- its last log lines:\n{err[-3000:]}") from None
    return err or (log_path.read_text() if log_path is not None else "")


def alive(pid: int) -> bool:
    """True while process *pid* runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children(pid: int) -> set[int]:
    """The living child processes of *pid* (a worker's ingest process); empty once *pid* is gone. The
    benchmarks read it too, several times a second: one small file per thread, not a walk of /proc."""
    found: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.update(int(c) for c in (task / "children").read_text().split())
    except (OSError, ValueError):
        pass
    return {c for c in found if alive(c)}


def journal(state_dir: Path) -> list[dict[str, Any]]:
    """Every document in an emulated register's fiscal journal (the ground truth)."""
    path = state_dir / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def receipts_by_tag(state_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Receipt documents grouped by their 1192 tag."""
    out: dict[str, list[dict[str, Any]]] = {}
    for doc in journal(state_dir):
        if doc["kind"] in ("receipt", "correction"):
            out.setdefault(doc.get("tag"), []).append(doc)
    return out


def insert_codes(conn: sa.Connection, payment_id: int, line_no: int, codes: Sequence[bytes | str]) -> None:
    """Marking codes of one line, one row per unit (``payment_item_codes``; raw bytes or base64)."""
    for unit_no, code in enumerate(codes, start=1):
        conn.execute(sa.text(
            "INSERT INTO payment_item_codes (payment_id, line_no, unit_no, code) VALUES (:p, :l, :u, :c)"),
            {"p": payment_id, "l": line_no, "u": unit_no, "c": code.encode() if isinstance(code, str) else code})


def free_port() -> int:
    """A TCP port free on loopback right now (for an emulator started in its own process)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_serving(proc: subprocess.Popen[bytes], port: int, timeout: float = 20) -> None:
    """Wait until *proc* accepts connections on *port*; AssertionError with its stderr if it dies or is slow."""
    import socket
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError(f"{proc.args} did not start: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.1)
