"""/metrics, /healthz and /readyz served from a real ledger (SQLite and PostgreSQL)."""
from __future__ import annotations

import datetime as dt

import httpx
import pytest

from worker.errors import ConfigError
from worker.ledger.store import Ledger, utcnow
from worker.ops.health import Thresholds
from worker.ops.http import OpsServer
from worker.ops.metrics import WorkerMetrics
from worker.ops.service import install_ops_routes
from worker.ops.snapshot import take_snapshot

from .test_ledger import entry


def serve(ledger: Ledger, **kw) -> tuple[OpsServer, WorkerMetrics]:
    metrics = WorkerMetrics(lambda: take_snapshot(ledger), Thresholds())
    server = OpsServer("127.0.0.1:0", **kw)
    install_ops_routes(server, ledger, metrics, Thresholds())
    return server.start(), metrics


def test_metrics_show_states_lanes_and_problems(ledger: Ledger) -> None:
    ledger.add_payments([entry(1), entry(2)])
    ledger.lane_heartbeat("kkt1", state="running", fn_serial="9999078900001234", last_fd=7, shift_open=True)
    server, metrics = serve(ledger)
    metrics.receipt_finished("done", 0.8)
    metrics.receipt_finished("transient")
    try:
        body = httpx.get(f"http://127.0.0.1:{server.port}/metrics").text
    finally:
        server.stop()
    assert 'kkt_receipts{state="queued"} 2.0' in body
    assert 'kkt_receipts{state="done"} 0.0' in body
    assert "kkt_worker_up 1.0" in body and 'kkt_lane_up{register="kkt1"} 1.0' in body
    assert 'kkt_attempts_total{outcome="transient"} 1.0' in body
    assert "kkt_receipt_latency_seconds_count 1.0" in body


def test_readyz_says_503_with_the_reasons_when_the_worker_is_down(ledger: Ledger) -> None:
    ledger.lane_heartbeat("kkt1", state="running")
    server, _ = serve(ledger)
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert httpx.get(f"{base}/healthz").status_code == 200
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 200, ready.text
        with ledger.write() as conn:  # the heartbeat goes stale: as after kill -9
            from worker.ledger.schema import lanes
            conn.execute(lanes.update().values(heartbeat_at=utcnow() - dt.timedelta(minutes=5)))
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503 and "worker_down" in ready.text
        assert "kkt_worker_up 0.0" in httpx.get(f"{base}/metrics").text
    finally:
        server.stop()


def test_a_token_is_required_beyond_loopback_and_checked(ledger: Ledger) -> None:
    with pytest.raises(ConfigError, match="http.token_env"):
        OpsServer("0.0.0.0:0")
    server, _ = serve(ledger, token="s3cret")
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert httpx.get(f"{base}/metrics").status_code == 401
        assert httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.get(f"{base}/healthz").status_code == 200  # liveness needs no secret
    finally:
        server.stop()
