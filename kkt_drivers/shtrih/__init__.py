"""Shtrih-M (ШТРИХ-М) registers: the binary protocol, a driver and a protocol-level emulator.

* :mod:`.protocol` — frames, LRC, field encodings (pure, testable on bytes);
* :mod:`.messages` — per-command payload encoders/decoders (pure);
* :mod:`.codes` — the register's error codes mapped to our error classes; VAT → tax byte;
* :mod:`.text` — the one decision for characters the code pages lack (transliterate or reject);
* :mod:`.link` — the host side of ENQ/ACK/NAK over a :mod:`kkt_drivers.transport` stream;
* :mod:`.driver` — :class:`~kkt_drivers.shtrih.driver.ShtrihDriver` (URL ``shtrih+socket://…``);
* :mod:`.emulation` — the command set on top of :class:`~kkt_drivers.emulator.model.RegisterModel`;
* :mod:`.server` — a TCP server speaking the same bytes, with wire-level fault injection
  (``python -m kkt_drivers.shtrih.server STATE_DIR --port 7778``).
"""
