"""``kkt-worker drivers`` says what each driver can do: the listing must agree with the driver a URL opens
(an ATOL on Web Requests finds a receipt by our key, one on libfptr cannot)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kkt_drivers.base import CAPABILITY_FLAGS
from kkt_drivers.registry import driver_class, open_driver
from worker.cli.main import cli

URLS = [
    "emulator:{tmp}/reg",
    "shtrih+socket://127.0.0.1:7778",
    "atol+http://127.0.0.1:16732?device_id=kkt1",
    "atol+libfptr:///opt/atol/libfptr10.so",
    "kkmserver+http://127.0.0.1:5893?num_device=1",
    "jsontcp://127.0.0.1:7790?login=kassa&password_env=KASSA_PASSWORD&connection_password_env=KASSA_PASSWORD",
    "atol-online+https://online.example/possystem/v5?login=l&password_env=P&group=g&inn=7701234567"
    "&payment_address=shop.example",
    "memory://caps",
]


@pytest.mark.parametrize("url", URLS, ids=lambda u: u.split(":")[0])
def test_the_listed_capabilities_are_the_opened_drivers(url: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KASSA_PASSWORD", "secret")
    monkeypatch.setenv("P", "secret")
    url = url.format(tmp=tmp_path)
    scheme = url.split(":")[0]
    drv = open_driver(url)   # built, not connected
    assert driver_class(url).capabilities(scheme) == {flag: bool(getattr(drv, flag)) for flag in CAPABILITY_FLAGS}


def test_drivers_lists_each_scheme_with_what_it_can_do() -> None:
    out = CliRunner().invoke(cli, ["drivers", "--output", "json"])
    assert out.exit_code == 0, out.output
    caps = {d["scheme"]: d["capabilities"] for d in json.loads(out.output)["drivers"]}
    assert caps["atol+http"]["lookup_by_key"] and not caps["atol+libfptr"]["lookup_by_key"]
    assert not caps["atol-online+https"]["reads_documents"] and not caps["atol-online+https"]["reads_counters"]
    assert caps["shtrih+socket"] == {"reads_documents": True, "lookup_by_key": False, "reads_counters": True,
                                     "supports_marking": True}
    text = CliRunner().invoke(cli, ["drivers"]).output
    assert any(line.startswith("atol+libfptr://") and line.endswith("documents counters marking")
               for line in text.splitlines()), text
