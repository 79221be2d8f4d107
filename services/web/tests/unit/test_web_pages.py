"""The web's own rules, without the services: catalogues, the guideline hint,
cookies and CSRF. (Flows against the real services are in tests/browser/.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kaiku_shared.settings import KaikuSettings

pytest.importorskip("web", reason="kaiku-web is not installed (pip install -e services/web)")

from web.app import (  # noqa: E402
    create_app,
    looks_like_mobile_card,
    minimum_card_cap,
    refusal_key,
)
from web.client import Answer  # noqa: E402
from web.config import WebSettings  # noqa: E402
from web.i18n import LANGUAGES, catalogue  # noqa: E402

WEB = Path(__file__).resolve().parents[2] / "src" / "web"


@pytest.fixture
def client():
    # The services' URLs point at a closed port: pages that need them show
    # "not available yet" instead of failing.
    web = WebSettings(cards_url="http://127.0.0.1:9", venues_url="http://127.0.0.1:9",
                      omakaiku_url="http://127.0.0.1:9",
                      notifications_url="http://127.0.0.1:9", api_timeout_seconds=2,
                      session_secret="unit-test-session-secret-" + "x" * 32)
    app = create_app(KaikuSettings(), web)
    with TestClient(app) as client:
        yield client


def test_every_language_has_every_message():
    keys = {lang: set(catalogue(lang)) for lang in LANGUAGES}
    assert keys["fi"] == keys["sv"] == keys["en"]
    for lang in LANGUAGES:
        empty = [k for k, v in catalogue(lang).items() if not v.strip()]
        assert not empty, (lang, empty)


def test_every_message_a_template_names_is_in_the_catalogue():
    used = set()
    for path in [*WEB.joinpath("templates").rglob("*.html"), *WEB.glob("*.py")]:
        source = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_.]+)["']""", source))
        used |= set(re.findall(r"""_key\s*=\s*["']([a-z_]+\.[a-z_.]+)["']""", source))
    missing = sorted(used - set(catalogue("fi")))
    assert not missing, missing


@pytest.mark.parametrize(("capacity", "kind", "minimum"), [
    (100, "performance", 3), (700, "performance", 21), (701, "performance", 22),
    (1000, "performance", 30), (1001, "performance", 20), (5000, "performance", 20),
    (10, "performance", 1), (40, "course", 1)])
def test_guideline_minimum_card_cap(capacity, kind, minimum):
    assert minimum_card_cap(capacity, kind) == minimum


def test_the_card_cap_hint_explains_the_rule_in_the_chosen_language(client):
    client.cookies.set("kaiku_lang", "sv")
    hint = client.get("/staff/guideline", params={"capacity": "1500", "card_cap": "5"}).text
    assert "Minst 20 kortplatser" in hint and "Över 1 000 platser" in hint
    assert "höj till minst 20" in hint
    client.cookies.set("kaiku_lang", "en")
    ok = client.get("/staff/guideline", params={"capacity": "300", "card_cap": "9"}).text
    assert "At least 9 card places" in ok and "warning" not in ok


def test_finnish_is_the_default_and_the_choice_is_remembered(client):
    assert '<html lang="fi">' in client.get("/").text
    chosen = client.get("/lang/sv", params={"next": "/oma/signin"}, follow_redirects=False)
    assert chosen.status_code == 303 and chosen.headers["location"] == "/oma/signin"
    cookie = chosen.headers["set-cookie"]
    assert "kaiku_lang=sv" in cookie and "SameSite=strict" in cookie and "HttpOnly" in cookie
    assert '<html lang="sv">' in client.get("/oma/signin").text
    # Only a path on this site is followed after choosing.
    away = client.get("/lang/en", params={"next": "//evil.example/"}, follow_redirects=False)
    assert away.headers["location"] == "/"


def test_a_form_without_the_csrf_token_is_refused(client):
    page = client.get("/oma/signin")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    refused = client.post("/oma/signin/code", data={"email": "a@example.org"})
    forged = client.post("/oma/signin/code", data={"email": "a@example.org", "csrf": "x" + token})
    assert refused.status_code == 403 and forged.status_code == 403
    # With the token the form is accepted (the service is down here: said so).
    accepted = client.post("/oma/signin/code", data={"email": "a@example.org", "csrf": token})
    assert accepted.status_code == 503
    assert catalogue("fi")["signin.unavailable"] in accepted.text


def test_pages_need_sign_in_and_a_forged_session_is_ignored(client):
    for path in ("/staff", "/staff/cards/new", "/staff/register"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/staff/login"
    for path in ("/oma", "/oma/events", "/oma/history"):
        response = client.get(path, follow_redirects=False)
        assert response.headers["location"] == "/oma/signin"
    client.cookies.set("kaiku_session", "eyJyb2xlIjoia2Fpa3VrZXNrdXMiLCJ0b2tlbiI6IngifQ.x.y")
    assert client.get("/staff", follow_redirects=False).status_code == 303


def test_the_dev_token_form_is_off_unless_configured(client):
    page = client.get("/staff/login")
    assert "/staff/login/token" not in page.text
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = client.post("/staff/login/token", data={"token": "x", "csrf": token})
    assert response.status_code == 404


def test_security_headers(client):
    response = client.get("/")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_desk_tells_a_scanned_mobile_card_from_a_number_and_names_venues_refusals():
    token = "eyJhbGciOiJFZERTQSIsImtpZCI6ImFiYyJ9.eyJjYXJkX251bWJlciI6IktYQS0xMjM0NSJ9.c2ln"
    assert looks_like_mobile_card(token)
    for typed in ("KXA-12345", "kxa12345", "KXA.12345", ""):
        assert not looks_like_mobile_card(typed)

    def problem(status: int, kind: str) -> Answer:
        return Answer(status, {"type": f"https://kaikukortti.fi/problems/{kind}",
                               "detail": "…"})

    assert refusal_key(problem(422, "mobile-card-invalid"), True) == "register.qr_invalid"
    assert refusal_key(problem(422, "mobile-card-expired"), True) == "register.qr_expired"
    assert refusal_key(problem(422, "card-closed"), True) == "register.refused_mobile"
    # A typed number keeps the generic message, which names the number.
    assert refusal_key(problem(422, "card-closed"), False) is None
    assert refusal_key(Answer(201, {"ticket_id": "t"}), True) is None
