"""ATOL Online (cloud fiscalization, API v5 / FFD 1.2): a driver and an HTTP(S) emulator.

* :mod:`.protocol` — receipt → JSON body, external_id, error codes → our error classes (pure);
* :mod:`.driver` — :class:`~kkt_drivers.atol_online.driver.AtolOnlineDriver` (URL ``atol-online+https://…``);
* :mod:`.server` — the service's API on the shared register model, with faults
  (``python -m kkt_drivers.atol_online.server STATE_DIR --port 8090``).
"""
