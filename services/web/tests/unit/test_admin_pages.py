"""The staff admin pages against a fake of the service APIs: what the web sends,
what it refuses to send, and what it shows (the real flows are in tests/browser/).

The fake records every call and answers from a table, so each test can say both
"the page shows the refusal" and "cards was never asked".
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kaiku_shared.settings import KaikuSettings

pytest.importorskip("web", reason="kaiku-web is not installed (pip install -e services/web)")

from web.app import create_app  # noqa: E402
from web.client import Answer  # noqa: E402
from web.config import WebSettings  # noqa: E402
from web.i18n import LANGUAGES, catalogue  # noqa: E402
from web.session import SESSION_COOKIE  # noqa: E402

ORG = "0b9d6c3e-6b7a-4d2e-9f1c-3a5b7c9d1e2f"
OTHER = "5e4d3c2b-1a09-4f8e-8d7c-6b5a4f3e2d1c"
VENUE = "7c1f0e2d-3b4a-4c5d-8e9f-0a1b2c3d4e5f"
OFFERING = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
USER = "1d2c3b4a-5f6e-4d7c-8b9a-0f1e2d3c4b5a"


class FakeServices:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, Any, dict | None]] = []
        self.answers: dict[tuple[str, str, str], Answer] = {}
        self.clients: list[str | None] = []

    def on(self, service: str, method: str, path: str, status: int, data: Any) -> None:
        self.answers[(service, method, path)] = Answer(status, data)

    async def call(self, service: str, method: str, path: str, *, token: str | None = None,
                   json: Any = None, params: dict[str, Any] | None = None,
                   idempotency_key: str | None = None, client: str | None = None) -> Answer:
        self.calls.append((service, method, path, json, params))
        self.clients.append(client)
        return self.answers.get((service, method, path),
                                Answer(404, {"detail": "Not Found"}))

    def sent(self, method: str, path: str) -> list[tuple]:
        return [c for c in self.calls if c[1] == method and c[2] == path]

    async def close(self) -> None:
        pass


@pytest.fixture
def app_and_fake():
    web = WebSettings(cards_url="http://127.0.0.1:9", venues_url="http://127.0.0.1:9",
                      omakaiku_url="http://127.0.0.1:9",
                      notifications_url="http://127.0.0.1:9", api_timeout_seconds=2,
                      session_secret="unit-test-session-secret-" + "x" * 32)
    app = create_app(KaikuSettings(), web)
    with TestClient(app) as client:
        fake = FakeServices()
        app.state.services = fake
        yield app, client, fake


def sign_in(app, client, role: str, **extra: Any) -> None:
    session = {"token": "t", "role": role, "org": ORG, **extra}
    client.cookies.set(SESSION_COOKIE, app.state.sessions.serializer.dumps(session))


def csrf_of(client, path: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


def test_dynamic_message_families_exist_in_every_language():
    families = {
        "mstatus": ("in_use", "pilot", "joining_2025_2026", "popup", "left"),
        "ostatus": ("approved", "pending", "left"),
        "decision": ("continue", "leave"), "answer": ("continue", "leave"),
        "name_in": LANGUAGES, "role": ("kaikukeskus", "distributor", "venue", "ticket_agent"),
    }
    for lang in LANGUAGES:
        for family, members in families.items():
            for member in members:
                assert f"{family}.{member}" in catalogue(lang), (lang, family, member)


# --- statistics: region names in the chosen language --------------------------------


@pytest.mark.parametrize(("lang", "shown"), [("fi", "Etelä-Karjala"), ("sv", "Södra Karelen"),
                                              ("en", "South Karelia")])
def test_the_statistics_name_regions_in_the_chosen_language(app_and_fake, lang, shown):
    app, client, fake = app_and_fake
    sign_in(app, client, "venue")
    fake.on("cards", "GET", "/stats/national", 200, {"cards_issued": 3})
    fake.on("cards", "GET", "/stats/regions", 200, [
        {"region": "etela-karjala", "name": "Etelä-Karjala", "cards_issued": 3, "uses": 1,
         "names": {"fi": "Etelä-Karjala", "sv": "Södra Karelen", "en": "South Karelia"}},
        {"region": "vanha", "name": "Vanha alue", "cards_issued": 0, "uses": 0}])
    client.cookies.set("kaiku_lang", lang)
    page = client.get("/staff/stats").text
    assert f'<th scope="row">{shown}</th>' in page
    # A service without names yet: the Finnish name is shown.
    assert '<th scope="row">Vanha alue</th>' in page


def test_the_statistics_ask_for_whole_months(app_and_fake):
    app, client, fake = app_and_fake
    sign_in(app, client, "kaikukeskus")
    fake.on("cards", "GET", "/stats/national", 200, {"cards_issued": 3,
                                                      "covers_until": "2026-05"})
    fake.on("cards", "GET", "/stats/regions", 200, [
        {"region": "kainuu", "name": "Kainuu", "cards_issued": 3, "uses": 1}])
    page = client.get("/staff/stats", params={"from": "2026-03", "to": "2026-05"}).text
    assert re.search(r'<input id="stats-from" name="from" type="month" value="2026-03"', page)
    assert 'type="month" value="2026-05"' in page
    assert fake.sent("GET", "/stats/national")[-1][4] == {"from": "2026-03", "to": "2026-05"}
    assert fake.sent("GET", "/stats/regions")[-1][4] == {"from": "2026-03", "to": "2026-05"}
    assert "2026-05" in page and catalogue("fi")["stats.months_hint"] in page
    # the report is for the same months
    assert 'href="/staff/stats/regions/kainuu/report?from=2026-03&amp;to=2026-05"' in page
    fake.on("cards", "GET", "/stats/regions/kainuu/report", 200, "<!doctype html>report")
    assert client.get("/staff/stats/regions/kainuu/report",
                      params={"from": "2026-03"}).text == "<!doctype html>report"
    assert fake.sent("GET", "/stats/regions/kainuu/report")[-1][4] == {"from": "2026-03"}


def test_a_period_cards_refuses_is_shown_with_its_reason(app_and_fake):
    app, client, fake = app_and_fake
    sign_in(app, client, "kaikukeskus")
    detail = "'from=2026-03-02' is not the first day of a month. Statistics cover whole..."
    fake.on("cards", "GET", "/stats/national", 422, {"status": 422, "detail": detail})
    fake.on("cards", "GET", "/stats/regions", 422, {"status": 422, "detail": detail})
    response = client.get("/staff/stats", params={"from": "2026-03-02"})
    assert response.status_code == 422
    assert "is not the first day of a month" in response.text
    assert 'role="alert"' in response.text


# --- the network -------------------------------------------------------------------------


def test_a_bad_network_code_never_reaches_cards(app_and_fake):
    app, client, fake = app_and_fake
    sign_in(app, client, "kaikukeskus")
    fake.on("cards", "GET", "/network", 200, {"regions": []})
    token = csrf_of(client, "/staff/network/region")
    for code in ("../cards", "Etelä-Karjala", "x", "a/b"):
        response = client.post("/staff/network/region", data={
            "csrf": token, "code": code, "name_fi": "Alue", "country": "FI"})
        assert response.status_code == 422
        assert catalogue("fi")["network.bad_code"] in response.text
    assert not [c for c in fake.calls if c[1] == "PUT"]


def test_a_region_is_saved_with_its_three_names(app_and_fake):
    app, client, fake = app_and_fake
    sign_in(app, client, "kaikukeskus")
    fake.on("cards", "GET", "/network", 200, {"regions": []})
    fake.on("cards", "PUT", "/network/regions/pohjois-karjala", 200, {
        "code": "pohjois-karjala", "country": "FI",
        "name": {"fi": "Pohjois-Karjala", "sv": "Norra Karelen", "en": "North Karelia"}})
    token = csrf_of(client, "/staff/network/region")
    client.cookies.set("kaiku_lang", "en")
    response = client.post("/staff/network/region", data={
        "csrf": token, "code": "pohjois-karjala", "name_fi": "Pohjois-Karjala",
        "name_sv": "Norra Karelen", "name_en": "North Karelia", "country": "fi"})
    assert response.status_code == 200
    (_, _, _, body, _), = fake.sent("PUT", "/network/regions/pohjois-karjala")
    assert body == {"name": {"fi": "Pohjois-Karjala", "sv": "Norra Karelen",
                             "en": "North Karelia"}, "country": "FI"}
    assert "The region North Karelia is saved." in response.text


def test_a_new_code_that_exists_is_not_overwritten(app_and_fake):
    app, client, fake = app_and_fake
    sign_in(app, client, "kaikukeskus")
    fake.on("cards", "GET", "/network", 200, {"regions": [
        {"code": "lappi", "name": {"fi": "Lappi"}, "country": "FI", "municipalities": [
            {"code": "rovaniemi", "name": {"fi": "Rovaniemi"}, "status": "in_use",
             "country": "FI"}]}]})
    token = csrf_of(client, "/staff/network/municipality")
    response = client.post("/staff/network/municipality", data={
        "csrf": token, "existing": "0", "code": "rovaniemi", "name_fi": "Rovaniemi",
        "region": "lappi", "status": "pilot", "country": "FI"})
    assert response.status_code == 409
    assert catalogue("fi")["network.code_taken"] in response.text
    assert not fake.sent("PUT", "/network/municipalities/rovaniemi")


# --- offering edit: only what changed is sent ----------------------------------------------


OFFER = {"offering_id": OFFERING, "venue_id": VENUE, "venue_name": "Teatteri",
         "title": "Syyskonsertti", "kind": "performance", "status": "published",
         "starts_at": "2031-10-10T16:00:00+00:00", "capacity": 700, "card_cap": 25,
         "card_places_left": 20}
CARD_CAP_MINIMUM = "/offerings/card-cap-minimum"
MINIMUM_FOR_700 = {"capacity": 700, "kind": "performance", "minimum_card_cap": 21}


def test_the_offering_edit_sends_only_the_changes(app_and_fake):
    app, client, fake = app_and_fake
    sign_in(app, client, "venue")
    fake.on("venues", "GET", f"/offerings/{OFFERING}", 200, OFFER)
    fake.on("venues", "PATCH", f"/offerings/{OFFERING}", 200, {**OFFER, "card_cap": 30})
    fake.on("venues", "GET", CARD_CAP_MINIMUM, 200, MINIMUM_FOR_700)
    form = client.get(f"/staff/offerings/{OFFERING}/edit").text
    assert 'value="2031-10-10T19:00"' in form  # shown in Finnish time
    # The hint's minimum is venues' answer for the offering's capacity and kind.
    assert catalogue("fi")["guideline.minimum"].format(minimum=21, capacity=700) in form
    assert fake.sent("GET", CARD_CAP_MINIMUM)[0][4] == {"capacity": 700, "kind": "performance"}
    token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    unchanged = {"csrf": token, "title": "Syyskonsertti", "starts_at": "2031-10-10T19:00",
                 "capacity": "700", "card_cap": "25"}
    same = client.post(f"/staff/offerings/{OFFERING}", data=unchanged)
    assert same.status_code == 200 and catalogue("fi")["offering.nothing_changed"] in same.text
    assert not fake.sent("PATCH", f"/offerings/{OFFERING}")
    changed = client.post(f"/staff/offerings/{OFFERING}", data={**unchanged, "card_cap": "30"})
    assert changed.status_code == 200
    assert fake.sent("PATCH", f"/offerings/{OFFERING}")[0][3] == {"card_cap": 30}


def test_a_refused_offering_change_keeps_the_form_and_says_why(app_and_fake):
    app, client, fake = app_and_fake
    sign_in(app, client, "venue")
    fake.on("venues", "GET", f"/offerings/{OFFERING}", 200, OFFER)
    fake.on("venues", "PATCH", f"/offerings/{OFFERING}", 422, {
        "type": "https://kaikukortti.fi/problems/card-cap-below-guideline",
        "detail": "The card cap 5 is below the guideline minimum 21."})
    fake.on("venues", "GET", CARD_CAP_MINIMUM, 200, MINIMUM_FOR_700)
    token = csrf_of(client, f"/staff/offerings/{OFFERING}/edit")
    response = client.post(f"/staff/offerings/{OFFERING}", data={
        "csrf": token, "title": "Syyskonsertti", "starts_at": "2031-10-10T19:00",
        "capacity": "700", "card_cap": "5"})
    assert response.status_code == 422
    assert 'role="alert"' in response.text and "below the guideline minimum" in response.text
    assert 'value="5"' in response.text and "warning" in response.text  # the hint
    bad = client.post(f"/staff/offerings/{OFFERING}", data={
        "csrf": token, "title": "Syyskonsertti", "starts_at": "huomenna",
        "capacity": "700", "card_cap": "25"})
    assert bad.status_code == 422 and catalogue("fi")["offering.bad_start"] in bad.text
    assert client.get("/staff/offerings/not-an-id/edit").status_code == 404


# --- users ---------------------------------------------------------------------------------


def test_passwords_are_checked_before_cards_and_never_echoed(app_and_fake):
    app, client, fake = app_and_fake
    sign_in(app, client, "kaikukeskus")
    fake.on("cards", "GET", "/organisations", 200, [])
    fake.on("cards", "GET", "/users", 200, [])
    token = csrf_of(client, "/staff/users")
    short = client.post("/staff/users", data={"csrf": token, "username": "uusi.kayttaja",
                                              "password": "lyhyt-sala"})
    assert short.status_code == 422
    assert catalogue("fi")["users.password_short"] in short.text
    assert "lyhyt-sala" not in short.text and 'value="uusi.kayttaja"' in short.text
    mismatch = client.post(f"/staff/users/{USER}/password", data={
        "csrf": token, "password": "pitka-salasana-1", "repeat": "pitka-salasana-2"})
    assert mismatch.status_code == 422
    assert catalogue("fi")["users.password_mismatch"] in mismatch.text
    assert not fake.sent("POST", "/users") and not fake.sent("PUT", f"/users/{USER}/password")
    assert client.post("/staff/users/..%2Fcards/password", data={
        "csrf": token, "password": "x" * 12, "repeat": "x" * 12}).status_code == 404


def test_kaikukeskus_creates_a_user_in_a_chosen_organisation(app_and_fake):
    app, client, fake = app_and_fake
    sign_in(app, client, "kaikukeskus")
    fake.on("cards", "GET", "/organisations", 200, [
        {"organisation_id": ORG, "kind": "venue", "name": "Teatteri", "status": "approved"}])
    fake.on("cards", "GET", "/users", 200, [])
    fake.on("cards", "POST", "/users", 201, {"user_id": USER, "username": "lipunmyynti",
                                             "organisation_id": ORG, "role": "venue",
                                             "admin": True, "active": True})
    token = csrf_of(client, "/staff/users")
    created = client.post("/staff/users", data={
        "csrf": token, "organisation_id": ORG, "username": "lipunmyynti",
        "password": "pitka-salasana-1", "admin": "on"})
    assert created.status_code == 200
    assert fake.sent("POST", "/users")[0][3] == {
        "username": "lipunmyynti", "password": "pitka-salasana-1", "admin": True,
        "organisation_id": ORG}
    assert fake.sent("GET", "/users")[-1][4] == {"organisation_id": ORG}


def test_an_admin_user_adds_users_only_to_its_own_organisation(app_and_fake):
    app, client, fake = app_and_fake
    sign_in(app, client, "distributor", admin=True, user_id=USER)
    fake.on("cards", "GET", "/users", 200, [])
    fake.on("cards", "POST", "/users", 201, {"user_id": USER, "username": "jakaja2"})
    home = client.get("/staff").text
    assert 'href="/staff/users"' in home and 'href="/staff/password"' in home
    token = csrf_of(client, "/staff/users")
    client.post("/staff/users", data={"csrf": token, "organisation_id": OTHER,
                                      "username": "jakaja2", "password": "pitka-salasana-1"})
    assert "organisation_id" not in fake.sent("POST", "/users")[0][3]


# --- organisations, rounds, the partner's answer -----------------------------------------


def test_approval_after_the_partner_list_is_fixed_offers_the_override(app_and_fake):
    app, client, fake = app_and_fake
    sign_in(app, client, "kaikukeskus")
    fake.on("cards", "GET", "/organisations", 200, [
        {"organisation_id": ORG, "kind": "distributor", "name": "Uusi jakaja",
         "municipality": "imatra", "status": "pending"}])
    page = client.get("/staff/organisations").text
    assert 'aria-label="Hyväksy Uusi jakaja"' in page
    fake.on("cards", "POST", f"/organisations/{ORG}/approval", 409, {
        "type": "https://kaikukortti.fi/problems/no-new-partners-mid-year",
        "detail": "The partner list for 2031 is fixed."})
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    refused = client.post(f"/staff/organisations/{ORG}/approval", data={"csrf": token})
    assert refused.status_code == 409 and 'name="override"' in refused.text
    fake.on("cards", "POST", f"/organisations/{ORG}/approval", 200, {
        "organisation_id": ORG, "kind": "distributor", "name": "Uusi jakaja",
        "municipality": "imatra", "status": "approved"})
    approved = client.post(f"/staff/organisations/{ORG}/approval",
                           data={"csrf": token, "override": "on"})
    assert fake.sent("POST", f"/organisations/{ORG}/approval")[-1][3] == {"override": True}
    assert "Uusi jakaja on hyväksytty." in approved.text
    # The list lags behind: the row shows what cards just answered.
    assert "Odottaa hyväksyntää" not in approved.text


def test_the_partner_answers_only_with_a_decision(app_and_fake):
    app, client, fake = app_and_fake
    sign_in(app, client, "ticket_agent")
    from web.routes.admin_rounds import round_years

    this_year, next_year = round_years()
    fake.on("cards", "GET", f"/continuation-rounds/{this_year}/my-answer", 404, {
        "type": "https://kaikukortti.fi/problems/round-not-found", "detail": "No round."})
    token = csrf_of(client, "/staff/continuation")
    assert catalogue("fi")["continuation.none"] not in client.get("/staff/continuation").text
    fake.on("cards", "GET", f"/continuation-rounds/{next_year}/my-answer", 404, {
        "type": "https://kaikukortti.fi/problems/round-not-found", "detail": "No round."})
    assert catalogue("fi")["continuation.none"] in client.get("/staff/continuation").text
    fake.on("cards", "GET", f"/continuation-rounds/{next_year}/my-answer", 200, {
        "year": next_year, "deadline": f"{next_year}-01-31", "closed": False,
        "organisation_id": ORG, "decision": "leave"})
    page = client.get("/staff/continuation").text
    assert re.search(r'value="leave"[^>]*checked', page)
    assert not re.search(r'value="continue"[^>]*checked', page)
    assert catalogue("fi")["continuation.your_answer"].format(
        decision=catalogue("fi")["decision.leave"]) in page
    refused = client.post("/staff/continuation/2031", data={"csrf": token, "decision": "maybe"})
    assert refused.status_code == 422
    assert catalogue("fi")["continuation.choose"] in refused.text
    assert client.post("/staff/continuation/20x1", data={
        "csrf": token, "decision": "continue"}).status_code == 404
    assert not [c for c in fake.calls if c[1] == "POST"]


def test_closing_a_round_needs_the_confirmation(app_and_fake):
    app, client, fake = app_and_fake
    sign_in(app, client, "kaikukeskus")
    fake.on("cards", "GET", "/continuation-rounds/2031", 200, {
        "year": 2031, "deadline": "2031-01-31", "closed": False, "answers": 0,
        "answered": [], "not_answered": []})
    token = csrf_of(client, "/staff/rounds/2031")
    response = client.post("/staff/rounds/2031/closure", data={"csrf": token})
    assert response.status_code == 422
    assert catalogue("fi")["round.confirm_needed"] in response.text
    assert not fake.sent("POST", "/continuation-rounds/2031/closure")


# --- the venue choice of a ticket agent ------------------------------------------------


def test_a_ticket_agent_chooses_among_the_venues_it_acts_for(app_and_fake):
    app, client, fake = app_and_fake
    sign_in(app, client, "ticket_agent")
    fake.on("venues", "GET", "/venues", 200, [
        {"venue_id": VENUE, "organisation_id": OTHER, "name": "Kulttuuritalo",
         "municipality": "imatra", "limits": {"ticket_agents": [ORG]}}])
    fake.on("cards", "GET", "/network", 200, {"regions": [{"code": "etela-karjala",
             "municipalities": [{"code": "imatra", "name": {"fi": "Imatra", "sv": "Imatra",
                                                            "en": "Imatra"}}]}]})
    page = client.get("/staff/venue").text
    # The place by its name from Kaikukanta's network, never its code.
    assert "Kulttuuritalo (Imatra)" in page and "(imatra)" not in page
    assert catalogue("fi")["venue.which_agent"] in page
    assert fake.sent("GET", "/venues")[0][4]["agent_organisation_id"] == ORG
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    fake.on("venues", "GET", f"/venues/{VENUE}", 200, {
        "venue_id": VENUE, "organisation_id": OTHER, "name": "Kulttuuritalo",
        "limits": {"ticket_agents": []}})
    refused = client.post("/staff/venue", data={"csrf": token, "venue_id": VENUE})
    assert refused.status_code == 403
    assert catalogue("fi")["venue.not_an_agent"] in refused.text
    fake.on("venues", "GET", f"/venues/{VENUE}", 200, {
        "venue_id": VENUE, "organisation_id": OTHER, "name": "Kulttuuritalo",
        "limits": {"ticket_agents": [ORG]}})
    chosen = client.post("/staff/venue", data={"csrf": token, "venue_id": VENUE},
                         follow_redirects=False)
    assert chosen.status_code == 303 and chosen.headers["location"] == "/staff/register"


def test_a_ticket_agent_no_venue_has_named_is_told_so(app_and_fake):
    app, client, fake = app_and_fake
    sign_in(app, client, "ticket_agent")
    fake.on("venues", "GET", "/venues", 200, [])
    assert catalogue("fi")["venue.none_agent"] in client.get("/staff/venue").text


def test_a_user_who_may_not_manage_users_sees_why_and_no_form(app_and_fake):
    app, client, fake = app_and_fake
    sign_in(app, client, "distributor", user_id=USER)  # not an admin user
    assert 'href="/staff/users"' not in client.get("/staff").text
    fake.on("cards", "GET", "/users", 403, {
        "type": "https://kaikukortti.fi/problems/not-yours",
        "detail": "Managing users needs an admin user of the organisation."})
    page = client.get("/staff/users")
    assert 'role="alert"' in page.text and "needs an admin user" in page.text
    assert 'action="/staff/users"' not in page.text


def test_ones_own_password_needs_the_current_one_and_the_session_goes_on(app_and_fake):
    """cards refuses a change of one's own password without the current one (403),
    and the change ends every earlier token: the web signs in with the new one."""
    app, client, fake = app_and_fake
    sign_in(app, client, "distributor", user_id=USER, username="jakaja")
    form = client.get("/staff/password").text
    assert 'name="current_password"' in form and 'autocomplete="current-password"' in form
    token = csrf_of(client, "/staff/password")
    fake.on("cards", "PUT", f"/users/{USER}/password", 403,
            {"type": "https://kaikukortti.fi/problems/current-password-wrong", "status": 403,
             "title": "Forbidden", "detail": "The current password is wrong."})
    wrong = client.post("/staff/password", data={
        "csrf": token, "current_password": "arvaus", "password": "uusi-salasana-1",
        "repeat": "uusi-salasana-1"})
    assert wrong.status_code == 403
    assert catalogue("fi")["users.current_password_wrong"] in wrong.text
    assert fake.sent("PUT", f"/users/{USER}/password")[-1][3] == {
        "password": "uusi-salasana-1", "current_password": "arvaus"}
    fake.on("cards", "PUT", f"/users/{USER}/password", 200, {"user_id": USER})
    fake.on("cards", "POST", "/auth/login", 200, {"access_token": "new-token"})
    done = client.post("/staff/password", data={
        "csrf": token, "current_password": "vanha-salasana", "password": "uusi-salasana-1",
        "repeat": "uusi-salasana-1"})
    assert done.status_code == 200, done.text
    assert fake.sent("POST", "/auth/login")[-1][3] == {"username": "jakaja",
                                                       "password": "uusi-salasana-1"}
    session = app.state.sessions.serializer.loads(done.cookies[SESSION_COOKIE])
    assert session["token"] == "new-token" and session["user_id"] == USER
    # The browser's address goes with the sign-in, for the throttle per address.
    assert fake.clients[-1] == "testclient"


def test_an_admin_resetting_another_users_password_sends_no_current_one(app_and_fake):
    app, client, fake = app_and_fake
    sign_in(app, client, "distributor", admin=True, user_id=USER)
    other = "6f1c2f0e-2a4b-4c5d-8e9f-0a1b2c3d4e5f"
    fake.on("cards", "PUT", f"/users/{other}/password", 200, {"user_id": other})
    fake.on("cards", "GET", "/users", 200, [])
    token = csrf_of(client, f"/staff/users/{other}/password")
    client.post(f"/staff/users/{other}/password", data={
        "csrf": token, "password": "uusi-salasana-1", "repeat": "uusi-salasana-1"})
    assert fake.sent("PUT", f"/users/{other}/password")[-1][3] == {"password": "uusi-salasana-1"}
