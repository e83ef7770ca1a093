"""A register behind a length-prefixed JSON bridge over TCP (the "Kassa No.1" bridge style).

* ``PROTOCOL.md`` — the wire protocol, for a shop that wants its bridge to speak it;
* :mod:`.protocol` — framing and codecs (pure);
* :mod:`.driver` — :class:`~kkt_drivers.jsontcp.driver.JsonTcpDriver` (URL ``jsontcp://HOST:PORT?…``);
* :mod:`.server` — the emulator on the shared register model
  (``python -m kkt_drivers.jsontcp.server STATE_DIR --port 7790``).
"""
