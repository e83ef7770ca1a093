"""Register hosts for the out-of-process farm figure: many emulated Shtrih-M registers in ONE process.

    .venv/bin/python -m bench.farm_hosts STATE_ROOT --first 0 --count 50 --receipt-ms 1000

Starts ``count`` :class:`~kkt_drivers.shtrih.server.ShtrihEmulatorServer` instances (one TCP port
each, any free port, state in ``STATE_ROOT/reg<i>``, serial ``<i>`` zero-padded to 16 digits, journal
not fsync'ed: it is the device, not the worker). Only the receipt's close (FF45, where a real
register prints and signs) waits ``receipt_ms``: the register's own latency, as the in-process figure's
``receipt_latency_ms``. Prints one JSON line ``{"urls": [...]}`` on stdout once every port listens, then
serves until stdin closes or SIGTERM. ``kkt-worker emulator serve`` hosts one register per process; 200
such processes would cost ~200 × 40 MB, so the benchmark runs a handful of these instead.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from kkt_drivers.shtrih import protocol as p
from kkt_drivers.shtrih.server import ShtrihEmulatorServer


def main(argv: list[str] | None = None) -> None:
    """Serve the registers until stdin closes or SIGTERM/SIGINT."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("state_root", type=Path)
    ap.add_argument("--first", type=int, default=0, help="index of the first register (names reg<i>)")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--receipt-ms", type=int, default=1000, help="the register's time to close a receipt")
    args = ap.parse_args(argv)
    servers = []
    for i in range(args.first, args.first + args.count):
        # idle_timeout_s=None: a lane that waits for work longer than 2 min must not find its link cut
        srv = ShtrihEmulatorServer(str(args.state_root / f"reg{i}"), serial=f"{i + 1:016d}", fsync=False,
                                   answer_delay_s=args.receipt_ms / 1000, idle_timeout_s=None)
        srv.delayed_commands = {p.FN_CLOSE_RECEIPT}
        servers.append(srv.start())
    print(json.dumps({"urls": [f"shtrih+socket://{h}:{prt}" for h, prt in (s.address for s in servers)]}),
          flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    for s in servers:
        s.stop()


if __name__ == "__main__":
    main()
