"""How long reading a register's own shift counters takes, per driver, against its emulator.

Prints one JSON object: for each driver, the milliseconds of ``shift_totals`` for the open shift and
for the shift just closed (Z report), after N receipts, and whether the closed shift's were available.
Shtrih reads 68 registers (1Ah/1Bh) for an open shift; ATOL and KKMServer wait for their service's
answer (poll interval), so their numbers are mostly the poll.

    .venv/bin/python -m bench.counters --receipts 20
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from decimal import Decimal

from kkt_drivers.emulators import start_emulator
from kkt_drivers.receipt import Item, Operation, Payment, PaymentType, Receipt, TaxSystem, Vat
from kkt_drivers.registry import open_driver

DRIVERS = ("emulator", "shtrih", "atol", "kkmserver", "jsontcp")


def _receipt(tag: str) -> Receipt:
    return Receipt(operation=Operation.SALE, tax_system=TaxSystem.USN_INCOME,
                   items=(Item("Книга", Decimal("450.00"), Decimal("2"), Decimal("900.00"), Vat.NONE),),
                   payments=(Payment(PaymentType.ELECTRONIC, Decimal("900.00")),), tag=tag,
                   customer_contact="+79990000000", settlement_place="https://shop.example")


def measure(name: str, receipts: int) -> dict[str, object]:
    """Time ``shift_totals`` on driver *name* before and after the Z report."""
    emu = start_emulator(name, tempfile.mkdtemp(prefix=f"bench-counters-{name}-"), fsync=False)
    drv = open_driver(emu.url)
    try:
        drv.connect()
        drv.open_shift()
        for i in range(receipts):
            drv.fiscalize(_receipt(f"b{i}"))
        t0 = time.perf_counter()
        running = drv.shift_totals(1)
        t1 = time.perf_counter()
        drv.close_shift()
        t2 = time.perf_counter()
        final = drv.shift_totals(1)
        t3 = time.perf_counter()
    finally:
        drv.disconnect()
        emu.stop()
    return {"open_shift_ms": round((t1 - t0) * 1000, 1), "closed_shift_ms": round((t3 - t2) * 1000, 1),
            "sale_counter": str(running.amount("sale")) if running else None,
            "closed_shift_available": final is not None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--receipts", type=int, default=20, help="receipts in the shift before reading")
    args = ap.parse_args()
    print(json.dumps({"receipts": args.receipts, "drivers": {n: measure(n, args.receipts) for n in DRIVERS}}))


if __name__ == "__main__":
    main()
