"""The web app for unit tests, without the services."""

from __future__ import annotations

import pytest

pytest.importorskip("web", reason="kaiku-web is not installed (pip install -e services/web)")


@pytest.fixture
def client():
    """The web app in a test client. The services' URLs point at a closed port:
    pages that need them show "not available yet" instead of failing, unless a
    test puts its own fake on ``client.app.state.services``."""
    from fastapi.testclient import TestClient

    from kaiku_shared.settings import KaikuSettings
    from web.app import create_app
    from web.config import WebSettings

    web = WebSettings(cards_url="http://127.0.0.1:9", venues_url="http://127.0.0.1:9",
                      omakaiku_url="http://127.0.0.1:9",
                      notifications_url="http://127.0.0.1:9", api_timeout_seconds=2,
                      session_secret="unit-test-session-secret-" + "x" * 32)
    with TestClient(create_app(KaikuSettings(), web)) as client:
        yield client
