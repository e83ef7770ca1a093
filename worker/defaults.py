"""Every default in one place, each a named constant with its unit.

settings.py's dataclasses and the CLI's options take their defaults from here and nowhere else.
"""
from __future__ import annotations

# -- polling the shop ----------------------------------------------------------------------
SOURCE_URL = "sqlite:///var/demo-shop.db"   # the demo shop (``kkt-worker demo init``)
SOURCE_PASSWORD_ENV = "KKT_SOURCE_PASSWORD"  # environment variable holding the shop password
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
SOURCE_BACKOFF_MIN_SECONDS = 0.5     # ... and its first wait (doubled on every failure)
BURST_POLL_SECONDS = 0.2             # with --burst: the wait between polls while draining
LEDGER_RETRY_SECONDS = 60.0          # how long a ledger write is retried in-process (tenacity)

# -- reconciliation ------------------------------------------------------------------------
RECONCILE_MAX_DOCUMENTS = 50         # more documents after the intent than this → needs review
LANE_IDLE_SECONDS = 0.5              # a lane's sleep when nothing is due (single-receipt callers)

# -- the register pool ---------------------------------------------------------------------
DEFAULT_REGISTER_GROUP = "default"   # the group of registers and payments when routing says nothing
LANE_IDLE_MAX_SECONDS = 30.0         # an idle lane looks at the queue at least this often (doorbell otherwise)
LANE_HEARTBEAT_SECONDS = 15.0        # lane states are written on change or this often (all in one transaction)
LANE_PROBE_BASE_SECONDS = 1.0        # an unhealthy register is re-probed after 1, 2, 4 … s
STATUS_REUSE_SECONDS = 30.0          # a register status read is reused this long while receipts succeed
SHIFT_MARGIN_SECONDS = 300.0         # … but re-read this close to the shift's 24 h limit

# -- registers and shifts ------------------------------------------------------------------
REGISTER_NAME = "kkt1"                             # the one register of the embedded defaults
REGISTER_URL = "emulator:var/emulator/kkt1"        # ... an emulated one, for a first run
SHIFT_MAX_HOURS = 24                 # 54-FZ: a shift may not last longer
SHIFT_AUTO_OPEN = True               # open a shift before the first receipt
SHIFT_CLOSE_EXPIRED = True           # close a shift over 24 h (Z report) instead of pausing the lane

# -- operations ----------------------------------------------------------------------------
LANE_HEALTH_SECONDS = 300.0          # how often a lane records FN validity, OFD backlog and clock skew
WATCHDOG_STUCK_SECONDS = 300.0       # a lane or the poller not turning for this long: stop petting systemd
HTTP_BIND = "127.0.0.1:9464"         # /metrics, /healthz, /readyz (9464: Prometheus exporters' range)
HEARTBEAT_STALE_SECONDS = 90.0       # no lane heartbeat for this long → the worker is down
LANE_PAUSED_ALERT_SECONDS = 600.0    # a lane paused longer than this needs a person
ALERT_INTERVAL_SECONDS = 30.0        # how often the worker evaluates and delivers alerts

# -- ledger --------------------------------------------------------------------------------
SQLITE_BUSY_TIMEOUT_MS = 10_000
LEDGER_URL = "sqlite:///var/ledger.db"
LEDGER_PASSWORD_ENV = "KKT_LEDGER_PASSWORD"

# -- logging and the command line ----------------------------------------------------------
LOG_LEVEL = "INFO"
LOG_FORMAT = "text"                  # text | json
SETTINGS_FILE = "/etc/kkt-worker/settings.yaml"  # read when -c / KKT_CONFIG is not given
LEDGER_LIST_LIMIT = 200              # rows ``ledger list`` shows unless --limit says otherwise
ERROR_PREVIEW_CHARS = 80             # ... and the characters of each error it shows
STATUS_GAPS_SHOWN = 20               # gap ids ``status`` lists before "…"
EMULATOR_HOST = "127.0.0.1"          # emulators listen on loopback only unless told otherwise
DEMO_SALES = 12                      # sales ``demo init`` writes
DEMO_FEED_SECONDS = 3.0              # ``demo feed``: seconds between new payments

# -- operations: health thresholds, alerts, callbacks ----------------------------------------
HTTP_TOKEN_ENV = "KKT_HTTP_TOKEN"    # the HTTP bearer token's environment variable (or ..._FILE)
FN_EXPIRY_WARN_DAYS = 30             # the FN expires within this many days: a person must act
OFD_BACKLOG_ALERT_DAYS = 3.0         # documents not sent to the OFD for longer than this
CLOCK_SKEW_ALERT_SECONDS = 60.0      # the register's clock differs from ours by more than this
MIN_FREE_DISK_MB = 200               # free space left for the ledger below this
GAP_ALERT_WINDOW_DAYS = 7.0          # expired gaps within this window are shown as a condition
ALERT_WEBHOOK_SECRET_ENV = "KKT_ALERT_WEBHOOK_SECRET"
ALERT_SMTP_PASSWORD_ENV = "KKT_ALERT_SMTP_PASSWORD"
SMTP_PORT = 587                      # submission port (STARTTLS)
CALLBACK_SECRET_ENV = "KKT_CALLBACK_SECRET"
CALLBACK_INTERVAL_SECONDS = 2.0      # how often due shop callbacks are sent

# -- fencing and adoption ------------------------------------------------------------------
LEASE_TTL_SECONDS = 60.0             # a register lease lives this long without renewal (server clock); a crashed
                                     #   holder on another host is taken over after this long (same host: at once)
# -- cluster (several workers on one PostgreSQL ledger, docs/cluster.md) --------------------------
CLUSTER_IDLE_TX_MIN_SECONDS = 2.0    # the server ends a session idle inside a transaction after half a lease,
CLUSTER_IDLE_TX_MAX_SECONDS = 5.0    #   within these bounds (a frozen worker must not hold a lease row's lock;
                                     #   nor a session whose client vanished unseen by the server: every write
                                     #   of the worker waits for it, so seconds, not half a minute)
LEDGER_LOCK_TIMEOUT_SECONDS = 5.0    # a PostgreSQL ledger write waits at most this long for a row lock, then fails
                                     #   (and is retried): never for ever behind a session nobody will finish
INGEST_LEASE = "ingest:shop"         # the ingest lease's name in register_leases (':' is never in a register name)
ADOPTION_MAX_SCAN_DOCUMENTS = 1000   # more unexamined register documents than this wait for `kkt-worker adopt`
LEDGER_MIN_FREE_MB = 100             # below this much free space on the ledger's disk, ingest pauses
