"""The projections' table and the decisions of each handler, against the golden
fixtures of the contracts (no servers: the pure part of each handler; what the
SQL does is in tests/integration/test_read_models.py)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

import kaiku_shared.contracts as contracts
from kaiku_shared.consumer import MessageProcessor
from kaiku_shared.contracts import (
    GenreSubscriptionsChangedV1,
    IntegrationEvent,
    NetworkChangedV1,
    OfferingChangedV1,
    OfferingPublishedV1,
    TicketCancellationRequestedV1,
    TicketCancelledV1,
)
from notifications.adapters import projections
from notifications.adapters.queries import Place

FIXTURES = Path(contracts.__file__).parent / "fixtures"


def raw(contract: type[IntegrationEvent]) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{contract.EVENT_TYPE}.v{contract.VERSION}.json")
                      .read_text(encoding="utf-8"))


def golden(contract: type[IntegrationEvent], **changes: Any) -> Any:
    return contract.model_validate({**raw(contract), **changes})


# --- the table and the consumers built from it -------------------------------------------


def test_each_contract_has_one_durable_consumer_on_its_producers_stream() -> None:
    built = {c.name: c for c in projections.consumers()}
    assert {name: (c.source, sorted(c.handled_types)) for name, c in built.items()} == {
        "notifications-subscriptions": ("omakaiku", [
            "account_activated", "account_erased", "genre_subscriptions_changed",
            "ticket_cancellation_requested"]),
        "notifications-offering-fanout": ("venues", ["offering_published"]),
        "notifications-venues": ("venues", [
            "offering_changed", "ticket_cancelled", "ticket_registered", "venue_registered"]),
        "notifications-cards": ("cards", [
            "card_issued", "card_replaced", "organisation_registered"]),
        "notifications-network": ("cards", ["network_changed"]),
    }
    handled = {contract: handler for c in built.values() for contract, handler in
               c.handlers.items()}
    assert handled == projections.HANDLERS


@pytest.mark.parametrize("contract", list(projections.HANDLERS), ids=lambda c: c.__name__)
def test_the_consumer_of_each_contract_decodes_its_golden_fixture(
        contract: type[IntegrationEvent]) -> None:
    (consumer,) = [c for c in projections.consumers() if contract in c.handlers]
    processor = MessageProcessor(consumer, pool=None)  # type: ignore[arg-type]
    event = processor.decode(json.dumps(raw(contract)).encode())
    assert event == contract.model_validate(raw(contract))


# --- omakaiku -----------------------------------------------------------------------------


def test_subscriptions_are_one_row_per_genre_and_subgenre_with_the_region_filter() -> None:
    event = golden(GenreSubscriptionsChangedV1)
    account = UUID("7b3f9e2d-4c81-4a6e-9f05-d2b8a1c6e347")
    assert projections.subscription_rows(event) == [
        (account, "jazz", 2, "etela-karjala"), (account, "music", 2, "etela-karjala"),
        (account, "theatre", 2, "etela-karjala")]


@pytest.mark.parametrize(("region", "kept"), [(" Etela-Karjala ", "etela-karjala"),
                                              (None, None), ("", None)])
def test_a_region_filter_is_trimmed_and_casefolded_and_none_is_none(region, kept) -> None:
    rows = projections.subscription_rows(golden(GenreSubscriptionsChangedV1, region=region))
    assert {row[3] for row in rows} == {kept}


def test_a_genre_both_chosen_and_a_subgenre_is_one_row() -> None:
    event = golden(GenreSubscriptionsChangedV1, genres=["jazz"], subgenres=["jazz"])
    assert [row[1] for row in projections.subscription_rows(event)] == ["jazz"]


def test_a_cancellation_request_goes_to_the_venue_organisations_inbox() -> None:
    event = golden(TicketCancellationRequestedV1)
    organisation = UUID("b81e4d02-6a3f-4f9c-8c55-2e7a1d9b6f30")
    ticket = {"organisation_id": organisation, "offering_title": "Nummisuutarit",
              "starts_at": datetime.fromisoformat("2025-04-12T19:00:00+03:00"),
              "offering_id": UUID("5c2e8f71-9b04-4d3a-b7e6-1a8f0c4d2e95"),
              "venue_id": UUID("0d9a7c3b-1e52-4b8f-a6d4-73c2e91f5a08")}
    owner, item_id, sender, subject, body, payload = projections.cancellation_request_item(
        event, ticket)
    assert owner == f"organisation:{organisation}" and item_id == event.event_id
    assert json.loads(sender) == {"kind": "holder", "card_number": "KXA-12345"}
    assert subject == "Cancellation request: Nummisuutarit"
    assert "KXA-12345" in body and "2025-04-12T19:00:00+03:00" in body
    assert json.loads(payload) == {
        "ticket_id": "e4a17b9c-3d65-4f20-8b1e-9c7d2a5f0b36", "card_number": "KXA-12345",
        "offering_id": "5c2e8f71-9b04-4d3a-b7e6-1a8f0c4d2e95",
        "venue_id": "0d9a7c3b-1e52-4b8f-a6d4-73c2e91f5a08"}


# --- venues --------------------------------------------------------------------------------


def test_an_offering_in_a_known_municipality_names_it_and_its_region() -> None:
    event = golden(OfferingPublishedV1)
    assert projections.offering_params(event, Place("imatra", "etela-karjala")) == {
        "offering_id": "5c2e8f71-9b04-4d3a-b7e6-1a8f0c4d2e95", "title": "Nummisuutarit",
        "venue_name": "Imatran Kaupunginteatteri", "starts_at": "2025-04-12T19:00:00+03:00",
        "municipality": "imatra", "region": "etela-karjala"}


def test_an_offering_the_network_does_not_place_says_so_with_an_empty_region() -> None:
    params = projections.offering_params(golden(OfferingPublishedV1, municipality=" Nowhere "),
                                         None)
    assert (params["municipality"], params["region"]) == ("nowhere", "")


def test_a_cancelled_ticket_tells_the_holder_why_and_who_asked() -> None:
    event = golden(TicketCancelledV1)
    title, params = projections.ticket_cancelled_notice(event, "Nummisuutarit")
    assert title == "Ticket cancelled: Nummisuutarit"
    assert params == {"ticket_id": "e4a17b9c-3d65-4f20-8b1e-9c7d2a5f0b36",
                      "offering_id": "5c2e8f71-9b04-4d3a-b7e6-1a8f0c4d2e95",
                      "offering_title": "Nummisuutarit", "reason": "holder cancelled",
                      "requested_by_holder": "true"}
    title, params = projections.ticket_cancelled_notice(
        golden(TicketCancelledV1, reason=None, requested_by_holder=False), None)
    assert title == "Ticket cancelled"
    assert (params["offering_title"], params["reason"], params["requested_by_holder"]) == (
        "", "", "false")


def test_each_change_of_an_offering_is_its_own_notification() -> None:
    fifth = projections.offering_changed_notice(golden(OfferingChangedV1))
    again = projections.offering_changed_notice(golden(OfferingChangedV1))
    sixth = projections.offering_changed_notice(golden(OfferingChangedV1, aggregate_version=6))
    assert fifth == again  # a redelivery or replay makes the same source id
    assert fifth[0] != sixth[0]
    assert fifth[1] == "Changed: Nummisuutarit (lisäesitys)"
    assert fifth[2] == {"offering_id": "5c2e8f71-9b04-4d3a-b7e6-1a8f0c4d2e95",
                        "title": "Nummisuutarit (lisäesitys)",
                        "starts_at": "2025-04-12T16:00:00+00:00"}


# --- cards' network -------------------------------------------------------------------------


def test_the_network_gives_regions_and_municipalities_with_their_lookup_keys() -> None:
    event = golden(NetworkChangedV1)
    ((code, names, country, changed_at),) = projections.network_region_rows(event)
    assert (code, country, changed_at) == ("etela-karjala", "FI", event.occurred_at)
    assert json.loads(names)["sv"] == "Södra Karelen"
    ((code, region, names, status, country, keys, changed_at),) = (
        projections.network_municipality_rows(event))
    assert (code, region, status, country) == ("imatra", "etela-karjala", "in_use", "FI")
    assert keys == ["imatra"] and changed_at == event.occurred_at


def test_a_municipality_is_found_by_its_code_or_any_of_its_names() -> None:
    municipality = {**raw(NetworkChangedV1)["municipalities"][0], "code": "lappeenranta",
                    "name": {"fi": "Lappeenranta", "sv": "Villmanstrand", "en": ""}}
    event = golden(NetworkChangedV1, municipalities=[municipality])
    (row,) = projections.network_municipality_rows(event)
    assert row[5] == ["lappeenranta", "villmanstrand"]
    assert projections.normalise(" VILLMANSTRAND ") in row[5]


def test_normalise_composes_and_casefolds() -> None:
    decomposed = "A\u0308ha\u0308nekoski"  # Ä written as A + combining diaeresis
    assert projections.normalise(f"  {decomposed} ") == "ähänekoski"
    assert projections.normalise("Straße") == "strasse"
