"""CPU of the Shtrih-M driver per receipt, against emulated registers in another process.

    .venv/bin/python -m bench.shtrih_cpu --receipts 200                     # one driver, no latency
    .venv/bin/python -m bench.shtrih_cpu --lanes 50 --receipts 10 --latency-ms 1000   # many lanes
    .venv/bin/python -m bench.shtrih_cpu --lanes 200 --hosts 4 --receipts 5 --latency-ms 1000  # bench.pool's farm
    .venv/bin/python -m bench.shtrih_cpu --receipts 200 --profile 30        # + cProfile (CPU time) on stderr

Starts ``--lanes`` Shtrih-M emulators in ``--hosts`` ``bench.farm_hosts`` processes (their CPU is not counted)
and drives each from its own thread, as the worker's lanes do: open a shift, then ``fiscalize()`` per
receipt (which reads the document back) and ``status()`` before every ``--status-every``-th receipt
(a lane reuses a status read for ``STATUS_REUSE_SECONDS``, 30 receipts at the farm's 1 s per receipt).
``--latency-ms`` delays each register's FF45 answer as ``bench.pool``'s farm does (1000 there): waiting
must not cost CPU. Prints one JSON object: this process's CPU ms per receipt (user and system), wall
ms per receipt of one lane, and the exchanges (ENQ … ACK rounds) per receipt. ``--url`` measures one
lane against a register already running (e.g. ``kkt-worker emulator serve``).
"""
from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import resource
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal

from kkt_drivers.receipt import Item, Operation, Payment, PaymentType, Receipt, TaxSystem, Vat
from kkt_drivers.shtrih.driver import ShtrihDriver


def _receipt(tag: str) -> Receipt:
    return Receipt(operation=Operation.SALE, tax_system=TaxSystem.USN_INCOME,
                   items=(Item("Книга", Decimal("450.00"), Decimal("2"), Decimal("900.00"), Vat.NONE),
                          Item("Доставка", Decimal("300.00"), Decimal("1"), Decimal("300.00"), Vat.NONE)),
                   payments=(Payment(PaymentType.ELECTRONIC, Decimal("1200.00")),), tag=tag,
                   customer_contact="+79990000000", settlement_place="https://shop.example")


class _Lane:
    """One driver and its receipts, run in a thread."""

    def __init__(self, url: str, name: str) -> None:
        self.name = name
        self.drv = ShtrihDriver.from_url(url)
        self.exchanges = 0
        self.error: BaseException | None = None
        link = self.drv._link
        original = link.exchange

        def counted(*a: object, **kw: object):  # type: ignore[no-untyped-def]
            self.exchanges += 1
            return original(*a, **kw)

        link.exchange = counted  # type: ignore[method-assign]

    def prepare(self) -> None:
        self.drv.connect()
        if not self.drv.status().shift_open:
            self.drv.open_shift()
        self.drv.fiscalize(_receipt(f"{self.name}-warmup"))
        self.exchanges = 0

    def run(self, receipts: int, status_every: int, go: threading.Event) -> None:
        go.wait()
        try:
            for i in range(receipts):
                if i % status_every == 0:
                    self.drv.status()
                self.drv.fiscalize(_receipt(f"{self.name}-{i}"))
        except BaseException as exc:  # noqa: BLE001 - reported in the JSON, not swallowed
            self.error = exc


def main(argv: list[str] | None = None) -> None:
    """Run the measurement and print JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--receipts", type=int, default=200, help="receipts per lane")
    ap.add_argument("--lanes", type=int, default=1, help="registers, one driver thread each")
    ap.add_argument("--hosts", type=int, default=1, help="register host processes (bench.pool's farm uses 4)")
    ap.add_argument("--latency-ms", type=int, default=0, help="the register's FF45 answer delay")
    ap.add_argument("--status-every", type=int, default=30, metavar="N", help="status() before every N-th receipt")
    ap.add_argument("--url", help="one lane against this register (shtrih+socket://…) instead of starting any; "
                    "its shift is opened if closed")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="print cProfile's top N (CPU time, one lane only) to stderr")
    args = ap.parse_args(argv)
    if args.profile and args.lanes != 1:
        ap.error("--profile needs --lanes 1")
    hosts: list[subprocess.Popen] = []
    if not args.url:
        state = tempfile.mkdtemp(prefix="bench-shtrih-cpu-")
        per = -(-args.lanes // args.hosts)
        hosts = [subprocess.Popen([sys.executable, "-m", "bench.farm_hosts", state, "--first", str(first),
                                   "--count", str(min(per, args.lanes - first)), "--receipt-ms", str(args.latency_ms),
                                   "--model", "shtrih"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for first in range(0, args.lanes, per)]
    try:
        urls = [args.url] if args.url else []
        for host in hosts:
            assert host.stdout is not None
            urls += json.loads(host.stdout.readline())["urls"]
        lanes = [_Lane(url, f"b{n}") for n, url in enumerate(urls)]
        for lane in lanes:
            lane.prepare()
        go = threading.Event()
        threads = [threading.Thread(target=lane.run, args=(args.receipts, args.status_every, go))
                   for lane in lanes[1:]]
        for t in threads:
            t.start()
        # thread CPU time, not wall time: waiting in poll() must not count as cost
        prof = cProfile.Profile(time.thread_time) if args.profile else None
        wall0, ru0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        go.set()
        if prof:
            prof.enable()
        lanes[0].run(args.receipts, args.status_every, go)   # the first lane in this thread
        if prof:
            prof.disable()
        for t in threads:
            t.join()
        ru1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - wall0
        for lane in lanes:
            lane.drv.disconnect()
    finally:
        for host in hosts:
            assert host.stdin is not None
            host.stdin.close()
        for host in hosts:
            host.wait(timeout=60)
    user, system = ru1.ru_utime - ru0.ru_utime, ru1.ru_stime - ru0.ru_stime
    n = args.receipts * len(lanes)
    errors = [f"{lane.name}: {lane.error!r}" for lane in lanes if lane.error is not None]
    print(json.dumps({"lanes": len(lanes), "receipts": n, "latency_ms": args.latency_ms,
                      "status_every": args.status_every, "profiled": bool(prof),
                      "cpu_ms_per_receipt": round((user + system) / n * 1000, 3),
                      "user_ms_per_receipt": round(user / n * 1000, 3),
                      "system_ms_per_receipt": round(system / n * 1000, 3),
                      "lane_wall_ms_per_receipt": round(wall / args.receipts * 1000, 2),
                      "exchanges_per_receipt": round(sum(lane.exchanges for lane in lanes) / n, 2),
                      "errors": errors}))
    if prof:
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
