"""The Shtrih emulator driven by an independent client, pyshtrih 2.0.6, over TCP.

pyshtrih has no URL support; per the reference (recipe A) its serial object is replaced by
``serial.serial_for_url("socket://…")``. pyshtrih 2.0.6 has no FF45/FF46 methods: those go raw
through ``dev.protocol.command`` (which does not check the error byte for unknown answers).
unilog 2.0.0 needs the ``collections`` shim to print responses on Python >= 3.10.
"""
from __future__ import annotations

import collections
import collections.abc
from decimal import Decimal

import pytest

collections.Mapping = collections.abc.Mapping  # type: ignore[attr-defined]
collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]
pyshtrih = pytest.importorskip("pyshtrih")
serial = pytest.importorskip("serial")

from kkt_drivers.receipt import Vat  # noqa: E402
from kkt_drivers.shtrih import codes  # noqa: E402
from kkt_drivers.shtrih import messages as m


@pytest.fixture
def dev(make_server):
    srv = make_server(serial="0000000000004242")
    device = pyshtrih.ShtrihAllCommands(port=srv.url, timeout=2)
    device.protocol.serial = serial.serial_for_url(srv.url, do_not_open=True, timeout=2, write_timeout=2)
    device.connect()  # ENQ/NAK handshake, then FC
    device.server = srv
    yield device
    device.disconnect()


def test_pyshtrih_reads_device_type_and_both_statuses(dev) -> None:
    assert dev.model()["Название устройства"] == "ШТРИХ-М-01Ф"
    assert dev.model()["Модель устройства"] == 250
    st = dev.state()
    assert st["Режим ФР"].state == (4, 0) and st["Подрежим ФР"].state == 0  # shift closed, paper present
    full = dev.full_state()
    assert full["Заводской номер"] == 4242 and full["Порт ФР"] == 128
    fs = dev.fs_state()
    assert fs["Номер ФН"].decode() == dev.server.model.status().fn_serial and fs["Номер последнего ФД"] == 0
    assert fs["Состояние смены"] == "смена закрыта"
    assert dev.fs_info_exchange()["Количество сообщений для ОФД"] == 0  # FF39: nothing unsent


def test_pyshtrih_shift_and_sale_flow(dev) -> None:
    dev.open_shift()
    shift = dev.fs_shift_params()
    assert shift["Номер смены"] == 1 and shift["Состояние смены"] == "смена открыта"
    dev.open_check(0)
    item = m.encode_operation_v2(m.OperationV2(
        operation=1, quantity=Decimal(2), price=Decimal("10.00"), amount=None, tax=codes.tax_byte(Vat.VAT22),
        department=1, payment_method=4, payment_subject=1, name="Товар"))
    assert dev.protocol.command(0xFF46, dev.admin_password, bytearray(item)) == bytearray([0])
    dev.send_tlv_struct(pyshtrih.FD({1008: "buyer@example.ru"}).dump())
    slots = [0] * 16
    slots[0] = 2000
    close = m.encode_close_receipt(m.CloseReceipt(payments=tuple(slots), tax_system=1))
    answer = bytes(dev.protocol.command(0xFF45, dev.admin_password, bytearray(close)))
    assert answer[0] == 0
    closed = m.decode_close_answer(answer[1:])
    assert closed.fd_number == 2
    found = dev.fs_find_document_by_num(2)
    assert found["Тип фискального документа"] == 3
    doc = m.decode_found_document(bytes([3, 1]) + bytes(found["Данные фискального документа"]))
    assert doc.total == Decimal("20.00") and doc.fiscal_sign == closed.fiscal_sign
    stored = dev.server.model.document(2)
    assert stored["requisites"]["1008"] == "buyer@example.ru" and stored["items"][0]["vat"] == 11
    assert dev.fs_state()["Номер последнего ФД"] == 2
    dev.z_report()
    assert dev.state()["Режим ФР"].state == (4, 0)


def test_pyshtrih_sees_vendor_errors(dev) -> None:
    with pytest.raises(pyshtrih.Error) as e:
        dev.beep()  # 0x13 is not implemented by the emulator
    assert e.value.code == 0x37
    dev.open_shift()
    with pytest.raises(pyshtrih.Error) as e:
        dev.open_shift()
    assert e.value.code == 0x3C
    dev.open_check(0)
    with pytest.raises(pyshtrih.Error) as e:
        dev.z_report()  # pyshtrih polls 0x10 first; the register is in mode 8 (receipt open)
    assert e.value.code == 0x4A
    dev.cancel_check()
    assert dev.state()["Режим ФР"].state == (2, 0)


def test_pyshtrih_reads_fn_validity_and_tables(dev) -> None:
    """FF03 and 1F decoded by pyshtrih's own handlers (an independent reading of the layouts)."""
    valid = dev.fs_expiration_time()["Срок действия"]
    assert valid.year >= 2026
    assert dev.read_table(17, 1, 71, int)["Значение"] == 2      # VAT 22 % substitution off
    assert dev.read_table(1, 1, 14, int)["Значение"] == 0       # the register computes VAT sums
    assert dev.read_table(6, 11, 1, int)["Значение"] == 2200    # row 11 = 22 %
    dev.write_table(17, 1, 71, 1, int)
    assert dev.read_table(17, 1, 71, int)["Значение"] == 1


def test_pyshtrih_reads_the_shift_registers(dev) -> None:
    """pyshtrih's own 1Ah/1Bh decoders read what our driver reads (an independent reading)."""
    dev.open_shift()
    dev.open_check(0)
    item = m.encode_operation_v2(m.OperationV2(
        operation=1, quantity=Decimal(1), price=Decimal("12.34"), amount=None, tax=codes.tax_byte(Vat.VAT22),
        department=1, payment_method=4, payment_subject=1, name="Товар"))
    assert dev.protocol.command(0xFF46, dev.admin_password, bytearray(item)) == bytearray([0])
    close = m.encode_close_receipt(m.CloseReceipt(payments=tuple([1234] + [0] * 15), tax_system=1))
    dev.protocol.command(0xFF45, dev.admin_password, bytearray(close))
    assert dev.request_monetary_register(193)["Содержимое регистра"] == 1234     # sale, cash, kopecks
    assert dev.request_monetary_register(197)["Содержимое регистра"] == 0        # sale, payment type 2
    assert dev.request_operational_register(144)["Содержимое регистра"] == 1     # sale receipts
