"""What the FN check of marked goods costs on ATOL: receipts through the emulated Web Requests service.

    .venv/bin/python -m bench.atol_marking --receipts 10 --codes 1,4 [--poll-s 0.25]

For each number of codes per receipt it fiscalizes ``--receipts`` receipts with the ATOL driver
(Web Requests over HTTP to the emulator in this process) and reports the wall time per receipt and the
Web Requests requests per receipt (every marking step is a request of its own: the check runs before
the receipt, strictly serial), next to the same receipts without codes. The emulated register answers
at once, so the figures are the protocol's round trips and our polling, not a real ФН-М or ОИСМ.
Requests per receipt with n codes: n + 3 (work state + clear, [previous accept +] begin + status per
code, the last accept) plus the receipt itself. The emulator rewrites its whole request store on
every status change, so its time per request grows with the requests it keeps (2 receipts of 16
codes: ~1.1 s each; 10 of them: ~4.8 s median): compare requests, not only milliseconds.

Prints ONE JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from decimal import Decimal
from typing import Any

from kkt_drivers import marking as mk
from kkt_drivers.atol.server import AtolEmulatorServer
from kkt_drivers.receipt import Item, Operation, Payment, PaymentSubject, PaymentType, Receipt, TaxSystem, Vat
from kkt_drivers.registry import open_driver


def _receipt(tag: str, codes: list[bytes], plain_units: int) -> Receipt:
    items = [Item(f"Товар {n}", Decimal("10.00"), Decimal("1"), Decimal("10.00"), Vat.VAT22,
                  payment_subject=PaymentSubject.MARKED_COMMODITY, marking_code=code)
             for n, code in enumerate(codes)]
    items += [Item(f"Пакет {n}", Decimal("10.00"), Decimal("1"), Decimal("10.00"), Vat.VAT22)
              for n in range(plain_units)]
    total = sum((i.amount for i in items), Decimal(0))
    return Receipt(operation=Operation.SALE, tax_system=TaxSystem.OSN, items=tuple(items),
                   payments=(Payment(PaymentType.ELECTRONIC, total),), tag=tag,
                   customer_contact="buyer@example.com", settlement_place="https://shop.example")


def run(receipts: int, code_counts: list[int], poll_s: float) -> dict[str, Any]:
    """Fiscalize the receipts, each case on a fresh emulator (its request store grows with every
    request it keeps, which would otherwise be measured too); timings and request counts per case."""
    out: dict[str, Any] = {"receipts_per_case": receipts, "poll_s": poll_s, "cases": []}
    serial = 0
    for n_codes in code_counts:
        for marked in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                srv = AtolEmulatorServer(os.path.join(tmp, "atol"), fsync=False).start()
                try:
                    host, port = srv.address
                    drv = open_driver(f"atol+http://{host}:{port}?timeout=5&fiscal_timeout=30&status_timeout=30"
                                      f"&poll_s={poll_s}&marking_poll_s={poll_s}")
                    drv.connect()
                    drv.open_shift()
                    times: list[float] = []
                    before = len(srv.service.requests)
                    for _ in range(receipts):
                        serial += 1
                        codes = [mk.build_gs1("04650194496163", f"B{serial:05d}{k:03d}", check_code="dGVz")
                                 for k in range(n_codes)] if marked else []
                        r = _receipt(f"b{serial}", codes, 0 if marked else n_codes)
                        started = time.perf_counter()
                        drv.fiscalize(r)
                        times.append(time.perf_counter() - started)
                    requests = len(srv.service.requests) - before
                    drv.disconnect()
                finally:
                    srv.stop()
            out["cases"].append({
                "units": n_codes, "marked": marked,
                "ms_per_receipt_median": round(statistics.median(times) * 1000, 1),
                "ms_per_receipt_max": round(max(times) * 1000, 1),
                "requests_per_receipt": round(requests / receipts, 2)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--receipts", type=int, default=10)
    ap.add_argument("--codes", default="1,4", help="codes per receipt, comma-separated")
    ap.add_argument("--poll-s", type=float, default=0.25, help="the driver's poll_s and marking_poll_s")
    args = ap.parse_args()
    print(json.dumps(run(args.receipts, [int(x) for x in args.codes.split(",")], args.poll_s), indent=2))


if __name__ == "__main__":
    main()
