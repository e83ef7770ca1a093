"""Shared fixtures for the ATOL tests: a sample receipt and an emulated Web Requests service."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from kkt_drivers.atol.server import AtolEmulatorServer
from kkt_drivers.receipt import Item, Operation, Payment, PaymentType, Receipt, TaxSystem, Vat


def sample_receipt(tag: str = "order-1", operation: Operation = Operation.SALE, **kw: Any) -> Receipt:
    return Receipt(
        operation=operation, tax_system=TaxSystem.USN_INCOME,
        items=(Item("Книга", Decimal("450.00"), Decimal("2"), Decimal("900.00"), Vat.NONE),
               Item("Доставка", Decimal("300.00"), Decimal("1"), Decimal("300.00"), Vat.VAT22)),
        payments=(Payment(PaymentType.ELECTRONIC, Decimal("1200.00")),),
        tag=tag, customer_contact="+79990000000", settlement_place="https://shop.example", **kw)


@pytest.fixture
def atol_server(tmp_path: Path) -> Iterator[Callable[..., AtolEmulatorServer]]:
    """``atol_server(faults={...}, **options)`` → a started emulator (stopped after the test)."""
    started: list[AtolEmulatorServer] = []

    def start(faults: dict[str, str] | None = None, state: str = "atol", **options: Any) -> AtolEmulatorServer:
        options.setdefault("block_s", 0.2)
        srv = AtolEmulatorServer(str(tmp_path / state), faults_options=faults, fsync=False, **options).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def base_url(srv: AtolEmulatorServer) -> str:
    host, port = srv.address
    return f"http://{host}:{port}/api/v2"


def driver_url(srv: AtolEmulatorServer, options: str = "") -> str:
    host, port = srv.address
    return f"atol+http://{host}:{port}?timeout=2&fiscal_timeout=5&status_timeout=5&poll_s=0.02{options}"
