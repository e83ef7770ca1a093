"""Fixtures: an emulated Shtrih-M register on a free TCP port, and drivers pointed at it."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Iterator

import pytest

from kkt_drivers.receipt import Item, Operation, Payment, PaymentType, Receipt, TaxSystem, Vat
from kkt_drivers.shtrih.driver import ShtrihDriver
from kkt_drivers.shtrih.server import ShtrihEmulatorServer

#: short timeouts keep fault tests fast; the emulator answers in well under a millisecond
FAST = "timeout=1&status_timeout=0.4&long_timeout=3&byte_timeout=0.3"


@pytest.fixture
def make_server(tmp_path: Any) -> Iterator[Callable[..., ShtrihEmulatorServer]]:
    """Start emulators (each in its own state dir); all are stopped at teardown."""
    servers: list[ShtrihEmulatorServer] = []

    def make(**kwargs: Any) -> ShtrihEmulatorServer:
        kwargs.setdefault("fsync", False)
        srv = ShtrihEmulatorServer(str(tmp_path / f"reg{len(servers)}"), "127.0.0.1", 0, **kwargs)
        servers.append(srv.start())
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def make_driver() -> Iterator[Callable[..., ShtrihDriver]]:
    """Connected drivers for a server; disconnected at teardown."""
    drivers: list[ShtrihDriver] = []

    def make(server: ShtrihEmulatorServer, options: str = FAST) -> ShtrihDriver:
        host, port = server.address
        drv = ShtrihDriver.from_url(f"shtrih+socket://{host}:{port}?{options}")
        drv.connect()
        drivers.append(drv)
        return drv

    yield make
    for drv in drivers:
        drv.disconnect()


def sale(tag: str = "pay-1", operation: Operation = Operation.SALE, vat: Vat = Vat.VAT22) -> Receipt:
    """A two-line internet receipt paid electronically."""
    return Receipt(
        operation=operation, tax_system=TaxSystem.OSN,
        items=(Item("Чайник электрический", Decimal("1500.00"), Decimal("1"), Decimal("1500.00"), vat),
               Item("Доставка", Decimal("99.90"), Decimal("2"), Decimal("199.80"), Vat.VAT20)),
        payments=(Payment(PaymentType.ELECTRONIC, Decimal("1699.80")),),
        tag=tag, customer_contact="buyer@example.ru", settlement_place="https://shop.example")
