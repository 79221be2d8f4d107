"""A small HTTP endpoint for the processes that have no API: worker and relay.

The api processes serve ``/metrics``, ``/healthz`` and ``/readyz`` from FastAPI
(service.py). Workers and relays count events, redeliveries, dead letters and
relay lag in the same prometheus_client registry (metrics.py) but serve nothing,
so nothing can scrape them or probe them. This module gives them the same three
paths on a side port, served from a daemon thread so a busy event loop never
delays a scrape:

    from kaiku_shared.metrics_server import start_metrics_server
    server = start_metrics_server(settings.metrics_port, ready=lambda: runtime_ok)
    ...
    server.shutdown()

``/healthz``  200 while the process runs (liveness).
``/readyz``   200 when ``ready()`` is true, else 503 (readiness); the body also
              says what the process reports: a worker its consumers' lag and
              which are paused by an outage, a relay whether it is the active
              one and its lag.
``/metrics``  the Prometheus text format of the default registry.

run_worker / run_relay (service.py) start it when ``KAIKU_METRICS_PORT`` is set
(deploy/k8s uses 9464). Nothing here reads
personal data; the metric labels never carry any (metrics.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

__all__ = ["MetricsServer", "start_metrics_server"]


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], ready: Callable[[], Any],
                 registry: CollectorRegistry) -> None:
        super().__init__(address, _Handler)
        self.ready = ready
        self.registry = registry
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server_address[1]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._json(200, {"status": "ok"})
        elif path == "/readyz":
            ready, details = self._readiness()
            self._json(200 if ready else 503,
                       {"status": "ready" if ready else "not ready", **details})
        else:
            self._json(404, {"status": "not found"})

    def _readiness(self) -> tuple[bool, dict]:
        """``ready()`` gives a bool, or (bool, what the process wants to say: its
        lag, whether it is paused by an outage, whether it is the active relay)."""
        try:
            answer = self.server.ready()
        except Exception:  # noqa: BLE001 - a failing check means not ready
            return False, {}
        if isinstance(answer, tuple):
            return bool(answer[0]), dict(answer[1])
        return bool(answer), {}

    def _json(self, status: int, body: dict) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return  # scrapes and probes every few seconds: not worth a log line


def start_metrics_server(port: int, host: str = "0.0.0.0", *,
                         ready: Callable[[], Any] = lambda: True,
                         registry: CollectorRegistry = REGISTRY) -> MetricsServer:
    """Serve /metrics, /healthz and /readyz on ``host:port`` from a daemon thread.

    ``port=0`` picks a free port (see ``.port``). ``ready`` is called per probe."""
    server = MetricsServer((host, port), ready, registry)
    server.thread = threading.Thread(target=server.serve_forever, name="kaiku-metrics",
                                     daemon=True)
    server.thread.start()
    return server
