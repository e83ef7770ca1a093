"""An example third-party driver: the emulated register under its own URL scheme ``example:``.

A real one would speak its register's protocol here (one module) and ship an emulator beside it;
everything the worker needs is the :class:`kkt_drivers.base.Driver` interface and ``from_url``.
"""
from __future__ import annotations

from kkt_drivers.emulator.driver import EmulatorDriver


class ExampleDriver(EmulatorDriver):
    """``example:/path/to/state`` — behaves like the built-in emulator, reports its own model name."""

    model = "example"

    #: shown by ``kkt-worker drivers``
    url_forms = ("example:/path/to/state-dir",)

    @classmethod
    def from_url(cls, url: str) -> "ExampleDriver":
        base = EmulatorDriver.from_url("emulator:" + url.split(":", 1)[1])
        return cls(base.register, latency_s=base.latency_s)
