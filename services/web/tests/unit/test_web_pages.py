"""The web's own rules, without the services: catalogues, the guideline hint,
cookies and CSRF. (Flows against the real services are in tests/browser/.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("web", reason="kaiku-web is not installed (pip install -e services/web)")

from web.client import Answer  # noqa: E402
from web.i18n import LANGUAGES, catalogue  # noqa: E402
from web.routes.venue_desk import looks_like_mobile_card, refusal_key  # noqa: E402
from web.session import SESSION_COOKIE  # noqa: E402

WEB = Path(__file__).resolve().parents[2] / "src" / "web"


def test_every_language_has_every_message():
    keys = {lang: set(catalogue(lang)) for lang in LANGUAGES}
    assert keys["fi"] == keys["sv"] == keys["en"]
    for lang in LANGUAGES:
        empty = [k for k, v in catalogue(lang).items() if not v.strip()]
        assert not empty, (lang, empty)


def test_every_message_a_template_names_is_in_the_catalogue():
    used = set()
    for path in [*WEB.joinpath("templates").rglob("*.html"), *WEB.rglob("*.py")]:
        source = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_.]+)["']""", source))
        used |= set(re.findall(r"""_key\s*=\s*["']([a-z_]+\.[a-z_.]+)["']""", source))
    missing = sorted(used - set(catalogue("fi")))
    assert not missing, missing


def guideline_rule(capacity: int, kind: str) -> str:
    """The rule venues names beside its minimum (its own test proves venues' side)."""
    if kind == "course":
        return "course"
    return "mass-event" if capacity > 1000 else "share"


class CardCapVenues:
    """Venues' card-cap minimum route, answering from a table (anything else: down)."""

    def __init__(self, minimums: dict[tuple[int, str], int]) -> None:
        self.minimums = minimums
        self.asked: list[tuple[dict[str, Any] | None, str | None]] = []

    async def call(self, service: str, method: str, path: str, *, token: str | None = None,
                   params: dict[str, Any] | None = None, **_: Any) -> Answer:
        if (service, method, path) != ("venues", "GET", "/offerings/card-cap-minimum"):
            return Answer(503, {"title": "Service unavailable"})
        self.asked.append((params, token))
        key = (params["capacity"], params["kind"])
        if key not in self.minimums:
            return Answer(422, {"detail": "bad input"})
        return Answer(200, {"capacity": key[0], "kind": key[1],
                            "minimum_card_cap": self.minimums[key],
                            "rule": guideline_rule(*key)})

    async def close(self) -> None:
        pass


def signed_in_as_venue(client) -> None:
    session = {"token": "venue-token", "role": "venue", "org": "o"}
    client.cookies.set(SESSION_COOKIE, client.app.state.sessions.serializer.dumps(session))


def test_the_card_cap_hint_explains_venues_minimum_in_the_chosen_language(client):
    venues = CardCapVenues({(1500, "performance"): 20, (300, "performance"): 9,
                            (1000, "performance"): 30, (40, "course"): 1})
    client.app.state.services = venues
    signed_in_as_venue(client)
    client.cookies.set("kaiku_lang", "sv")
    hint = client.get("/staff/guideline", params={"capacity": "1500", "card_cap": "5"}).text
    assert "Minst 20 kortplatser" in hint and "Över 1 000 platser" in hint
    assert "höj till minst 20" in hint
    # The number is venues' answer, asked with the staff member's own token.
    assert venues.asked[0] == ({"capacity": 1500, "kind": "performance"}, "venue-token")
    client.cookies.set("kaiku_lang", "en")
    ok = client.get("/staff/guideline", params={"capacity": "300", "card_cap": "9"}).text
    assert "At least 9 card places" in ok and "warning" not in ok
    assert "(3 % rounded up.)" in ok
    # 1,000 places is not yet a mass event: the share explains venues' 30.
    share = client.get("/staff/guideline", params={"capacity": "1000", "card_cap": ""}).text
    assert "At least 30 card places" in share and "(3 % rounded up.)" in share
    assert "Over 1,000" not in share
    course = client.get("/staff/guideline", params={"capacity": "40", "kind": "course"}).text
    assert "At least 1 card places" in course and "(Course: at least one place.)" in course


def test_the_card_cap_hint_shows_no_number_when_venues_cannot_say(client):
    explain = catalogue("fi")["guideline.explain"]
    # Not signed in: venues is not asked at all.
    venues = CardCapVenues({})
    client.app.state.services = venues
    anonymous = client.get("/staff/guideline", params={"capacity": "700", "card_cap": "5"})
    assert anonymous.status_code == 200 and explain in anonymous.text
    assert not venues.asked
    # Venues refuses the numbers: the general rule, no warning, no failure.
    signed_in_as_venue(client)
    refused = client.get("/staff/guideline", params={"capacity": "700", "card_cap": "5"})
    assert refused.status_code == 200 and explain in refused.text
    assert "warning" not in refused.text and venues.asked


def test_the_card_cap_hint_gives_way_when_venues_is_down(client):
    # The services' ports are closed here: the hint shows the rule, not a failure.
    signed_in_as_venue(client)
    hint = client.get("/staff/guideline", params={"capacity": "700", "card_cap": "5"})
    assert hint.status_code == 200
    assert catalogue("fi")["guideline.explain"] in hint.text and "warning" not in hint.text


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
