"""OmaKaiku's "download my data": one file of both services' exports, made only
when both answer in full; otherwise a 503 page naming what is missing."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("web", reason="kaiku-web is not installed (pip install -e services/web)")

from web.client import Answer  # noqa: E402
from web.i18n import catalogue  # noqa: E402
from web.session import SESSION_COOKIE  # noqa: E402

ACCOUNT = "0b6f0d5e-4f7a-4f57-9a51-6f1f4f0b9c11"
EXPORTS = {
    "omakaiku": {"service": "omakaiku", "schema": "kaikukortti.omakaiku.export/1",
                 "account_id": ACCOUNT, "profile": {"first_name": "Aino-kanarialintu"}},
    "notifications": {"service": "notifications",
                      "schema": "kaikukortti.notifications.export/1", "account_id": ACCOUNT,
                      "sent": [{"body": "minulla-on-allergia"}]},
}


class ExportingServices:
    """Each service's ``GET /me/export``, or the status given for it."""

    def __init__(self, **statuses: int) -> None:
        self.statuses = statuses
        self.asked: list[tuple[str, str, str | None]] = []

    async def call(self, service: str, method: str, path: str, *, token: str | None = None,
                   **_: Any) -> Answer:
        self.asked.append((service, path, token))
        status = self.statuses.get(service, 200)
        if status != 200 or path != "/me/export":
            return Answer(status, {"type": "https://kaikukortti.fi/problems/x", "detail": ""})
        return Answer(200, EXPORTS[service])

    async def close(self) -> None:
        pass


def signed_in_holder(client, services: ExportingServices) -> None:
    client.app.state.services = services
    session = {"token": "holder-token", "role": "holder"}
    client.cookies.set(SESSION_COOKIE, client.app.state.sessions.serializer.dumps(session))


def test_the_file_holds_both_exports_whole(client):
    services = ExportingServices()
    signed_in_holder(client, services)
    answer = client.get("/oma/data/download")
    assert answer.status_code == 200
    assert answer.headers["content-disposition"] == \
        'attachment; filename="kaikukortti-omat-tiedot.json"'
    assert answer.headers["cache-control"] == "no-store"
    data = json.loads(answer.content)
    assert data["schema"] == "kaikukortti.export/1" and data["account_id"] == ACCOUNT
    assert data["parts"] == ["omakaiku", "notifications"]
    assert data["omakaiku"] == EXPORTS["omakaiku"]
    assert data["notifications"] == EXPORTS["notifications"]
    # Asked of each service with the holder's own token.
    assert sorted(services.asked) == [("notifications", "/me/export", "holder-token"),
                                      ("omakaiku", "/me/export", "holder-token")]


@pytest.mark.parametrize("down", [{"notifications": 503}, {"omakaiku": 502},
                                  {"notifications": 500, "omakaiku": 503}])
def test_a_service_down_gives_a_503_page_and_no_file(client, down):
    signed_in_holder(client, ExportingServices(**down))
    client.cookies.set("kaiku_lang", "sv")
    answer = client.get("/oma/data/download")
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("text/html")
    assert "content-disposition" not in answer.headers
    assert "Aino-kanarialintu" not in answer.text and "allergia" not in answer.text
    texts = catalogue("sv")
    assert texts["data.unavailable"] in answer.text
    for service in ("omakaiku", "notifications"):
        assert (texts[f"data.part_name_{service}"] in answer.text) == (service in down)


def test_an_erased_account_has_nothing_to_download(client):
    signed_in_holder(client, ExportingServices(omakaiku=410))
    answer = client.get("/oma/data/download")
    assert answer.status_code == 410
    assert catalogue("fi")["data.erased"] in answer.text
    assert "content-disposition" not in answer.headers


def test_the_page_explains_and_links_the_file_in_every_language(client):
    signed_in_holder(client, ExportingServices())
    for lang in ("fi", "sv", "en"):
        client.cookies.set("kaiku_lang", lang)
        page = client.get("/oma/data")
        assert page.status_code == 200
        assert catalogue(lang)["nav.my_data"] in page.text
        assert 'href="/oma/data/download"' in page.text
    card = client.get("/oma")
    assert 'href="/oma/data"' in card.text


def test_signed_out_the_data_pages_ask_to_sign_in(client):
    for path in ("/oma/data", "/oma/data/download"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/oma/signin"
