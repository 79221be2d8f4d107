"""The installable OmaKaiku without the services: the manifest and its icons,
the service worker's route, the card page's offline hooks, and the notification
settings against a fake omakaiku (the real browser flow is tests/browser/test_pwa.py)."""

from __future__ import annotations

import json
import re
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("web", reason="kaiku-web is not installed (pip install -e services/web)")

from web.client import Answer  # noqa: E402
from web.i18n import LANGUAGES, catalogue  # noqa: E402
from web.routes.oma import refresh_delay  # noqa: E402
from web.routes.oma_push import device_label, subscription_from  # noqa: E402
from web.session import SESSION_COOKIE  # noqa: E402

STATIC = Path(__file__).resolve().parents[2] / "src" / "web" / "static"
SUB_ID = "3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b"
KEY = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
SUBSCRIPTION = {"endpoint": "https://push.example.org/send/abc", "expirationTime": None,
                "keys": {"p256dh": KEY, "auth": "tBHItJI5svbpez7KI4CCXg"}}


class FakeOmakaiku:
    """omakaiku's push routes from a table; ``push=False`` is an omakaiku without them."""

    def __init__(self, push: bool = True) -> None:
        self.push = push
        self.calls: list[tuple[str, str, Any, str | None]] = []
        self.devices = [{"subscription_id": SUB_ID, "label": "Chrome, Android",
                         "created_at": "2026-12-01T10:00:00+00:00",
                         "endpoint_origin": "https://push.example.org"}]
        self.choices = {"new_offerings": True, "messages": False, "muted": False}
        self.post_status = 201

    async def call(self, service: str, method: str, path: str, *, token: str | None = None,
                   json: Any = None, **_: Any) -> Answer:
        self.calls.append((method, path, json, token))
        if not self.push:
            return Answer(404, {"detail": "Not Found"})
        if (method, path) == ("GET", "/push/public-key"):
            return Answer(200, {"public_key": KEY})
        if (method, path) == ("GET", "/me/push-subscriptions"):
            return Answer(200, {"items": self.devices})
        if path == "/me/push-preferences":
            if method == "PUT":
                self.choices = json
            return Answer(200, self.choices)
        if (method, path) == ("POST", "/me/push-subscriptions"):
            if self.post_status >= 400:
                return Answer(self.post_status, {
                    "type": "https://kaikukortti.fi/problems/validation",
                    "title": "Validation", "status": self.post_status,
                    "detail": "Only https endpoints are accepted."})
            return Answer(self.post_status, {"subscription_id": SUB_ID})
        if (method, path) == ("DELETE", f"/me/push-subscriptions/{SUB_ID}"):
            self.devices = []
            return Answer(204, None)
        return Answer(404, {"detail": "Not Found"})

    async def close(self) -> None:
        pass


def holder(client, services) -> None:
    client.app.state.services = services
    session = {"token": "holder-token", "role": "holder"}
    client.cookies.set(SESSION_COOKIE, client.app.state.sessions.serializer.dumps(session))


def csrf_of(client, path: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# --- the manifest and the service worker ------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_manifest_installs_omakaiku_in_the_chosen_language(client, lang):
    client.cookies.set("kaiku_lang", lang)
    answer = client.get("/manifest.webmanifest")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/manifest+json")
    manifest = answer.json()
    assert manifest["name"] == catalogue(lang)["pwa.name"]
    assert manifest["short_name"] == "OmaKaiku" and len(manifest["short_name"]) <= 12
    assert manifest["lang"] == lang
    assert manifest["start_url"] == "/oma" and manifest["scope"] == "/oma"
    assert manifest["display"] == "standalone"
    for colour in ("theme_color", "background_color"):
        assert re.fullmatch(r"#[0-9a-f]{6}", manifest[colour])
    assert manifest["theme_color"] in (STATIC / "style.css").read_text()


def test_the_manifest_icons_exist_with_the_sizes_they_declare(client):
    icons = client.get("/manifest.webmanifest").json()["icons"]
    purposes = {icon["purpose"] for icon in icons}
    assert {"any", "maskable"} <= purposes
    sizes = {icon["sizes"] for icon in icons if icon["purpose"] == "any"}
    assert {"192x192", "512x512"} <= sizes
    for icon in icons:
        served = client.get(icon["src"])
        assert served.status_code == 200 and served.headers["content-type"] == "image/png"
        width, height = png_size(STATIC / icon["src"].removeprefix("/static/"))
        assert f"{width}x{height}" == icon["sizes"], icon


def test_the_service_worker_is_served_for_the_oma_scope_and_always_revalidated(client):
    answer = client.get("/sw.js")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["service-worker-allowed"] == "/oma"
    assert "addEventListener(\"push\"" in answer.text
    assert "notificationclick" in answer.text
    # it keeps exactly what it names: every shell file is served
    shell = json.loads(re.search(r"SHELL_FILES = (\[[^\]]+\])", answer.text).group(1))
    for path in shell:
        assert client.get(path).status_code == 200, path


def test_pages_link_the_manifest_and_script_for_holders_only(client):
    signin = client.get("/oma/signin").text
    assert '<link rel="manifest" href="/manifest.webmanifest">' in signin
    assert '<script src="/static/oma.js" defer></script>' in signin
    staff = client.get("/staff/login").text
    assert "manifest" not in staff and "oma.js" not in staff


def test_no_inline_script_on_the_new_pages(client):
    holder(client, FakeOmakaiku())
    for path in ("/oma/notifications", "/oma/offline"):
        html = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert not re.search(r"<[^>]+\son[a-z]+=", html), path


def test_the_offline_page_needs_no_sign_in(client):
    answer = client.get("/oma/offline")
    assert answer.status_code == 200
    assert catalogue("fi")["pwa.offline_title"] in answer.text


# --- the card page -----------------------------------------------------------------------


class CardOmakaiku(FakeOmakaiku):
    def __init__(self, card_status: int = 200) -> None:
        super().__init__()
        self.card_status = card_status
        self.expires = datetime.now(UTC) + timedelta(seconds=300)

    async def call(self, service, method, path, **kw):
        if path == "/me/card":
            if self.card_status != 200:
                return Answer(self.card_status, {"title": "Service unavailable"})
            return Answer(200, {"card_number": "KXA-12345", "valid_until": "2027-06-30",
                                "children": 1, "token": "t", "qr_svg": "<svg/>",
                                "expires_at": self.expires.isoformat()})
        if path == "/me/tickets":
            return Answer(200, [])
        return await super().call(service, method, path, **kw)


def test_the_card_page_carries_its_refresh_time_and_hidden_offline_note(client):
    holder(client, CardOmakaiku())
    answer = client.get("/oma")
    assert answer.status_code == 200
    assert answer.headers["x-kaiku-keep"] == "1"
    assert "private" in answer.headers["cache-control"]
    refresh = int(re.search(r'id="mobile-card" data-refresh-in="(\d+)"', answer.text).group(1))
    assert 230 <= refresh <= 240  # a minute before the 300 s token expires
    # the service worker shows the note by this exact replacement (sw.js BANNER_HIDDEN)
    assert " data-offline-banner hidden>" in answer.text
    assert "Päivitetty " in answer.text


def test_a_card_page_without_the_card_is_never_kept_for_offline(client):
    holder(client, CardOmakaiku(card_status=503))
    answer = client.get("/oma")
    assert answer.status_code == 200
    assert "x-kaiku-keep" not in answer.headers
    assert "mobile-card" not in answer.text


def test_the_events_page_is_kept_with_its_time(client):
    holder(client, CardOmakaiku())
    answer = client.get("/oma/events")
    assert answer.headers["x-kaiku-keep"] == "1"
    assert " data-offline-banner hidden>" in answer.text


def test_refresh_delay_is_a_minute_before_expiry_and_never_too_eager():
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    soon = Answer(200, {"expires_at": (now + timedelta(seconds=300)).isoformat()})
    assert refresh_delay(soon, now) == 240
    nearly = Answer(200, {"expires_at": (now + timedelta(seconds=20)).isoformat()})
    assert refresh_delay(nearly, now) == 15
    assert refresh_delay(Answer(200, {}), now) == 60


# --- notification settings ---------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_settings_page_shows_button_devices_and_choices(client, lang):
    client.cookies.set("kaiku_lang", lang)
    fake = FakeOmakaiku()
    holder(client, fake)
    html = client.get("/oma/notifications").text
    texts = catalogue(lang)
    assert texts["push.turn_on"] in html
    # the button's box starts hidden (oma.js shows it); without script a hint says why
    assert re.search(r'<div id="push-turn-on" hidden data-key="' + KEY, html)
    assert f'action="/oma/notifications/devices/{SUB_ID}/remove"' in html
    assert "Chrome, Android" in html and "https://push.example.org" in html
    assert re.search(r'id="p-new" name="new_offerings" checked', html)
    assert re.search(r'id="p-messages" name="messages" >', html)
    # anonymous public key; the holder's token for their own devices
    assert ("GET", "/push/public-key", None, None) in fake.calls
    assert ("GET", "/me/push-subscriptions", None, "holder-token") in fake.calls


def test_without_push_in_omakaiku_the_page_says_so_calmly(client):
    holder(client, FakeOmakaiku(push=False))
    answer = client.get("/oma/notifications")
    assert answer.status_code == 200
    assert catalogue("fi")["push.not_available"] in answer.text
    assert "push-enable" not in answer.text


def test_push_not_configured_in_omakaiku_is_not_available_not_an_outage(client):
    fake = FakeOmakaiku()

    async def not_configured(*args: Any, **kwargs: Any) -> Answer:
        return Answer(503, {"type": "https://kaikukortti.fi/problems/push-not-configured",
                            "title": "Push not configured", "status": 503})

    fake.call = not_configured
    holder(client, fake)
    answer = client.get("/oma/notifications")
    assert answer.status_code == 200
    assert catalogue("fi")["push.not_available"] in answer.text


def test_with_omakaiku_down_the_page_is_a_503(client):
    answer_holder = FakeOmakaiku()

    async def down(*args: Any, **kwargs: Any) -> Answer:
        return Answer(503, {"title": "Service unavailable"})

    answer_holder.call = down
    holder(client, answer_holder)
    answer = client.get("/oma/notifications")
    assert answer.status_code == 503
    assert catalogue("fi")["error.unavailable"] in answer.text


def test_the_preferences_form_puts_all_three_choices(client):
    fake = FakeOmakaiku()
    holder(client, fake)
    token = csrf_of(client, "/oma/notifications")
    answer = client.post("/oma/notifications/preferences",
                         data={"csrf": token, "messages": "on", "muted": "on"})
    assert answer.status_code == 200
    put = [c for c in fake.calls if c[0] == "PUT"]
    assert put == [("PUT", "/me/push-preferences",
                    {"new_offerings": False, "messages": True, "muted": True}, "holder-token")]
    assert catalogue("fi")["push.saved"] in answer.text


def test_forms_without_the_csrf_token_are_refused(client):
    fake = FakeOmakaiku()
    holder(client, fake)
    assert client.post("/oma/notifications/preferences", data={"muted": "on"}).status_code == 403
    assert client.post(f"/oma/notifications/devices/{SUB_ID}/remove").status_code == 403
    assert client.post("/oma/notifications/devices", json=SUBSCRIPTION).status_code == 403
    assert [c for c in fake.calls if c[0] != "GET"] == []


def test_removing_a_device_deletes_it_in_omakaiku(client):
    fake = FakeOmakaiku()
    holder(client, fake)
    token = csrf_of(client, "/oma/notifications")
    answer = client.post(f"/oma/notifications/devices/{SUB_ID}/remove", data={"csrf": token})
    assert answer.status_code == 200
    assert ("DELETE", f"/me/push-subscriptions/{SUB_ID}", None, "holder-token") in fake.calls
    assert catalogue("fi")["push.removed"] in answer.text
    assert f"/devices/{SUB_ID}/remove" not in answer.text
    bad = client.post("/oma/notifications/devices/not-an-id/remove", data={"csrf": token})
    assert bad.status_code == 404


def test_a_subscription_is_forwarded_with_the_holders_token(client):
    fake = FakeOmakaiku()
    holder(client, fake)
    token = csrf_of(client, "/oma/notifications")
    answer = client.post("/oma/notifications/devices", json=SUBSCRIPTION, headers={
        "X-CSRF-Token": token, "User-Agent": "Mozilla/5.0 (Linux; Android 14) Chrome/131.0"})
    assert answer.status_code == 201
    assert answer.json() == {"subscription_id": SUB_ID}
    sent = [c for c in fake.calls if c[0] == "POST"]
    assert sent == [("POST", "/me/push-subscriptions",
                     {**SUBSCRIPTION, "label": "Chrome, Android"}, "holder-token")]
    fake.post_status = 200  # the same subscription again: the same id
    again = client.post("/oma/notifications/devices", json=SUBSCRIPTION,
                        headers={"X-CSRF-Token": token})
    assert again.status_code == 200 and again.json() == {"subscription_id": SUB_ID}


def test_omakaiku_refusing_a_subscription_is_passed_on_as_a_problem(client):
    fake = FakeOmakaiku()
    fake.post_status = 422
    holder(client, fake)
    token = csrf_of(client, "/oma/notifications")
    answer = client.post("/oma/notifications/devices", json=SUBSCRIPTION,
                         headers={"X-CSRF-Token": token})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == "Only https endpoints are accepted."


def test_omakaiku_without_push_makes_forwarding_a_503_problem(client):
    fake = FakeOmakaiku()
    holder(client, fake)
    token = csrf_of(client, "/oma/notifications")
    fake.push = False
    answer = client.post("/oma/notifications/devices", json=SUBSCRIPTION,
                         headers={"X-CSRF-Token": token})
    assert answer.status_code == 503
    assert answer.json()["type"].endswith("/notifications-unavailable")


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", json.dumps({"endpoint": "https://p.example/x"}).encode(),
    json.dumps({**SUBSCRIPTION, "endpoint": "ftp://p.example/x"}).encode(),
    json.dumps({**SUBSCRIPTION, "keys": {"p256dh": KEY, "auth": "<script>"}}).encode(),
    json.dumps({**SUBSCRIPTION, "expirationTime": "soon"}).encode(),
    b"{" + b" " * 9000 + b"}",
])
def test_what_is_not_a_subscription_is_a_422_problem_and_never_sent(client, body):
    fake = FakeOmakaiku()
    holder(client, fake)
    token = csrf_of(client, "/oma/notifications")
    answer = client.post("/oma/notifications/devices", content=body,
                         headers={"X-CSRF-Token": token, "Content-Type": "application/json"})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"]
    assert [c for c in fake.calls if c[0] == "POST"] == []


def test_a_signed_out_browser_cannot_add_a_device(client):
    client.app.state.services = FakeOmakaiku()
    answer = client.post("/oma/notifications/devices", json=SUBSCRIPTION,
                         follow_redirects=False)
    assert answer.status_code in (303, 403)


def test_device_labels_and_the_label_given():
    assert device_label("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Version/17.0 Safari/604.1") \
        == "Safari, iPhone"
    assert device_label("") == "?"
    given = subscription_from(json.dumps({**SUBSCRIPTION, "label": " Työpuhelin "}).encode(),
                              "Firefox/120")
    assert given["label"] == "Työpuhelin"


def test_a_holder_signing_out_clears_the_offline_copies(client):
    holder(client, FakeOmakaiku())
    token = csrf_of(client, "/oma/notifications")
    answer = client.post("/signout", data={"csrf": token}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["clear-site-data"] == '"cache", "storage"'
