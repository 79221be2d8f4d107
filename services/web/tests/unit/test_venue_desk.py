"""The venue desk's pages against a fake of the services: what each page asks
venues and cards, what it shows, and what a form sends back."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest


pytest.importorskip("web", reason="kaiku-web is not installed (pip install -e services/web)")

from web.client import Answer  # noqa: E402
from web.i18n import catalogue  # noqa: E402
from web.session import SESSION_COOKIE  # noqa: E402

ORG = "0b9d6c3e-6b7a-4d2e-9f1c-3a5b7c9d1e2f"
AGENT = "5e4d3c2b-1a09-4f8e-8d7c-6b5a4f3e2d1c"
VENUE = "7c1f0e2d-3b4a-4c5d-8e9f-0a1b2c3d4e5f"
OFFERING = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
TICKET = "2b3c4d5e-6f70-4a1b-9c2d-3e4f5a6b7c8d"
NETWORK = {"regions": [{"code": "ostrobothnia", "municipalities": [
    {"code": "vaasa", "name": {"fi": "Vaasa", "sv": "Vasa", "en": "Vaasa"}}]}]}
VENUE_ROW = {"venue_id": VENUE, "organisation_id": ORG, "name": "Vaasan teatteri",
             "kind": "performing_arts", "municipality": "vaasa", "timezone": "Europe/Helsinki",
             "contact": {"phone": "06 123 4567"},
             "limits": {"one_ticket_per_card": False, "max_open_reservations": None,
                        "weekends_excluded": False, "excluded_productions": [],
                        "ticket_agents": [AGENT]}}


class FakeServices:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, Any, Any]] = []
        self.answers: dict[tuple[str, str, str], Answer] = {}

    def on(self, service: str, method: str, path: str, status: int, data: Any) -> None:
        self.answers[(service, method, path)] = Answer(status, data)

    async def call(self, service: str, method: str, path: str, **kwargs: Any) -> Answer:
        self.calls.append((service, method, path, kwargs.get("json"), kwargs.get("params")))
        return self.answers.get((service, method, path), Answer(404, {"detail": "Not Found"}))

    def sent(self, method: str, path: str) -> list[tuple]:
        return [c for c in self.calls if c[1] == method and c[2] == path]

    async def close(self) -> None:
        pass


@pytest.fixture
def desk(client):
    """The offline web app (conftest) with fake services, signed in as the venue."""
    fake = FakeServices()
    client.app.state.services = fake
    session = {"token": "t", "role": "venue", "org": ORG, "venue_id": VENUE}
    client.cookies.set(SESSION_COOKIE, client.app.state.sessions.serializer.dumps(session))
    fake.on("venues", "GET", f"/venues/{VENUE}", 200, VENUE_ROW)
    fake.on("cards", "GET", "/network", 200, NETWORK)
    return client, fake


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def offering(starts_at: datetime, **extra: Any) -> dict[str, Any]:
    return {"offering_id": OFFERING, "venue_id": VENUE, "venue_name": "Vaasan teatteri",
            "title": "Kevätkonsertti", "kind": "performance", "genres": ["music"],
            "subgenres": [], "starts_at": starts_at.isoformat(), "municipality": "vaasa",
            "capacity": 300, "card_cap": 10, "status": "published", **extra}


def test_the_desk_shows_places_used_and_left_and_the_place_by_name(desk):
    client, fake = desk
    later = datetime.now(UTC) + timedelta(days=20)
    fake.on("venues", "GET", "/offerings", 200, [offering(later)])
    fake.on("venues", "GET", f"/offerings/{OFFERING}", 200,
            {**offering(later), "card_places_left": 7})
    client.cookies.set("kaiku_lang", "sv")
    page = client.get("/staff/desk").text
    assert "Vaasan teatteri, Vasa" in page and ", vaasa" not in page
    assert "3/10" in page and re.search(r'class="desk-places"[^>]*>7</td>', page)
    assert catalogue("sv")["desk.none_today"] in page  # the only offering is upcoming
    assert fake.sent("GET", "/offerings")[0][4]["venue_id"] == VENUE


def test_the_ticket_list_filters_and_cancels_only_after_confirmation(desk):
    client, fake = desk
    later = datetime.now(UTC) + timedelta(days=20)
    fake.on("venues", "GET", f"/offerings/{OFFERING}", 200,
            {**offering(later), "card_places_left": 7})
    fake.on("venues", "GET", f"/offerings/{OFFERING}/tickets", 200, [
        {"ticket_id": TICKET, "card_number": "KXA-12345", "children": 2,
         "status": "registered", "registered_at": datetime.now(UTC).isoformat()}])
    page = client.get(f"/staff/desk/offerings/{OFFERING}?status=registered").text
    assert "KXA-12345" in page and f"/staff/desk/tickets/{TICKET}/cancel" in page
    assert fake.sent("GET", f"/offerings/{OFFERING}/tickets")[0][4] == {"status": "registered"}
    client.get(f"/staff/desk/offerings/{OFFERING}?status=lost")
    assert fake.sent("GET", f"/offerings/{OFFERING}/tickets")[1][4] is None  # no such filter

    fake.on("venues", "GET", f"/tickets/{TICKET}", 200, {
        "ticket_id": TICKET, "offering_id": OFFERING, "card_number": "KXA-12345",
        "starts_at": later.isoformat(), "status": "registered"})
    confirm = client.get(f"/staff/desk/tickets/{TICKET}/cancel").text
    assert catalogue("fi")["desk.confirm_cancel"] in confirm
    assert not fake.sent("POST", f"/tickets/{TICKET}/cancellation")  # asking cancels nothing
    fake.on("venues", "POST", f"/tickets/{TICKET}/cancellation", 200, {})
    done = client.post(f"/staff/desk/tickets/{TICKET}/cancel", data={"csrf": csrf_of(confirm)},
                       follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"/staff/desk/offerings/{OFFERING}?done=cancelled"
    assert len(fake.sent("POST", f"/tickets/{TICKET}/cancellation")) == 1


def test_the_day_sheet_lists_the_days_tickets_for_print(desk):
    client, fake = desk
    fake.on("venues", "GET", "/offerings", 200, [offering(datetime(2031, 5, 1, 16, tzinfo=UTC))])
    fake.on("venues", "GET", f"/offerings/{OFFERING}/tickets", 200, [
        {"ticket_id": TICKET, "card_number": "KXA-12345", "children": 2,
         "status": "registered", "registered_at": "2031-04-01T09:00:00+00:00"}])
    page = client.get("/staff/desk/day?day=2031-05-01").text
    assert "KXA-12345" in page and "01.05.2031 19:00" in page
    assert 'href="/static/desk.css"' in page and "data-desk-print" in page
    assert fake.sent("GET", "/offerings")[0][4]["from"] == "2031-05-01"
    assert fake.sent("GET", "/offerings")[0][4]["to"] == "2031-05-01"
    assert client.get("/staff/desk/day?day=tomorrow").status_code == 422


def test_the_profile_sends_only_what_changed(desk):
    client, fake = desk
    page = client.get("/staff/desk/profile").text
    assert 'value="06 123 4567"' in page
    patched = {**VENUE_ROW, "name": "Vaasan kaupunginteatteri", "changed": ["profile", "limits"],
               "limits_apply_to": "offerings-published-from-now-on"}
    fake.on("venues", "PATCH", f"/venues/{VENUE}", 200, patched)
    answer = client.post("/staff/desk/profile", data={
        "csrf": csrf_of(page), "name": "Vaasan kaupunginteatteri", "phone": "06 123 4567",
        "email": "liput@vaasa.example", "url": "", "box_office": "",
        "one_ticket_per_card": "on", "max_open_reservations": "",
        "excluded_productions": ["gala"], "ticket_agents": AGENT})
    assert answer.status_code == 200
    (sent,) = fake.sent("PATCH", f"/venues/{VENUE}")
    assert sent[3] == {"name": "Vaasan kaupunginteatteri",
                       "contact": {"phone": "06 123 4567", "email": "liput@vaasa.example"},
                       "limits": {"one_ticket_per_card": True,
                                  "excluded_productions": ["gala"]}}
    assert catalogue("fi")["desk.limits_from_now_on"] in answer.text


def test_a_bad_agent_id_is_refused_before_venues_is_asked(desk):
    client, fake = desk
    page = client.get("/staff/desk/profile").text
    answer = client.post("/staff/desk/profile", data={
        "csrf": csrf_of(page), "name": "Vaasan teatteri", "phone": "06 123 4567",
        "email": "", "url": "", "box_office": "", "max_open_reservations": "",
        "ticket_agents": f"{AGENT}\nnot-an-id"})
    assert answer.status_code == 422
    assert catalogue("fi")["desk.bad_agent"] in answer.text
    assert not fake.sent("PATCH", f"/venues/{VENUE}")
