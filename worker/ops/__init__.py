"""Operating the worker: what needs a person (health), metrics and health endpoints, alerts, systemd.

| module      | job                                                                        |
|-------------|----------------------------------------------------------------------------|
| ``health``  | the conditions that need a person, evaluated from a ledger snapshot (pure)  |
| ``metrics`` | Prometheus metrics: ledger gauges read at scrape time, in-process counters  |
| ``http``    | the worker's small HTTP server: /metrics, /healthz, /readyz (more routes later) |
| ``alerts``  | one message per condition when it starts and one when it ends, retried      |
| ``systemd`` | sd_notify: READY, WATCHDOG (only while every loop is alive), RELOADING, STOPPING |

This room reads the ledger and the settings; the fiscal path never waits for it.
"""
