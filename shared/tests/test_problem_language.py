"""Problems in the reader's language: Accept-Language picks fi, sv or en; the
``type``, ``status`` and the fields named never change with it."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from kaiku_shared.http import (
    MAX_BODY_BYTES,
    PROBLEM_BASE,
    Problem,
    RequestMiddleware,
    install_error_handlers,
    unprocessable,
)
from kaiku_shared.kernel.errors import NotFound, RuleViolation
from kaiku_shared.problems import negotiate


@pytest.mark.parametrize("header, language", [
    (None, "en"),
    ("", "en"),
    ("fi", "fi"),
    ("sv", "sv"),
    ("sv-FI", "sv"),
    ("SV-fi", "sv"),
    ("fi-FI,fi;q=0.9,en;q=0.8", "fi"),
    ("en-GB,fi;q=0.8", "en"),
    ("de-DE, sv;q=0.5", "sv"),       # the only supported one acceptable
    ("de, fr;q=0.9", "en"),          # none supported: English
    ("fi;q=0, sv;q=0.1", "sv"),      # q=0: not acceptable
    ("fi;q=0", "en"),
    ("sv;q=0.4, fi;q=0.7", "fi"),    # quality, not order
    ("sv, fi", "sv"),                # a tie: the first listed
    ("*", "en"),
    ("fi;q=abc, sv;q=0.2", "sv"),    # a malformed range is skipped
    ("f!;q=1", "en"),
])
def test_accept_language_is_negotiated(header, language):
    assert negotiate(header) == language


class Visit(BaseModel):
    children: int = Field(ge=0, le=30)
    name: str = Field(min_length=1, max_length=5)
    code: str = Field(default="ab", pattern="^[a-z]+$")


def build() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/closed")
    async def closed() -> dict:
        raise RuleViolation("card-closed", "Card KXA-12345 is closed.")

    @app.get("/field")
    async def field() -> dict:
        raise unprocessable("postal-code", "A postal code is five digits, e.g. 00100.",
                            "postal_code")

    @app.get("/missing")
    async def missing() -> dict:
        raise NotFound("Card", "No card KXA-12345 in Kaikukanta.")

    @app.get("/unlisted")
    async def unlisted() -> dict:
        raise Problem(409, "Refused by a rule", "Only in English.", kind="not-in-any-catalogue")

    @app.post("/visits")
    async def visits(body: Visit) -> dict:
        return body.model_dump()

    app.add_middleware(RequestMiddleware, service="test")
    return TestClient(app)


def get(path: str, language: str | None):
    headers = {"Accept-Language": language} if language else {}
    return build().get(path, headers=headers)


@pytest.mark.parametrize("language, title, detail", [
    ("en", "Refused by a rule", "Card KXA-12345 is closed."),
    ("fi-FI", "Kortti on suljettu", "Kortti KXA-12345 on suljettu."),
    ("sv-FI", "Kortet är stängt", "Kortet KXA-12345 är stängt."),
])
def test_a_rule_is_refused_in_the_language_asked_for(language, title, detail):
    response = get("/closed", language)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["content-language"] == language[:2]
    assert "Accept-Language" in response.headers["vary"]
    assert response.json() == {"type": PROBLEM_BASE + "card-closed", "title": title,
                               "status": 409, "detail": detail, "instance": "/closed"}


def test_without_accept_language_the_answer_is_english():
    response = get("/closed", None)
    assert response.headers["content-language"] == "en"
    assert response.json()["detail"] == "Card KXA-12345 is closed."


def test_a_fields_message_follows_its_detail_and_the_field_keeps_its_name():
    problem = get("/field", "sv").json()
    assert problem["detail"] == "Ett postnummer består av fem siffror, till exempel 00100."
    assert problem["errors"] == [{"field": "postal_code", "message": problem["detail"]}]


def test_not_found_names_what_in_finnish():
    problem = get("/missing", "fi").json()
    assert problem["type"] == PROBLEM_BASE + "card-not-found"
    assert (problem["title"], problem["detail"]) == (
        "Korttia ei löydy", "Korttia KXA-12345 ei löydy Kaikukannasta.")


def test_a_kind_the_catalogue_lacks_stays_english_and_says_so():
    response = get("/unlisted", "fi")
    assert response.headers["content-language"] == "en"
    assert response.json()["detail"] == "Only in English."


@pytest.mark.parametrize("language, missing, too_long, pattern, range_", [
    ("en", "Field required", "String should have at most 5 characters",
     "String should match pattern '^[a-z]+$'", "must be between 0 and 30"),
    ("fi", "pakollinen tieto puuttuu", "arvossa saa olla enintään 5 merkkiä",
     "arvo ei ole vaaditussa muodossa (^[a-z]+$)", "arvon on oltava välillä 0–30"),
    ("sv", "obligatorisk uppgift saknas", "värdet får ha högst 5 tecken",
     "värdet har inte det format som krävs (^[a-z]+$)", "värdet ska vara mellan 0 och 30"),
])
def test_validation_messages_are_in_the_language_asked_for(language, missing, too_long,
                                                            pattern, range_):
    client = build()
    headers = {"Accept-Language": language}
    first = client.post("/visits", json={"name": "x"}, headers=headers)
    second = client.post("/visits", json={"children": 31, "name": "toolong", "code": "A1"},
                         headers=headers)
    assert first.status_code == second.status_code == 422
    assert first.headers["content-language"] == language
    assert first.json()["type"] == PROBLEM_BASE + "validation"
    assert first.json()["errors"] == [{"field": "children", "message": missing}]
    assert second.json()["errors"] == [
        {"field": "children", "message": range_},
        {"field": "name", "message": too_long},
        {"field": "code", "message": pattern},
    ]
    assert f"children: {range_}" in second.json()["detail"]


def test_validation_in_finnish_has_a_finnish_title_and_detail():
    problem = build().post("/visits", json={"name": ""},
                           headers={"Accept-Language": "fi"}).json()
    assert problem["title"] == "Virheellinen pyyntö"
    assert problem["detail"].startswith("Tarkista nämä kentät: children: pakollinen")
    assert {"field": "name", "message": "arvo ei saa olla tyhjä"} in problem["errors"]


@pytest.mark.parametrize("language, detail", [
    ("en", "PUT is not allowed here; use POST."),
    ("fi", "Menetelmä PUT ei ole sallittu tässä osoitteessa. Sallitut menetelmät: POST."),
    ("sv", "Metoden PUT är inte tillåten på den här adressen. Tillåtna metoder: POST."),
])
def test_method_not_allowed_fills_the_methods_into_each_language(language, detail):
    response = build().put("/visits", headers={"Accept-Language": language})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["detail"] == detail


def test_not_found_route_and_too_large_body_follow_the_language():
    client = build()
    assert client.get("/nowhere", headers={"Accept-Language": "sv"}).json()["title"] == \
        "Hittades inte"
    response = client.post("/visits", content=b"x" * (MAX_BODY_BYTES + 1),
                           headers={"Accept-Language": "fi",
                                    "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-language"] == "fi"
    assert response.json()["detail"] == "Pyynnön sisältö saa olla enintään 1 000 000 tavua."
