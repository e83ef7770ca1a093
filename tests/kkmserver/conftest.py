"""Fixtures: the KKMServer emulator on a free port, a raw JSON client, a sample receipt."""
from __future__ import annotations

import base64
import http.client
import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from kkt_drivers.kkmserver.server import KkmEmulatorServer
from kkt_drivers.receipt import Item, Operation, Payment, PaymentType, Receipt, TaxSystem, Vat


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., KkmEmulatorServer]]:
    """Start emulators (each in its own state dir); all are stopped at teardown."""
    servers: list[KkmEmulatorServer] = []

    def make(**kwargs: Any) -> KkmEmulatorServer:
        kwargs.setdefault("fsync", False)
        srv = KkmEmulatorServer(str(tmp_path / f"kkm{len(servers)}"), "127.0.0.1", 0, **kwargs)
        servers.append(srv.start())
        return srv

    yield make
    for srv in servers:
        srv.stop()


def post_raw(server: KkmEmulatorServer, body: bytes, *, path: str = "/Execute",
             auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    """POST *body* with the standard library only (no code of ours on the client side)."""
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def execute(server: KkmEmulatorServer, command: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """Send one hand-written command; the answer parsed with the standard json module."""
    status, body = post_raw(server, json.dumps(command, ensure_ascii=False).encode(), **kw)
    assert status == 200, (status, body)
    return json.loads(body, parse_float=Decimal)


def sale(tag: str = "order-1", operation: Operation = Operation.SALE) -> Receipt:
    return Receipt(
        operation=operation, tax_system=TaxSystem.USN_INCOME,
        items=(Item("Книга", Decimal("450.00"), Decimal("2"), Decimal("900.00"), Vat.NONE),
               Item("Доставка", Decimal("300.00"), Decimal("1"), Decimal("300.00"), Vat.VAT22)),
        payments=(Payment(PaymentType.ELECTRONIC, Decimal("1200.00")),),
        tag=tag, customer_contact="+79990000000", settlement_place="https://shop.example")
