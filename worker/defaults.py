"""Every default in one place, each a named constant with its unit."""
from __future__ import annotations

# -- polling the shop ----------------------------------------------------------------------
POLL_INTERVAL_SECONDS = 1.0          # idle wait between polls (Marten uses 1 s)
POLL_BATCH_SIZE = 500                # rows per poll; bounded memory
GAP_TIMEOUT_SECONDS = 3600.0         # a missing id is given up after 1 h (GitLab Geo: 1 h)
GAP_MAX_SPAN = 10_000                # a larger jump in ids is not tracked id by id (alert instead)
SWEEP_INTERVAL_SECONDS = 600.0       # anti-entropy: how often the last ids below the cursor are re-read
SWEEP_WINDOW_IDS = 10_000            # ... and how many of them
SOURCE_CONNECT_TIMEOUT_SECONDS = 5
SOURCE_READ_TIMEOUT_SECONDS = 30
SOURCE_WRITE_TIMEOUT_SECONDS = 30

# -- retries -------------------------------------------------------------------------------
MAX_ATTEMPTS = 12                    # transient failures before a receipt is "failed" (~a day)
RETRY_BASE_SECONDS = 30.0            # first retry after 15..30 s (equal jitter)
RETRY_CAP_SECONDS = 3600.0           # never wait longer than 1 h between attempts
DEVICE_PAUSE_SECONDS = 30.0          # a lane waits this long after paper out / cover open / FN error
SOURCE_BACKOFF_CAP_SECONDS = 30.0    # the poller's longest wait while the shop DB is down
LEDGER_RETRY_SECONDS = 60.0          # how long a ledger write is retried in-process (tenacity)

# -- reconciliation ------------------------------------------------------------------------
RECONCILE_MAX_DOCUMENTS = 50         # more documents after the intent than this → needs review
LANE_IDLE_SECONDS = 0.5              # a lane's sleep when nothing is due
WAITING_RECHECK_SECONDS = 1.0        # a receipt waiting for its sale/prepayment is looked at again after this

# -- shifts --------------------------------------------------------------------------------
SHIFT_MAX_HOURS = 24                 # 54-FZ: a shift may not last longer

# -- operations ----------------------------------------------------------------------------
HTTP_BIND = "127.0.0.1:9464"         # /metrics, /healthz, /readyz (9464: Prometheus exporters' range)
HEARTBEAT_STALE_SECONDS = 90.0       # no lane heartbeat for this long → the worker is down
LANE_PAUSED_ALERT_SECONDS = 600.0    # a lane paused longer than this needs a person
ALERT_INTERVAL_SECONDS = 30.0        # how often the worker evaluates and delivers alerts

# -- ledger --------------------------------------------------------------------------------
SQLITE_BUSY_TIMEOUT_MS = 10_000
LEDGER_URL = "sqlite:///var/ledger.db"
