"""Emulated registers behind their real wire protocol, found by driver name.

Every driver package ships an emulator server on the one register model
(:class:`~kkt_drivers.emulator.model.RegisterModel`) and a ``start_emulator`` function with this
signature::

    start_emulator(state_dir, *, host="127.0.0.1", port=0, faults=None, seed=None, fsync=True,
                   **options) -> RunningEmulator

It serves in a background thread and returns how to reach it. The CLI's ``emulator serve`` and the
driver contract suite take their emulators from :data:`EMULATORS`, so a new register model is one
driver package plus one line here.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any, Callable

from kkt_drivers.emulator.model import RegisterModel
from kkt_drivers.errors import DriverConfigError

#: driver name → ``module:function`` starting its emulator (imported lazily)
EMULATORS: dict[str, str] = {
    "emulator": "kkt_drivers.emulator.driver:start_emulator",
    "shtrih": "kkt_drivers.shtrih.server:start_emulator",
    "shtrih-nano": "kkt_drivers.shtrih.server:start_nano_emulator",
    "kkmserver": "kkt_drivers.kkmserver.server:start_emulator",
    "atol-online": "kkt_drivers.atol_online.server:start_emulator",
    "jsontcp": "kkt_drivers.jsontcp.server:start_emulator",
    "atol": "kkt_drivers.atol.server:start_emulator",
}


@dataclass
class RunningEmulator:
    """A started emulator: the register URL a driver opens, the model behind it, how to stop it."""

    #: the register URL for :func:`kkt_drivers.registry.open_driver` (production-like timeouts)
    url: str
    #: the register model: the ground truth tests compare with
    model: RegisterModel
    #: stop serving and release the port; idempotent
    stop: Callable[[], None]
    #: the same register with short timeouts, for tests that inject faults (defaults to ``url``)
    test_url: str = ""
    #: the server object, for tests that need its knobs (drop clients, delays)
    server: Any = None

    def __post_init__(self) -> None:
        if not self.test_url:
            self.test_url = self.url


def emulator_names() -> list[str]:
    """Names of every driver that ships an emulator."""
    return sorted(EMULATORS)


def start_emulator(name: str, state_dir: str | os.PathLike[str], **kwargs: Any) -> RunningEmulator:
    """Start the emulator of driver *name* (see the module header for the keyword arguments)."""
    try:
        target = EMULATORS[name]
    except KeyError:
        raise DriverConfigError(f"no emulator named {name!r} (known: {', '.join(emulator_names())})") from None
    module_name, _, func = target.partition(":")
    return getattr(importlib.import_module(module_name), func)(str(state_dir), **kwargs)
