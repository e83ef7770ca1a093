"""The operator's view through the real CLI: status tells the truth, exit statuses, one-line errors,
the worker's HTTP endpoints, SIGHUP, health conditions read from the emulated registers."""
from __future__ import annotations

import datetime as dt
import json
import re
import signal
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from kkt_drivers.emulator.model import RegisterModel
from tests.shop import free_port, insert_payment, run_cli, sale_items, start_cli, write_settings

pytestmark = pytest.mark.acceptance


def make(tmp_path: Path, shop: sa.URL, n: int = 3, **sections) -> tuple[Path, Path]:
    engine = sa.create_engine(shop)
    with engine.begin() as conn:
        for _ in range(n):
            insert_payment(conn, sale_items(2))
    engine.dispose()
    reg = tmp_path / "reg"
    settings = write_settings(tmp_path / "settings.yaml", source_url=shop.render_as_string(hide_password=False),
                              ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}",
                              registers=[("kkt1", f"emulator:{reg}?fsync=0")], **sections)
    run_cli(settings, "migrate")
    return settings, reg


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.2)


def test_status_says_down_after_kill_9_and_check_exits_1(shop_schema: sa.URL, tmp_path: Path) -> None:
    port = free_port()
    settings, _ = make(tmp_path, shop_schema, health={"heartbeat_stale_s": 30},
                       http={"enabled": True, "bind": f"127.0.0.1:{port}"})
    proc = start_cli(settings, "run")
    try:
        def done() -> bool:
            out = run_cli(settings, "status", "--output", "json", check=False)
            return out.returncode == 0 and json.loads(out.stdout)["counts"].get("done") == 3
        wait_for(done)
        ok = run_cli(settings, "status", "--check", check=False)
        assert ok.returncode == 0 and "worker: running" in ok.stdout, ok.stdout + ok.stderr
        assert re.search(r"lease kkt1: epoch \d+ worker@\S+ live until \d\d:\d\d:\d\d UTC", ok.stdout), ok.stdout
        assert "ingest: not paused (ledger disk" in ok.stdout, ok.stdout
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'kkt_receipts{state="done"} 3.0' in metrics and "kkt_worker_up 1.0" in metrics
        assert 'kkt_attempts_total{outcome="done"} 3.0' in metrics and "kkt_receipt_latency_seconds_count 3.0" in metrics
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        assert "Показаны 1–3 из 3" in httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    time.sleep(31)   # the heartbeat goes stale (lanes write one every 15 s; the limit is 30 s here)
    down = run_cli(settings, "status", "--check", check=False)
    assert down.returncode == 1, down.stdout + down.stderr
    assert "worker: DOWN" in down.stdout and "the worker is not running" in down.stdout
    assert "lane kkt1: running (stale: the worker is not running)" in down.stdout


def test_failed_receipts_an_expiring_fn_and_an_ofd_backlog_need_a_person(shop_schema: sa.URL,
                                                                           tmp_path: Path) -> None:
    settings, reg = make(tmp_path, shop_schema, n=2, retry={"max_attempts": 1},
                         health={"ofd_backlog_days": 0.00001, "heartbeat_stale_s": 3600})
    model = RegisterModel(reg, fsync=False)
    model.set_fn_valid_until(dt.date.today() + dt.timedelta(days=10))
    model.ofd_link(up=False)
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")
    # a third payment on a register that refuses the link: it fails (max_attempts 1)
    engine = sa.create_engine(shop_schema)
    with engine.begin() as conn:
        insert_payment(conn, sale_items(1))
    engine.dispose()
    bad = settings.read_text().replace("?fsync=0", "?fsync=0&fail_before_send=1")
    settings.write_text(bad)
    run_cli(settings, "run", "--burst", "--burst-timeout", "30", check=False)
    out = run_cli(settings, "status", "--check", "--output", "json", check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    keys = {p["key"] for p in json.loads(out.stdout)["problems"]}
    assert {"receipts_failed", "fn_expiring:kkt1", "ofd_backlog:kkt1"} <= keys, keys


def test_sighup_reloads_logs_and_never_kills_the_worker(shop_schema: sa.URL, tmp_path: Path) -> None:
    settings, _ = make(tmp_path, shop_schema, n=1)
    proc = start_cli(settings, "run")
    try:
        time.sleep(3)
        proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert proc.poll() is None, "SIGHUP must not stop the worker"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "SIGHUP: log settings reloaded" in err


@pytest.mark.parametrize("args, code, words", [
    (["status"], 78, "run `kkt-worker migrate`"),
    (["ledger", "list", "--from", "2026-13-01"], 2, "--from"),
    (["--log-level", "LOUD", "status"], 2, "--log-level"),
    (["ledger", "show", "999"], 65, "payment 999 is not in the ledger"),
])
def test_common_mistakes_are_one_line_with_a_documented_status(tmp_path: Path, args: list[str], code: int,
                                                               words: str) -> None:
    settings = write_settings(tmp_path / "settings.yaml", source_url=f"sqlite:///{tmp_path / 'shop.db'}",
                              ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}",
                              registers=[("kkt1", f"emulator:{tmp_path / 'reg'}")])
    if code != 78:
        run_cli(settings, "migrate")
    else:
        (tmp_path / "ledger.db").touch()   # a ledger file that was never migrated
    out = run_cli(settings, *args, check=False)
    assert out.returncode == code, out.stdout + out.stderr
    assert words in out.stderr and "Traceback" not in out.stderr
    assert len([ln for ln in out.stderr.splitlines() if ln.strip()]) <= 3, out.stderr


def test_an_unknown_register_scheme_and_a_missing_settings_file(tmp_path: Path) -> None:
    settings = write_settings(tmp_path / "settings.yaml", source_url=f"sqlite:///{tmp_path / 'shop.db'}",
                              ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}", registers=[("kkt1", "atoll://x")])
    run_cli(settings, "migrate")
    out = run_cli(settings, "run", "--burst", check=False)
    assert out.returncode == 78 and "unknown register URL scheme 'atoll'" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    missing = run_cli(tmp_path / "nope.yaml", "status", check=False)
    assert missing.returncode == 78 and "does not exist" in missing.stderr


def test_help_works_whatever_the_settings_file_says(tmp_path: Path) -> None:
    broken = tmp_path / "settings.yaml"
    broken.write_text("registers: [oops\n")
    out = run_cli(broken, "run", "--help")
    assert "--burst" in out.stdout
    assert "KKT_RUN_BURST" not in out.stdout   # a mode switch never comes from the environment


def test_read_commands_never_create_a_ledger(tmp_path: Path) -> None:
    settings = write_settings(tmp_path / "settings.yaml", source_url=f"sqlite:///{tmp_path / 'shop.db'}",
                              ledger_url=f"sqlite:///{tmp_path / 'var' / 'ledger.db'}",
                              registers=[("kkt1", f"emulator:{tmp_path / 'reg'}")])
    out = run_cli(settings, "status", check=False)
    assert out.returncode == 78 and "never create" in out.stderr
    assert not (tmp_path / "var").exists() and not (tmp_path / "reg").exists()
