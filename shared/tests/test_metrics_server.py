"""The side port of workers and relays: /readyz tells the truth, with details."""

from __future__ import annotations

import httpx

from kaiku_shared.metrics_server import start_metrics_server


def test_readyz_says_why_a_worker_is_not_ready() -> None:
    state = {"paused": ["venues-card-validity"]}
    server = start_metrics_server(0, "127.0.0.1", ready=lambda: (
        not state["paused"], {"paused": state["paused"], "lag": {"venues-card-validity": 7}}))
    try:
        url = f"http://127.0.0.1:{server.port}/readyz"
        answer = httpx.get(url)
        assert answer.status_code == 503
        assert answer.json() == {"status": "not ready", "paused": ["venues-card-validity"],
                                 "lag": {"venues-card-validity": 7}}
        state["paused"] = []  # the database is back
        answer = httpx.get(url)
        assert answer.status_code == 200 and answer.json()["status"] == "ready"
        assert httpx.get(f"http://127.0.0.1:{server.port}/healthz").status_code == 200
    finally:
        server.stop()


def test_a_plain_or_failing_check_still_answers() -> None:
    plain = start_metrics_server(0, "127.0.0.1", ready=lambda: True)
    failing = start_metrics_server(0, "127.0.0.1", ready=lambda: 1 / 0)
    try:
        assert httpx.get(f"http://127.0.0.1:{plain.port}/readyz").json() == {"status": "ready"}
        assert httpx.get(f"http://127.0.0.1:{failing.port}/readyz").status_code == 503
    finally:
        plain.stop()
        failing.stop()
