"""Problems from the running services in Finnish, Swedish and English, chosen
by Accept-Language: the same bad request gets the same ``type``, ``status`` and
field names in every language, only the words change."""

from __future__ import annotations

import pytest

from kaiku_shared.http import PROBLEM_BASE

pytestmark = pytest.mark.e2e

CARD = {"birth_year": 1980, "postal_code": "55A10", "municipality": "Imatra", "children": 0}


async def _post_card(world, language: str, body: dict) -> tuple[dict, dict]:
    async with world.system.client("cards", world.distributor_token) as client:
        response = await client.post("/cards", json=body,
                                     headers={"Accept-Language": language})
    assert response.headers["content-type"] == "application/problem+json"
    assert "Accept-Language" in response.headers["vary"]
    return response.json(), {"status": response.status_code,
                             "language": response.headers["content-language"]}


@pytest.mark.parametrize("language, answered, detail", [
    ("en-GB", "en", "A postal code is five digits, e.g. 00100."),
    ("fi-FI,fi;q=0.9,en;q=0.5", "fi", "Postinumero on viisi numeroa, esimerkiksi 00100."),
    ("sv-FI,sv;q=0.9", "sv", "Ett postnummer består av fem siffror, till exempel 00100."),
])
async def test_a_rule_refused_by_cards_in_each_language(world, language, answered, detail):
    problem, meta = await _post_card(world, language, CARD)
    assert meta == {"status": 422, "language": answered}
    assert problem["type"] == PROBLEM_BASE + "postal-code"
    assert problem["detail"] == detail
    assert problem["errors"] == [{"field": "postal_code", "message": detail}]


@pytest.mark.parametrize("language, message", [
    ("en", "Field required"),
    ("fi", "pakollinen tieto puuttuu"),
    ("sv", "obligatorisk uppgift saknas"),
])
async def test_a_missing_field_in_each_language(world, language, message):
    body = {key: value for key, value in CARD.items() if key != "birth_year"}
    problem, meta = await _post_card(world, language, body)
    assert meta == {"status": 422, "language": language}
    assert problem["type"] == PROBLEM_BASE + "validation"
    assert {"field": "birth_year", "message": message} in problem["errors"]


@pytest.mark.parametrize("language, title, detail", [
    ("en", "Card not found", "No card QQQ-99999 in Kaikukanta."),
    ("fi", "Korttia ei löydy", "Korttia QQQ-99999 ei löydy Kaikukannasta."),
    ("sv", "Kortet hittades inte", "Kortet QQQ-99999 finns inte i Kaikukanta."),
])
async def test_an_unknown_card_in_each_language(world, language, title, detail):
    async with world.system.client("cards", world.distributor_token) as client:
        response = await client.get("/cards/QQQ-99999", headers={"Accept-Language": language})
    assert response.status_code == 404
    assert response.headers["content-language"] == language
    problem = response.json()
    assert problem["type"] == PROBLEM_BASE + "card-not-found"
    assert (problem["title"], problem["detail"]) == (title, detail)


@pytest.mark.parametrize("language, detail", [
    ("en", "Card QQQ-99998 is not in Kaikukanta. Check the number."),
    ("fi", "Korttia QQQ-99998 ei ole Kaikukannassa. Tarkista kortin numero."),
    ("sv", "Kortet QQQ-99998 finns inte i Kaikukanta. Kontrollera kortnumret."),
])
async def test_venues_refuses_an_unknown_card_in_each_language(world, language, detail):
    offering_id = await world.publish_offering()
    async with world.system.client("venues", world.venue_token) as client:
        response = await client.post(
            "/tickets", json={"card_number": "QQQ-99998", "offering_id": offering_id,
                              "children": 0}, headers={"Accept-Language": language})
    assert response.status_code == 422
    assert response.headers["content-language"] == language
    problem = response.json()
    assert problem["type"] == PROBLEM_BASE + "card-unknown"
    assert problem["detail"] == detail
    assert problem["errors"] == [{"field": "card_number", "message": detail}]
