"""What runs beside the lanes: the HTTP endpoints, alerts, shop callbacks, systemd notify/watchdog.

Built from the settings by :func:`start_ops`; every part is optional and none of them is on the
fiscal path: a failing webhook or a broken page never delays a receipt. The background thread
wakes every second, runs what is due, and logs (never raises) what failed.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Sequence

from worker.defaults import WATCHDOG_STUCK_SECONDS
from worker.ledger.store import Ledger
from worker.ops import systemd
from worker.ops.alerts import Alerter, Sink, SmtpSink, WebhookSink
from worker.ops.callbacks import ShopCallbacks
from worker.ops.health import Thresholds
from worker.ops.http import OpsServer
from worker.ops.metrics import WorkerMetrics
from worker.ops.service import install_ops_routes
from worker.ops.snapshot import take_snapshot
from worker.settings import Settings, secret_from_env

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0


def thresholds(settings: Settings) -> Thresholds:
    """The health thresholds from ``health.*``."""
    h = settings.health
    return Thresholds(heartbeat_stale_s=h.heartbeat_stale_s, lane_paused_s=h.lane_paused_s,
                      fn_expiry_days=h.fn_expiry_days, ofd_backlog_days=h.ofd_backlog_days,
                      clock_skew_s=h.clock_skew_s, min_free_bytes=h.min_free_mb * 1024 * 1024,
                      gap_window_days=h.gap_window_days)


def alert_sinks(settings: Settings) -> list[Sink]:
    """The configured alert sinks (none: conditions are only shown by status and /readyz)."""
    a = settings.alerts
    sinks: list[Sink] = []
    if a.webhook_url:
        sinks.append(WebhookSink(a.webhook_url, secret=secret_from_env(a.webhook_secret_env)))
    if a.smtp_host and a.smtp_from and a.smtp_to:
        sinks.append(SmtpSink(a.smtp_host, a.smtp_port, a.smtp_from, a.smtp_to, user=a.smtp_user,
                              password=secret_from_env(a.smtp_password_env)))
    return sinks


class OpsRunner:
    """The HTTP server plus one background thread for alerts, callbacks and the watchdog."""

    def __init__(self, settings: Settings, ledger: Ledger, loops_alive: Callable[[], bool],
                 stop: threading.Event, *, mount: Callable[[OpsServer, Thresholds], None] | None = None) -> None:
        self.settings = settings
        self.ledger = ledger
        self.stop = stop
        self.thresholds = thresholds(settings)
        self.metrics = WorkerMetrics(lambda: take_snapshot(ledger), self.thresholds)
        self.server: OpsServer | None = None
        self.alerter = Alerter(ledger, alert_sinks(settings), self.thresholds)
        cb = settings.callbacks
        secret = secret_from_env(cb.secret_env) if cb.url else None
        if cb.url and not secret:
            log.error("callbacks.url is set but %s is empty: shop callbacks are off", cb.secret_env)
        self.callbacks = ShopCallbacks(ledger, cb.url, secret, zone=settings.source.timezone) \
            if cb.url and secret else None
        self.watchdog = systemd.Watchdog(loops_alive)
        self.mount = mount   # more pages on the same server (the accountant's web view, from worker.app)
        self._thread: threading.Thread | None = None

    def start(self) -> "OpsRunner":
        h = self.settings.http
        if h.enabled:
            self.server = OpsServer(h.bind, token=secret_from_env(h.token_env))
            install_ops_routes(self.server, self.ledger, self.metrics, self.thresholds)
            if self.mount is not None:
                self.mount(self.server, self.thresholds)
            self.server.start()
        self._thread = threading.Thread(target=self._loop, name="ops", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        due: dict[str, float] = {"alerts": 0.0, "callbacks": 0.0}
        intervals = {"alerts": self.settings.alerts.interval_s, "callbacks": self.settings.callbacks.interval_s}
        while not self.stop.wait(TICK_SECONDS):
            self.watchdog.tick()
            now = time.monotonic()
            for name, run in (("alerts", self.alerter.run_once),
                              ("callbacks", self.callbacks.run_once if self.callbacks else None)):
                if run is None or now < due[name]:
                    continue
                due[name] = now + intervals[name]
                try:
                    run()
                except Exception as exc:  # never let operations take the worker down
                    log.warning("%s run failed: %s", name, exc)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.callbacks is not None:
            self.callbacks.close()


def loops_alive(beats: Sequence[Callable[[], float]], stuck_s: float = WATCHDOG_STUCK_SECONDS) -> Callable[[], bool]:
    """A check for the watchdog: every loop turned within *stuck_s* (monotonic beat functions)."""
    def alive() -> bool:
        now = time.monotonic()
        return all(now - beat() < stuck_s for beat in beats)
    return alive
