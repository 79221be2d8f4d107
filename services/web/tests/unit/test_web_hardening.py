"""KAIKU_ENV=production: Secure cookies, HSTS, a session key of its own; and a
Content-Security-Policy without 'unsafe-eval' in every mode."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kaiku_shared.settings import KaikuSettings

pytest.importorskip("web", reason="kaiku-web is not installed (pip install -e services/web)")

from web.app import create_app  # noqa: E402
from web.config import WebSettings  # noqa: E402

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "web" / "templates"
SESSION_SECRET = "a-session-secret-of-forty-characters-xxxx"


def _web(**overrides) -> WebSettings:
    closed = "http://127.0.0.1:9"  # no service: pages say "not available"
    return WebSettings(cards_url=closed, venues_url=closed, omakaiku_url=closed,
                       notifications_url=closed, api_timeout_seconds=2,
                       session_secret=SESSION_SECRET, **overrides)


@pytest.fixture(params=["development", "production"])
def mode(request) -> str:
    return request.param


@pytest.fixture
def client(mode: str):
    with TestClient(create_app(KaikuSettings(env=mode), _web())) as client:
        yield client


def _cookies(response) -> list[str]:
    return response.headers.get_list("set-cookie")


def test_hsts_and_secure_cookies_only_in_production(client, mode: str) -> None:
    signin = client.get("/oma/signin")  # sets the CSRF cookie
    lang = client.get("/lang/sv", follow_redirects=False)  # sets the language cookie
    cookies = _cookies(signin) + _cookies(lang)
    assert {c.split("=")[0] for c in cookies} == {"kaiku_csrf", "kaiku_lang"}
    if mode == "production":
        assert signin.headers["Strict-Transport-Security"] == "max-age=31536000"
        assert all("; secure" in c.lower() for c in cookies), cookies
        assert client.app.state.sessions.secure  # the session cookie too
    else:
        assert "Strict-Transport-Security" not in signin.headers
        assert not any("secure" in c.lower() for c in cookies), cookies


def test_the_csp_allows_only_the_sites_own_scripts(client) -> None:
    csp = client.get("/").headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert "unsafe" not in csp
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"


def test_the_pages_need_no_eval_and_no_inline_script() -> None:
    """Why the CSP can drop 'unsafe-eval' and never needed 'unsafe-inline': htmx
    is told not to evaluate code, and no template carries script in markup."""
    base = (TEMPLATES / "base.html").read_text()
    config = json.loads(re.search(r"name=\"htmx-config\" content='([^']+)'", base).group(1))
    assert config["allowEval"] is False
    assert config["includeIndicatorStyles"] is False  # an inline <style> would be refused
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template
        assert not re.search(r"\son[a-z]+\s*=|javascript:|hx-on|js:|\sstyle=", text), template
        # Event filters (hx-trigger="click[ctrlKey]") are evaluated code too.
        for trigger in re.findall(r'hx-trigger="([^"]*)"', text):
            assert "[" not in trigger, (template, trigger)


@pytest.mark.parametrize("secret", [None, "too-short"])
def test_production_wants_a_session_secret_of_its_own(secret) -> None:
    web = _web().model_copy(update={"session_secret": secret})
    with pytest.raises(SystemExit, match="KAIKU_WEB_SESSION_SECRET"):
        create_app(KaikuSettings(env="production"), web)
