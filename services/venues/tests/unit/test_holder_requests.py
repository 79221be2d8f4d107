"""Holders' cancellation requests (omakaiku's golden fixture) on venues' tickets,
in memory: cancelled, or the refusal recorded for omakaiku with its rule."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from eventsourcing.utils import get_topic

import kaiku_shared.contracts as contracts
from kaiku_shared.contracts import TicketCancellationRequestedV1
from kaiku_shared.eventstore import MetaMapper
from venues.adapters.holder_requests import on_ticket_cancellation_requested
from venues.application.app import VenuesApplication
from venues.domain.model import CardStanding

ORG = UUID("b81e4d02-6a3f-4f9c-8c55-2e7a1d9b6f30")
FIXTURE = Path(contracts.__file__).parent / "fixtures" / "ticket_cancellation_requested.v1.json"


def request(**changes: object) -> TicketCancellationRequestedV1:
    raw = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return TicketCancellationRequestedV1.model_validate({**raw, **changes})


@pytest.fixture
def app() -> VenuesApplication:
    """The fixture's ticket, registered on the fixture's card for an event in 20 days."""
    app = VenuesApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo",
                                 "MAPPER_TOPIC": get_topic(MetaMapper)})
    now = datetime.now(UTC)
    venue_id, offering_id = uuid4(), uuid4()
    app.register_venue(venue_id=venue_id, organisation_id=ORG, name="Kulttuuritalo",
                       kind="performing_arts", municipality="imatra",
                       one_ticket_per_card=False, max_open_reservations=None, ticket_agents=[])
    app.publish_offering(offering_id=offering_id, venue_id=venue_id, organisation_id=ORG,
                         role="venue", title="Nummisuutarit", kind="performance",
                         genres=["theatre"], subgenres=[], starts_at=now + timedelta(days=20),
                         capacity=100, card_cap=5, now=now)
    held = request()
    card = CardStanding(card_number=held.card_number, status="open",
                        valid_from=date(2000, 1, 1), valid_until=date(2200, 1, 1), children=2)
    app.register_ticket(ticket_id=held.ticket_id, offering_id=offering_id,
                        card_number=held.card_number, card=card, children=0,
                        channel="box_office", organisation_id=ORG, role="venue", now=now)
    return app


async def test_the_holders_request_cancels_the_ticket(app) -> None:
    await on_ticket_cancellation_requested(request(), app)
    ticket = app.get_ticket(request().ticket_id)
    assert (ticket.status, ticket.refused_requests) == ("cancelled", [])


async def test_a_repeated_request_changes_nothing_and_is_not_refused(app) -> None:
    await on_ticket_cancellation_requested(request(), app)
    await on_ticket_cancellation_requested(request(event_id=str(uuid4())), app)
    ticket = app.get_ticket(request().ticket_id)
    assert (ticket.status, ticket.refused_requests) == ("cancelled", [])


async def test_another_cards_request_is_refused_as_not_your_ticket(app) -> None:
    other = request(card_number="KXB-54321")
    await on_ticket_cancellation_requested(other, app)
    ticket = app.get_ticket(other.ticket_id)
    assert (ticket.status, ticket.refused_requests) == ("registered", [str(other.event_id)])
    refused = [e for e in app.repository.event_store.get(ticket.id)
               if type(e).__name__ == "CancellationRefused"]
    assert [e.rule for e in refused] == ["not-your-ticket"]


async def test_a_request_for_an_unknown_ticket_is_left_alone(app) -> None:
    await on_ticket_cancellation_requested(request(ticket_id=str(uuid4())), app)
