"""Choose a driver by the URL scheme of a register's address.

URL grammar (each driver documents its own options in its module header)::

    emulator:///var/lib/kkt-worker/emulator?serial=EMU0001&latency_ms=20&fail_before_send=0.1
    shtrih+socket://127.0.0.1:7778?password=30&timeout=5
    shtrih+serial:///dev/ttyUSB0?baudrate=115200
    shtrih+rfc2217://host:port
    kkmserver+http://127.0.0.1:5893?num_device=1&password_env=KKT_KKM_PASSWORD
    atol-online+https://online.atol.ru/possystem/v5?login=…&password_env=ATOL_ONLINE_PASSWORD&group=…&inn=…
    jsontcp://127.0.0.1:7790?login=kassa&password_env=KASSA_PASSWORD&connection_password_env=KASSA_CONN

Third-party drivers register under the ``kkt_drivers`` entry-point group: the entry point's name
is the scheme, its value ``module:Class`` whose ``from_url(url)`` builds the driver. Modules are
imported lazily so a shop without pyserial-backed registers never imports them.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from urllib.parse import urlsplit

from kkt_drivers.base import Driver
from kkt_drivers.errors import DriverConfigError

BUILTIN_DRIVERS: dict[str, str] = {
    "emulator": "kkt_drivers.emulator.driver:EmulatorDriver",
    "shtrih": "kkt_drivers.shtrih.driver:ShtrihDriver",
    "shtrih+socket": "kkt_drivers.shtrih.driver:ShtrihDriver",
    "shtrih+serial": "kkt_drivers.shtrih.driver:ShtrihDriver",
    "shtrih+rfc2217": "kkt_drivers.shtrih.driver:ShtrihDriver",
    "shtrih+spy": "kkt_drivers.shtrih.driver:ShtrihDriver",
    "kkmserver+http": "kkt_drivers.kkmserver.driver:KkmServerDriver",
    "kkmserver+https": "kkt_drivers.kkmserver.driver:KkmServerDriver",
    "atol-online+https": "kkt_drivers.atol_online.driver:AtolOnlineDriver",
    "atol-online+http": "kkt_drivers.atol_online.driver:AtolOnlineDriver",
    "jsontcp": "kkt_drivers.jsontcp.driver:JsonTcpDriver",
    "atol+http": "kkt_drivers.atol.driver:AtolDriver", "atol+https": "kkt_drivers.atol.driver:AtolDriver", "atol+libfptr": "kkt_drivers.atol.driver:AtolDriver",
    "memory": "kkt_drivers.memory:MemoryDriver",
}

ENTRY_POINT_GROUP = "kkt_drivers"


def _target(scheme: str) -> str:
    if scheme in BUILTIN_DRIVERS:
        return BUILTIN_DRIVERS[scheme]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == scheme:
            return ep.value
    known = ", ".join(sorted(BUILTIN_DRIVERS))
    raise DriverConfigError(f"unknown register URL scheme {scheme!r} (known: {known})")


def driver_class(url: str) -> type[Driver]:
    """The driver class for *url*; DriverConfigError for an unknown scheme."""
    scheme = urlsplit(url).scheme
    if not scheme:
        raise DriverConfigError(f"register URL {url!r} has no scheme (e.g. emulator:///path)")
    module_name, _, cls_name = _target(scheme).partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, cls_name)


def open_driver(url: str) -> Driver:
    """Build (not connect) the driver for *url*."""
    return driver_class(url).from_url(url)  # type: ignore[attr-defined]
