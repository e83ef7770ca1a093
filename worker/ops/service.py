"""The operations routes on the worker's HTTP server: metrics, liveness and readiness."""
from __future__ import annotations

import json

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.ledger.store import Ledger
from worker.ops.health import CRITICAL, Thresholds, evaluate
from worker.ops.http import OpsServer, Response
from worker.ops.metrics import WorkerMetrics
from worker.ops.snapshot import take_snapshot

JSON = "application/json; charset=utf-8"


def install_ops_routes(server: OpsServer, ledger: Ledger, metrics: WorkerMetrics, thresholds: Thresholds) -> None:
    """``/metrics`` (Prometheus text), ``/healthz`` (the process answers), ``/readyz`` (nothing critical)."""

    def metrics_page(_query: dict[str, list[str]]) -> Response:
        return 200, CONTENT_TYPE_LATEST, generate_latest(metrics.registry)

    def healthz(_query: dict[str, list[str]]) -> Response:
        return 200, "text/plain; charset=utf-8", b"ok\n"

    def readyz(_query: dict[str, list[str]]) -> Response:
        problems = evaluate(take_snapshot(ledger, heartbeat_stale_s=thresholds.heartbeat_stale_s), thresholds)
        critical = [p for p in problems if p.severity == CRITICAL]
        body = json.dumps({"ready": not critical,
                           "problems": [{"key": p.key, "severity": p.severity, "message": p.message}
                                        for p in problems]}, ensure_ascii=False).encode()
        return (503 if critical else 200), JSON, body

    server.route("/metrics", metrics_page)
    server.route("/healthz", healthz)
    server.route("/readyz", readyz)
