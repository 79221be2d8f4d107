"""OmaKaiku's event pages and subscriptions against a fake of omakaiku: what the
web asks for and what it shows (the real flows: tests/browser/test_offering_pages.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest


pytest.importorskip("web", reason="kaiku-web is not installed (pip install -e services/web)")

from web.client import Answer  # noqa: E402
from web.i18n import catalogue  # noqa: E402
from web.session import SESSION_COOKIE  # noqa: E402

OFFERING = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
EVENT = {
    "offering_id": OFFERING, "venue_id": OFFERING, "venue_name": "Jazzklubi",
    "title": "Jazzilta", "kind": "performance", "genres": ["music"],
    "genre_labels": ["Musik"], "subgenres": ["jazz"], "subgenre_labels": ["Jazz"],
    "starts_at": "2027-01-05T15:00:00+00:00", "municipality": "lappeenranta",
    "municipality_name": "Villmanstrand", "region": "etela-karjala",
    "region_name": "Södra Karelen",
    "venue": {"name": "Jazzklubi", "municipality": "Villmanstrand",
              "contact": {"phone": "+358 5 1", "email": None,
                          "url": "javascript:alert(1)", "box_office": None}},
    "card_places_left": 0, "limits": [{"code": "children", "text": "Varje barn tar en plats."}],
    "how_to_get": ["Be om en biljett.", "Telefon: +358 5 1", "Kortplatserna är slut."]}


class FakeOmaKaiku:
    def __init__(self, answers: dict[tuple[str, str], Answer]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, Any, dict | None]] = []

    async def call(self, service: str, method: str, path: str, *, token: str | None = None,
                   json: Any = None, params: dict[str, Any] | None = None, **_: Any) -> Answer:
        self.calls.append((method, path, json, params))
        return self.answers.get((method, path), Answer(404, {"detail": "Not Found"}))

    async def close(self) -> None:
        pass


@pytest.fixture
def client(client):
    """The offline web app (conftest), signed in as a holder reading Swedish."""
    session = {"token": "holder-token", "role": "holder"}
    client.cookies.set(SESSION_COOKIE, client.app.state.sessions.serializer.dumps(session))
    client.cookies.set("kaiku_lang", "sv")
    return client


def test_the_list_asks_with_every_filter_and_shows_places_by_name(client):
    fake = FakeOmaKaiku({("GET", "/offerings"): Answer(200, [EVENT]),
                         ("GET", "/places"): Answer(200, {
                             "regions": [{"code": "etela-karjala", "name": "Södra Karelen"}],
                             "municipalities": [{"code": "lappeenranta", "region": "etela-karjala",
                                                 "name": "Villmanstrand"}]})})
    client.app.state.services = fake
    page = client.get("/oma/offerings", params={
        "genre": "music", "subgenre": "jazz", "region": "etela-karjala",
        "municipality": "lappeenranta", "from": "2027-01-05", "to": ""})
    assert page.status_code == 200
    (_, _, _, params), = [c for c in fake.calls if c[1] == "/offerings"]
    assert params == {"genre": "music", "subgenre": "jazz", "region": "etela-karjala",
                      "municipality": "lappeenranta", "from": "2027-01-05", "to": None,
                      "lang": "sv"}
    assert 'value="lappeenranta" selected>Villmanstrand' in page.text
    shown = re.sub(r"<[^>]+>", " ", page.text.split('<ul class="cards-list">')[1])
    assert "Villmanstrand (Södra Karelen)" in shown and "lappeenranta" not in shown
    assert catalogue("sv")["offer.places_none"] in shown


def test_the_event_page_links_only_to_a_web_address_and_says_when_places_are_gone(client):
    client.app.state.services = FakeOmaKaiku({
        ("GET", f"/offerings/{OFFERING}"): Answer(200, EVENT),
        ("GET", "/offerings/gone"): Answer(404, {
            "type": "https://kaikukortti.fi/problems/offering-not-found",
            "detail": "There is no published offering gone."})})
    page = client.get(f"/oma/offerings/{OFFERING}")
    assert page.status_code == 200
    assert "javascript:" not in page.text  # a venue's url is a link only when http(s)
    assert "Be om en biljett." in page.text and "Kortplatserna är slut." in page.text
    missing = client.get("/oma/offerings/gone")
    assert missing.status_code == 404
    assert catalogue("sv")["offer.not_found"] in missing.text


def test_a_subgenre_alone_brings_its_genre_and_the_region_choice_is_kept(client):
    fake = FakeOmaKaiku({
        ("GET", "/me/subscriptions"): Answer(200, {"genres": [], "subgenres": [],
                                                   "only_my_region": True, "region": "x"}),
        ("PUT", "/me/subscriptions"): Answer(200, {"genres": ["music"], "subgenres": ["jazz"],
                                                   "only_my_region": True, "region": "x"})})
    client.app.state.services = fake
    form = client.get("/oma/subscriptions").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    saved = client.post("/oma/subscriptions", data={
        "csrf": csrf, "subgenres": ["music:jazz", "music:no-such", "nonsense"]})
    assert saved.status_code == 200
    (_, _, body, _), = [c for c in fake.calls if c[0] == "PUT"]
    assert body == {"genres": ["music"], "subgenres": ["jazz"], "only_my_region": True}
