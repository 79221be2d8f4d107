"""The web's message pages and the swimming hall / library desk, against a
recording stand-in for the services: what the web asks of notifications and
venues, what it refuses itself, and how it words the services' refusals.
(The flows against the real services are in tests/browser/.)"""

from __future__ import annotations

import uuid
from typing import Any

import pytest


pytest.importorskip("web", reason="kaiku-web is not installed (pip install -e services/web)")

from web.client import Answer  # noqa: E402
from web.routes.use_desks import euros, euros_to_cents  # noqa: E402
from web.session import SESSION_COOKIE  # noqa: E402

ORG = str(uuid.uuid4())
OTHER_ORG = str(uuid.uuid4())
VENUE_ID = str(uuid.uuid4())
MESSAGE_ID = str(uuid.uuid4())
REPLY_ID = str(uuid.uuid4())


class Services:
    """Answers from a table keyed by (service, METHOD, path); records every call."""

    def __init__(self, answers: dict[tuple[str, str, str], Answer]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, str, Any]] = []

    async def call(self, service: str, method: str, path: str, *, json: Any = None,
                   **_: Any) -> Answer:
        self.calls.append((service, method, path, json))
        return self.answers.get((service, method, path), Answer(503, {"title": "down"}))

    def posted(self, path: str) -> list[Any]:
        return [body for _, method, p, body in self.calls if method == "POST" and p == path]

    async def close(self) -> None:
        pass


def sign_in(client, services: Services, **session: Any) -> None:
    client.app.state.services = services
    client.cookies.set(SESSION_COOKIE, client.app.state.sessions.serializer.dumps(session))


def csrf_of(client) -> str:
    """The form's CSRF token (a staff page renders it and sets its cookie)."""
    html = client.get("/staff/messages/new").text
    return html.split('name="csrf" value="', 1)[1].split('"', 1)[0]


ORGANISATIONS = Answer(200, [{"organisation_id": OTHER_ORG, "kind": "distributor",
                              "name": "Sosiaalitoimi"}])


def staff_services(**more: Answer) -> Services:
    answers = {("notifications", "GET", "/messages/organisations"): ORGANISATIONS}
    answers.update({tuple(k.split(" ", 2)): v for k, v in more.items()})
    return Services(answers)


def test_staff_write_to_a_card_holder_with_the_number_as_typed_cleaned(client):
    services = staff_services(**{"notifications POST /messages": Answer(
        201, {"message_id": MESSAGE_ID})})
    sign_in(client, services, token="t", role="venue", org=ORG)
    form = client.get("/staff/messages/new").text
    assert "Sosiaalitoimi (jakaja)" in form and "Oma organisaatio" in form
    sent = client.post("/staff/messages", data={
        "csrf": csrf_of(client), "to_kind": "card", "card_number": "ab 123456",
        "subject": "Ovet", "body": "Tervetuloa"})
    assert sent.status_code == 200 and "Viesti lähetetty" in sent.text
    assert services.posted("/messages") == [
        {"to": {"card_number": "AB123456"}, "subject": "Ovet", "body": "Tervetuloa"}]

    own = client.post("/staff/messages", data={
        "csrf": csrf_of(client), "to_kind": "own", "subject": "Vuorot", "body": "Huomenna"})
    assert own.status_code == 200
    assert services.posted("/messages")[-1]["to"] == {"organisation_id": ORG}


@pytest.mark.parametrize(("form", "words"), [
    ({"to_kind": "card", "card_number": "", "subject": "s", "body": "b"},
     "Valitse vastaanottaja"),
    ({"to_kind": "organisation", "organisation_id": OTHER_ORG, "subject": "s", "body": ""},
     "Kirjoita aihe ja viesti"),
    ({"to_kind": "organisation", "organisation_id": OTHER_ORG, "subject": "s",
      "body": "x" * 10_001}, "enintään 10 000 merkkiä"),
])
def test_the_web_refuses_what_it_can_tell_is_wrong_without_asking(client, form, words):
    services = staff_services()
    sign_in(client, services, token="t", role="venue", org=ORG)
    refused = client.post("/staff/messages", data={"csrf": csrf_of(client), **form})
    assert refused.status_code == 422 and words in refused.text
    assert services.posted("/messages") == []


def test_notifications_refusals_are_worded_in_the_readers_language(client):
    services = staff_services(**{"notifications POST /messages": Answer(403, {
        "type": "https://kaikukortti.fi/problems/no-link-to-holder", "title": "Forbidden",
        "detail": "Your organisation has no link to card AB123456"})})
    sign_in(client, services, token="t", role="venue", org=ORG)
    client.cookies.set("kaiku_lang", "sv")
    refused = client.post("/staff/messages", data={
        "csrf": csrf_of(client), "to_kind": "card", "card_number": "AB123456",
        "subject": "s", "body": "b"})
    assert refused.status_code == 403
    assert "Din organisation har ingen koppling till kortet" in refused.text
    assert 'value="AB123456"' in refused.text  # what was typed is kept


def thread(direction: str = "received") -> list[dict[str, Any]]:
    holder = {"kind": "holder", "account_id": str(uuid.uuid4()), "card_number": None,
              "organisation_id": None, "user_id": None}
    venue = {"kind": "organisation", "organisation_id": OTHER_ORG, "account_id": None,
             "card_number": None, "user_id": None}
    return [
        {"item_id": MESSAGE_ID, "direction": direction, "sender": holder, "recipient": venue,
         "subject": "Eväät", "body": "Saako eväät?", "in_reply_to": None,
         "created_at": "2026-12-01T10:00:00+00:00", "read_at": None},
        {"item_id": REPLY_ID, "direction": "sent", "sender": venue, "recipient": holder,
         "subject": "Re: Eväät", "body": "Saa.", "in_reply_to": MESSAGE_ID,
         "created_at": "2026-12-01T11:00:00+00:00", "read_at": None},
    ]


def test_a_staff_thread_is_read_and_answered_to_its_latest_message(client):
    services = staff_services(**{
        f"notifications GET /messages/{MESSAGE_ID}/thread": Answer(200, thread()),
        f"notifications GET /messages/{REPLY_ID}/thread": Answer(200, thread()),
        f"notifications POST /messages/{REPLY_ID}/replies": Answer(
            201, {"message_id": str(uuid.uuid4())}),
        f"notifications POST /inbox/{MESSAGE_ID}/read": Answer(200, {})})
    sign_in(client, services, token="t", role="distributor", org=OTHER_ORG)
    client.cookies.set("kaiku_lang", "en")
    page = client.get(f"/staff/messages/{MESSAGE_ID}").text
    assert "Saako eväät?" in page and "Re: Eväät" in page
    assert "From: Card holder" in page and "From: Sosiaalitoimi" in page
    assert f'action="/staff/messages/{REPLY_ID}/replies"' in page
    # Opening the thread reads what was received in it (not what was sent).
    assert services.posted(f"/inbox/{MESSAGE_ID}/read") == [None]
    assert services.posted(f"/inbox/{REPLY_ID}/read") == []
    replied = client.post(f"/staff/messages/{REPLY_ID}/replies",
                          data={"csrf": csrf_of(client), "body": "Tervetuloa!"})
    assert replied.status_code == 200 and "The reply was sent" in replied.text
    assert services.posted(f"/messages/{REPLY_ID}/replies") == [{"body": "Tervetuloa!"}]
    empty = client.post(f"/staff/messages/{REPLY_ID}/replies",
                        data={"csrf": csrf_of(client), "body": "  "})
    assert empty.status_code == 422 and "Write the reply before sending it" in empty.text
    assert len(services.posted(f"/messages/{REPLY_ID}/replies")) == 1


def test_an_unknown_or_malformed_thread_is_not_found(client):
    services = staff_services(**{f"notifications GET /messages/{MESSAGE_ID}/thread": Answer(
        404, {"type": "https://kaikukortti.fi/problems/message-not-found",
              "detail": "You have no message"})})
    sign_in(client, services, token="t", role="venue", org=ORG)
    assert client.get(f"/staff/messages/{MESSAGE_ID}").status_code == 404
    assert client.get("/staff/messages/not-a-uuid").status_code == 404


def test_a_holder_writes_only_to_organisations_they_are_linked_to(client):
    services = Services({
        ("notifications", "GET", "/me/messages/organisations"): ORGANISATIONS,
        ("notifications", "POST", "/me/messages"): Answer(201, {"message_id": MESSAGE_ID}),
        ("notifications", "GET", "/me/messages/sent"): Answer(200, thread("sent")[:1])})
    sign_in(client, services, token="t", role="holder")
    form = client.get("/oma/messages/new").text
    assert "Sosiaalitoimi" in form and "card_number" not in form
    csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    sent = client.post("/oma/messages", data={"csrf": csrf, "organisation_id": OTHER_ORG,
                                              "subject": "Kysymys", "body": "Hei"})
    assert sent.status_code == 200
    assert services.posted("/me/messages") == [
        {"to": {"organisation_id": OTHER_ORG}, "subject": "Kysymys", "body": "Hei"}]
    nobody = client.post("/oma/messages", data={"csrf": csrf, "subject": "s", "body": "b"})
    assert nobody.status_code == 422 and len(services.posted("/me/messages")) == 1
    listing = client.get("/oma/messages/sent").text
    assert "Saako eväät?" in listing and "Vastaanottaja: Sosiaalitoimi" in listing


# --- the swimming hall and library desk --------------------------------------------


def venue(kind: str, **limits: Any) -> Answer:
    return Answer(200, {"venue_id": VENUE_ID, "organisation_id": ORG, "name": "Uimala",
                        "kind": kind, "municipality": "imatra", "timezone": "Europe/Helsinki",
                        "contact": {}, "limits": limits})


def test_euros_both_ways():
    assert euros_to_cents("2,50") == 250 and euros_to_cents("3") == 300
    assert euros_to_cents("0") is None and euros_to_cents("1,005") is None
    assert euros_to_cents("kaksi") is None and euros_to_cents("-1") is None
    assert euros(1250, "fi") == "12,50 €" and euros(1250, "en") == "€12.50"


def test_a_swimming_visit_shows_the_visits_left_this_year(client):
    services = Services({
        ("venues", "GET", f"/venues/{VENUE_ID}"): venue("swimming_hall",
                                                        series_visits_per_year=10),
        ("venues", "POST", f"/venues/{VENUE_ID}/swimming-visits"): Answer(201, {
            "venue_id": VENUE_ID, "card_number": "AB123456", "year": 2026, "visits_used": 3,
            "visits_per_year": 10, "visits_left": 7})})
    sign_in(client, services, token="t", role="venue", org=ORG, venue_id=VENUE_ID)
    desk = client.get("/staff/uses").text
    assert "10 uintikertaa vuodessa" in desk
    csrf = desk.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    done = client.post("/staff/uses/swimming", data={"csrf": csrf, "card_number": "ab123456",
                                                     "children": "1"})
    assert done.status_code == 200 and "Kertoja jäljellä 7/10 vuonna 2026" in done.text
    assert services.posted(f"/venues/{VENUE_ID}/swimming-visits") == [
        {"card_number": "AB123456", "children": 1}]
    services.answers[("venues", "POST", f"/venues/{VENUE_ID}/swimming-visits")] = Answer(
        422, {"type": "https://kaikukortti.fi/problems/swimming-series-used-up",
              "detail": "0 visit(s) left"})
    used_up = client.post("/staff/uses/swimming", data={"csrf": csrf,
                                                        "card_number": "AB123456"})
    assert used_up.status_code == 422 and "uintikerrat eivät riitä" in used_up.text


def test_a_library_fee_shows_the_cap_left_and_bad_amounts_stay_in_the_web(client):
    services = Services({
        ("venues", "GET", f"/venues/{VENUE_ID}"): venue("library", library_fee_cap_cents=2000),
        ("venues", "POST", f"/venues/{VENUE_ID}/library-fees"): Answer(201, {
            "venue_id": VENUE_ID, "card_number": "AB123456", "year": 2026,
            "year_total_cents": 750, "cap_cents": 2000, "left_cents": 1250})})
    sign_in(client, services, token="t", role="venue", org=ORG, venue_id=VENUE_ID)
    client.cookies.set("kaiku_lang", "en")
    desk = client.get("/staff/uses").text
    assert "up to €20.00 a year" in desk
    csrf = desk.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    bad = client.post("/staff/uses/library", data={"csrf": csrf, "card_number": "AB123456",
                                                   "fee_type": "late_fee", "amount": "abc"})
    assert bad.status_code == 422 and "Type the amount in euros" in bad.text
    assert services.posted(f"/venues/{VENUE_ID}/library-fees") == []
    done = client.post("/staff/uses/library", data={"csrf": csrf, "card_number": "AB123456",
                                                    "fee_type": "late_fee", "amount": "7,50"})
    assert done.status_code == 200 and "€12.50 left of the 2026 cap (€20.00)" in done.text
    assert services.posted(f"/venues/{VENUE_ID}/library-fees") == [
        {"card_number": "AB123456", "fee_type": "late_fee", "amount_cents": 750}]


def test_the_desk_without_a_chosen_venue_asks_for_one(client):
    sign_in(client, Services({}), token="t", role="venue", org=ORG)
    answer = client.get("/staff/uses", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/staff/venue"


def test_kaikukeskus_names_how_long_a_bulletin_stays_current(client):
    services = staff_services(**{"notifications POST /bulletins": Answer(
        201, {"bulletin_id": str(uuid.uuid4())})})
    sign_in(client, services, token="t", role="kaikukeskus")
    form = client.get("/staff/bulletins").text
    assert 'type="date"' in form and "Oletus: 30 päivää" in form
    csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    for valid_until, sent in (("2027-01-31", "2027-01-31"), ("", None)):
        client.post("/staff/bulletins", data={"csrf": csrf, "title": "Kevät", "body": "Tule",
                                              "valid_until": valid_until})
        assert services.posted("/bulletins")[-1] == {"title": "Kevät", "body": "Tule",
                                                     "valid_until": sent}
