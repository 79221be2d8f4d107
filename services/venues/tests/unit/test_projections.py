"""Each of venues' projection handlers against the contracts' golden fixtures.

No server: a handler is given a connection that records each statement it runs
and the arguments it binds, and answers as Postgres would (an UPDATE's row
count, a lookup's value). That the SQL itself keeps the rows right on a real
database is the integration test's part (tests/integration/test_schema.py).
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.utils import get_topic

import kaiku_shared.contracts as contracts
from kaiku_shared.contracts import (
    CardChangedV1,
    CardClosedV1,
    CardIssuedV1,
    CardRenewedV1,
    FeedbackGivenV1,
    FeedbackGivenV2,
    IntegrationEvent,
    MobileCardKeyPublishedV1,
    OfferingCancelledV1,
    OfferingChangedV1,
    OfferingPublishedV1,
    OfferingTermsPublishedV1,
    TicketCancelledV1,
    TicketRegisteredV1,
    VenueChangedV1,
    VenueRegisteredV1,
)
from kaiku_shared.eventstore import MetaMapper
from venues.adapters import projections
from venues.adapters.projections import NotYetKnown
from venues.application.app import VenuesApplication

FIXTURES = Path(contracts.__file__).parent / "fixtures"
AGENT = UUID("c4d2e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f")


def golden(contract: type[IntegrationEvent]) -> Any:
    path = FIXTURES / f"{contract.EVENT_TYPE}.v{contract.VERSION}.json"
    return contract.model_validate(json.loads(path.read_text(encoding="utf-8")))


class RecordingConnection:
    """Records (statement, arguments); ``updated`` is the row count an UPDATE
    reports, ``listed`` what a ``fetchval`` finds."""

    def __init__(self, *, updated: int = 1, listed: object = None) -> None:
        self.updated, self.listed = updated, listed
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    def _record(self, sql: str, args: tuple[Any, ...]) -> str:
        statement = " ".join(sql.split())
        placeholders = {int(n) for n in re.findall(r"\$(\d+)", statement)}
        # Every argument bound to a placeholder, and none left over.
        assert placeholders == set(range(1, len(args) + 1)), (statement, args)
        self.statements.append((statement, args))
        return statement

    async def execute(self, sql: str, *args: Any) -> str:
        statement = self._record(sql, args)
        return f"UPDATE {self.updated}" if statement.startswith("UPDATE") else "INSERT 0 1"

    async def fetchval(self, sql: str, *args: Any) -> object:
        self._record(sql, args)
        return self.listed

    def only(self) -> tuple[str, tuple[Any, ...]]:
        assert len(self.statements) == 1, self.statements
        return self.statements[0]


@pytest.fixture
def venues() -> VenuesApplication:
    """Venues' own application, in memory, with the fixtures' venue registered."""
    app = VenuesApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo",
                                 "MAPPER_TOPIC": get_topic(MetaMapper)})
    registered = golden(VenueRegisteredV1)
    app.register_venue(
        venue_id=registered.venue_id, organisation_id=registered.organisation_id,
        name=registered.name, kind=registered.kind, municipality=registered.municipality,
        one_ticket_per_card=True, max_open_reservations=2, ticket_agents=[AGENT],
        contact={"phone": "+358 20 617 6611", "box_office": "Virastokatu 1"},
        timezone="Europe/Helsinki")
    return app


def test_the_durable_consumers_keep_their_names_streams_and_contracts() -> None:
    built = {c.name: (c.source, set(c.handlers)) for c in projections.consumers(None)}
    assert built == {
        "venues-card-validity": ("cards", {CardIssuedV1, CardRenewedV1, CardChangedV1,
                                           CardClosedV1}),
        "venues-offering-list": ("venues", {OfferingPublishedV1, OfferingTermsPublishedV1,
                                            OfferingChangedV1, OfferingCancelledV1}),
        "venues-feedback": ("omakaiku", {FeedbackGivenV1, FeedbackGivenV2}),
        "venues-venue-list": ("venues", {VenueRegisteredV1, VenueChangedV1}),
        "venues-mobile-card-keys": ("omakaiku", {MobileCardKeyPublishedV1}),
        "venues-ticket-list": ("venues", {TicketRegisteredV1, TicketCancelledV1}),
    }


async def test_a_built_consumer_applies_its_handler_with_the_application(venues) -> None:
    (venue_list,) = [c for c in projections.consumers(venues) if c.name == "venues-venue-list"]
    conn = RecordingConnection()
    await venue_list.handlers[VenueRegisteredV1](golden(VenueRegisteredV1), conn)
    _, args = conn.only()
    assert args[6] == [AGENT]  # read from the application it was built with


# --- cards -------------------------------------------------------------------------------


async def test_card_issued_records_validity_and_children_and_nothing_personal() -> None:
    event = golden(CardIssuedV1)
    conn = RecordingConnection()
    await projections.on_card_issued(event, conn, None)
    statement, args = conn.only()
    assert statement.startswith("INSERT INTO card_validity_view")
    assert "'open'" in statement
    # A renewal that arrived first keeps its later validity and children.
    assert "coalesce(card_validity_view.valid_until" in statement
    assert args == ("KXA-12345", date(2025, 3, 3), date(2026, 3, 2), 2, 1)
    assert not {event.birth_year, event.postal_code, event.life_satisfaction} & set(args)


@pytest.mark.parametrize("contract, handler, children, version", [
    (CardRenewedV1, projections.on_card_renewed, 2, 2),
    (CardChangedV1, projections.on_card_changed, 3, 3),
])
async def test_a_renewal_or_change_moves_only_an_older_row(contract, handler, children,
                                                            version) -> None:
    conn = RecordingConnection()
    await handler(golden(contract), conn, None)
    statement, args = conn.only()
    assert statement.startswith("INSERT INTO card_validity_view")
    assert "WHERE card_validity_view.version < excluded.version" in statement
    assert args == ("KXA-12345", date(2027, 2, 19), children, version)


async def test_card_closed_is_final_whatever_the_order() -> None:
    conn = RecordingConnection()
    await projections.on_card_closed(golden(CardClosedV1), conn, None)
    statement, args = conn.only()
    assert "DO UPDATE SET status = 'closed'" in statement
    assert "greatest(card_validity_view.version, excluded.version)" in statement
    assert args == ("KXA-12345", 4)


# --- the offering list ---------------------------------------------------------------------


async def test_offering_published_lists_the_offering_once() -> None:
    event = golden(OfferingPublishedV1)
    conn = RecordingConnection()
    await projections.on_offering_published(event, conn, None)
    statement, args = conn.only()
    assert statement.startswith("INSERT INTO offering_view")
    assert statement.endswith("ON CONFLICT (offering_id) DO NOTHING")
    assert args == (event.offering_id, event.venue_id, "Imatran Kaupunginteatteri",
                    "Nummisuutarit", "performance", ["theatre"], ["comedy"],
                    event.starts_at, "imatra", 320, 10, 1)
    assert isinstance(args[7], datetime) and args[7].utcoffset() is not None


async def test_offering_terms_carry_the_limits_and_the_venues_public_contact(venues) -> None:
    event = golden(OfferingTermsPublishedV1)
    conn = RecordingConnection()
    await projections.on_offering_terms_published(event, conn, venues)
    statement, args = conn.only()
    assert statement.startswith("UPDATE offering_view SET production = $2")
    assert args[:6] == (event.offering_id, "visiting", "performing_arts",
                        event.sales_opens_at, None, args[5])
    assert json.loads(args[5]) == {"one_ticket_per_card": True, "max_open_reservations": 2,
                                   "weekends_excluded": False,
                                   "excluded_productions": ["gala", "premiere"]}
    assert json.loads(args[6]) == {"phone": "+358 20 617 6611",
                                   "box_office": "Virastokatu 1"}


async def test_offering_terms_without_the_application_have_no_contact() -> None:
    conn = RecordingConnection()
    await projections.on_offering_terms_published(golden(OfferingTermsPublishedV1), conn, None)
    assert json.loads(conn.only()[1][6]) == {}


async def test_offering_terms_before_the_offering_wait_for_it() -> None:
    with pytest.raises(NotYetKnown):
        await projections.on_offering_terms_published(
            golden(OfferingTermsPublishedV1), RecordingConnection(updated=0), None)


async def test_offering_changed_moves_only_an_older_row() -> None:
    event = golden(OfferingChangedV1)
    conn = RecordingConnection()
    await projections.on_offering_changed(event, conn, None)
    statement, args = conn.only()
    assert statement.endswith("WHERE offering_id = $1 AND version < $7")
    assert args == (event.offering_id, "Nummisuutarit (lisäesitys)", event.starts_at, 320,
                    10, event.sales_opens_at, 5)


async def test_an_older_offering_change_is_settled_but_one_before_the_offering_waits() -> None:
    overtaken = RecordingConnection(updated=0, listed=1)
    await projections.on_offering_changed(golden(OfferingChangedV1), overtaken, None)
    assert overtaken.statements[1][0].startswith("SELECT 1 FROM offering_view")
    with pytest.raises(NotYetKnown):
        await projections.on_offering_changed(
            golden(OfferingChangedV1), RecordingConnection(updated=0, listed=None), None)


async def test_offering_cancelled_marks_it_with_the_reason() -> None:
    event = golden(OfferingCancelledV1)
    conn = RecordingConnection()
    await projections.on_offering_cancelled(event, conn, None)
    statement, args = conn.only()
    assert "status = 'cancelled'" in statement and "version" not in statement
    assert args == (event.offering_id, "lead actor ill")
    with pytest.raises(NotYetKnown):
        await projections.on_offering_cancelled(event, RecordingConnection(updated=0), None)


# --- feedback and mobile-card keys ---------------------------------------------------------


async def test_feedback_counts_one_row_per_answer_by_its_own_id() -> None:
    event = golden(FeedbackGivenV2)
    conn = RecordingConnection()
    await projections.on_feedback_given(event, conn, None)
    statement, args = conn.only()
    assert "ticket" not in statement
    assert statement.endswith("ON CONFLICT (feedback_id) DO NOTHING")
    assert args == (event.feedback_id, event.venue_id, event.offering_id, 4, 5, 3)


async def test_a_v1_feedback_is_stored_without_its_ticket_and_the_same_on_redelivery() -> None:
    event = golden(FeedbackGivenV1)
    stored = []
    for _ in range(2):
        conn = RecordingConnection()
        await projections.on_feedback_given_v1(event, conn, None)
        statement, args = conn.only()
        assert statement.endswith("ON CONFLICT (feedback_id) DO NOTHING")
        assert event.ticket_id not in args and event.aggregate_id not in args
        assert args[1:] == (event.venue_id, event.offering_id, 4, 5, 3)
        stored.append(args[0])
    assert stored[0] == stored[1] == event.upcast().feedback_id


async def test_a_mobile_card_key_keeps_its_first_row() -> None:
    event = golden(MobileCardKeyPublishedV1)
    conn = RecordingConnection()
    await projections.on_mobile_card_key_published(event, conn, None)
    statement, args = conn.only()
    assert statement.endswith("ON CONFLICT (kid) DO NOTHING")
    assert args == ("zu4CZFmnVHAbh1ZB", "EdDSA", "OKP", "Ed25519",
                    "HzChDaEHV-t32rdbVVlk0wsw8h4y4yin9MR2SYV0Rcg", event.published_at)


# --- the venue list ------------------------------------------------------------------------


async def test_venue_registered_reads_agents_contact_and_limits_from_the_venue(venues) -> None:
    event = golden(VenueRegisteredV1)
    conn = RecordingConnection()
    await projections.on_venue_registered(event, conn, venues)
    statement, args = conn.only()
    assert statement.endswith("ON CONFLICT (venue_id) DO NOTHING")
    assert args[:7] == (event.venue_id, event.organisation_id, "Imatran Kaupunginteatteri",
                        "performing_arts", "imatra", "Europe/Helsinki", [AGENT])
    assert json.loads(args[7]) == {"phone": "+358 20 617 6611",
                                   "box_office": "Virastokatu 1"}
    limits = json.loads(args[8])
    assert limits["ticket_agents"] == [str(AGENT)]
    assert limits["one_ticket_per_card"] is True and limits["max_open_reservations"] == 2
    assert args[9] == 1


async def test_venue_registered_without_the_application_lists_the_contract_alone() -> None:
    conn = RecordingConnection()
    await projections.on_venue_registered(golden(VenueRegisteredV1), conn, None)
    args = conn.only()[1]
    assert args[5:9] == ("Europe/Helsinki", [], "{}", "{}")


async def test_venue_changed_moves_the_agents_of_an_older_row_only() -> None:
    event = golden(VenueChangedV1)
    conn = RecordingConnection()
    await projections.on_venue_changed(event, conn, None)
    statement, args = conn.only()
    assert statement.endswith("WHERE venue_id = $1 AND version < $4")
    assert args[:5] == (event.venue_id, [AGENT], json.dumps([str(AGENT)]), 2,
                        "Imatran Kaupunginteatteri")
    assert json.loads(args[5])["box_office"] == "ti–pe 12–18, la 11–14"
    assert args[6] is None  # limits did not change: the row's stay


async def test_venue_changed_from_before_name_and_contact_travelled_keeps_them() -> None:
    event = golden(VenueChangedV1).model_copy(update={"name": None, "contact": None})
    conn = RecordingConnection()
    await projections.on_venue_changed(event, conn, None)
    assert conn.only()[1][4:] == (None, None, None)  # coalesce: the row's name and contact


# --- the box office's ticket list -------------------------------------------------------


async def test_a_registered_ticket_is_listed_once_with_its_registration_time() -> None:
    event = golden(TicketRegisteredV1)
    conn = RecordingConnection()
    await projections.on_ticket_registered(event, conn, None)
    statement, args = conn.only()
    assert statement.endswith("ON CONFLICT (ticket_id) DO NOTHING")  # a redelivery: no change
    assert args == (event.ticket_id, event.offering_id, event.venue_id, event.card_number,
                    event.children, event.occurred_at)


async def test_a_cancellation_before_its_registration_waits_for_it() -> None:
    event = golden(TicketCancelledV1)
    await projections.on_ticket_cancelled(event, RecordingConnection(updated=1), None)
    with pytest.raises(NotYetKnown):
        await projections.on_ticket_cancelled(event, RecordingConnection(updated=0), None)
