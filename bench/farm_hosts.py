"""Register hosts for the out-of-process farm figure: many emulated Shtrih-M registers in ONE process.

    .venv/bin/python -m bench.farm_hosts STATE_ROOT --first 0 --count 50 --receipt-ms 1000 [--model jsontcp]

Starts ``count`` emulated registers of ``--model`` (``shtrih``: :class:`ShtrihEmulatorServer`, the
byte protocol with several commands per receipt; ``jsontcp``: :class:`JsonTcpEmulatorServer`, one JSON
frame per step), one TCP port each (any free port), state in ``STATE_ROOT/reg<i>``, serial ``i + 1``
zero-padded to 16 digits, journal not fsync'ed (it is the device, not the worker). Only the receipt's
close (Shtrih FF45 / jsontcp ``close_receipt``, where a real register prints and signs) waits
``receipt_ms``: the register's own latency, as the in-process figure's ``receipt_latency_ms``. Prints one JSON line ``{"urls": [...]}`` on stdout once every port listens, then
serves until stdin closes or SIGTERM. ``kkt-worker emulator serve`` hosts one register per process; 200
such processes would cost ~200 × 40 MB, so the benchmark runs a handful of these instead
(:func:`start_hosts` / :func:`stop_hosts`, used by ``bench.pool``).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import procfs
from kkt_drivers.jsontcp.server import JsonTcpEmulatorServer
from kkt_drivers.shtrih import protocol as p
from kkt_drivers.shtrih.server import ShtrihEmulatorServer
from tests.shop import cli_env


class SlowCloseJsonTcp(JsonTcpEmulatorServer):
    """The bridge emulator whose ``close_receipt`` takes ``close_delay_s`` (the jsontcp server has no
    delay knob of its own; the sleep is before the model writes the document, as a printer's would be)."""

    close_delay_s = 0.0

    def execute(self, msg: dict[str, Any]) -> dict[str, Any]:
        if msg.get("cmd") == "close_receipt" and self.close_delay_s:
            time.sleep(self.close_delay_s)
        return super().execute(msg)


def _start(model: str, state_dir: str, serial: str, delay_s: float) -> tuple[str, Any]:
    """One register of *model* serving in a background thread: (its URL, the server)."""
    if model == "jsontcp":
        js = SlowCloseJsonTcp(state_dir, serial=serial, fsync=False)
        js.close_delay_s = delay_s
        return js.start().url(), js
    # idle_timeout_s=None: a lane that waits for work longer than 2 min must not find its link cut
    srv = ShtrihEmulatorServer(state_dir, serial=serial, fsync=False, answer_delay_s=delay_s, idle_timeout_s=None)
    srv.delayed_commands = {p.FN_CLOSE_RECEIPT}
    h, prt = srv.start().address
    return f"shtrih+socket://{h}:{prt}", srv


def start_hosts(d: Path, registers: int, hosts: int, receipt_ms: int,
                model: str = "shtrih") -> tuple[list[subprocess.Popen], list[str]]:
    """*registers* emulated registers of *model* on TCP, spread over *hosts* processes
    (``bench.farm_hosts``), state in ``d/reg<i>``: the processes and the register URLs in order."""
    from kkt_drivers.jsontcp import server as jsontcp

    # the jsontcp URLs name environment variables for the passwords; the worker inherits them
    os.environ.setdefault(jsontcp.PASSWORD_ENV, jsontcp.EMULATOR_PASSWORD)
    os.environ.setdefault(jsontcp.CONNECTION_PASSWORD_ENV, jsontcp.EMULATOR_CONNECTION_PASSWORD)
    d.mkdir(parents=True, exist_ok=True)
    per = -(-registers // hosts)
    procs: list[subprocess.Popen] = []
    urls: list[str] = []
    try:
        for first in range(0, registers, per):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "bench.farm_hosts", str(d), "--first", str(first),
                 "--count", str(min(per, registers - first)), "--receipt-ms", str(receipt_ms), "--model", model],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=cli_env(), text=True))
        for proc in procs:   # each prints its URLs once every port listens
            line = proc.stdout.readline() if proc.stdout else ""
            if not line:
                raise RuntimeError(f"register host {proc.pid} exited {proc.wait()}")
            urls += json.loads(line)["urls"]
    except BaseException:
        stop_hosts(procs)
        raise
    return procs, urls


def stop_hosts(procs: list[subprocess.Popen]) -> dict[str, float]:
    """Stop the register hosts (stdin closed); their summed peak RSS in MB (VmHWM) and CPU seconds
    (user + system), read just before: on a shared machine the stand-in registers' CPU is CPU the
    worker did not get."""
    rss_kb = sum(procfs.vm_hwm_kb(proc.pid) for proc in procs)
    cpu = sum(procfs.cpu_s(proc.pid) for proc in procs)
    for proc in procs:
        if proc.stdin:
            proc.stdin.close()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {"rss_mb": rss_kb // 1024, "cpu_s": round(cpu, 1)}


def main(argv: list[str] | None = None) -> None:
    """Serve the registers until stdin closes or SIGTERM/SIGINT."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("state_root", type=Path)
    ap.add_argument("--first", type=int, default=0, help="index of the first register (names reg<i>)")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--receipt-ms", type=int, default=1000, help="the register's time to close a receipt")
    ap.add_argument("--model", choices=("shtrih", "jsontcp"), default="shtrih")
    args = ap.parse_args(argv)
    started = [_start(args.model, str(args.state_root / f"reg{i}"), f"{i + 1:016d}", args.receipt_ms / 1000)
               for i in range(args.first, args.first + args.count)]
    servers = [srv for _, srv in started]
    print(json.dumps({"urls": [url for url, _ in started]}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    for s in servers:
        s.stop()


if __name__ == "__main__":
    main()
