"""Venues in memory: the guideline's terms, offering changes and cancellation, the
open-reservation limit, companions, holder refusals, swimming series, library fees."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from eventsourcing.utils import get_topic

from kaiku_dev.assertions import breaks_rule
from kaiku_shared.contracts import event_id_for
from kaiku_shared.eventstore import MetaMapper
from venues.adapters.translate import translate
from venues.application.app import VenuesApplication
from venues.domain.model import CardStanding

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
STARTS = NOW + timedelta(days=30)  # a Monday
ORG = UUID("b81e4d02-6a3f-4f9c-8c55-2e7a1d9b6f30")


@pytest.fixture
def app() -> VenuesApplication:
    return VenuesApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo",
                                  "MAPPER_TOPIC": get_topic(MetaMapper)})


def venue(app, *, kind="performing_arts", **limits) -> UUID:
    venue_id = uuid4()
    app.register_venue(venue_id=venue_id, organisation_id=ORG, name="Kulttuuritalo", kind=kind,
                       municipality="imatra",
                       one_ticket_per_card=limits.pop("one_ticket_per_card", False),
                       max_open_reservations=limits.pop("max_open_reservations", None),
                       ticket_agents=[], **limits)
    return venue_id


def offering(app, venue_id, *, capacity=100, card_cap=5, starts_at=STARTS, **extra) -> UUID:
    offering_id = uuid4()
    app.publish_offering(offering_id=offering_id, venue_id=venue_id, organisation_id=ORG,
                         role="venue", title="Konsertti", kind=extra.pop("kind", "performance"),
                         genres=["music"], subgenres=[], starts_at=starts_at,
                         capacity=capacity, card_cap=card_cap, now=NOW, **extra)
    return offering_id


def register(app, offering_id, card="KXA-12345", *, now=NOW, **extra):
    return app.register_ticket(ticket_id=uuid4(), offering_id=offering_id, card_number=card,
                               card=CardStanding(card_number=card, status="open",
                                                 valid_from=date(2000, 1, 1),
                                                 valid_until=date(2100, 1, 1), children=30),
                               children=extra.pop("children", 0), channel="box_office",
                               organisation_id=ORG, role="venue", now=now, **extra)


def contracts(app, aggregate_id):
    out = []
    for stored in app.recorder.select_events(aggregate_id):
        event = app.mapper.to_domain_event(stored)
        out.append(translate(event, {
            "event_id": event_id_for("venues", 1), "occurred_at": event.timestamp,
            "aggregate_id": event.originator_id, "aggregate_version": event.originator_version}))
    return [c for c in out if c is not None]


def test_visiting_producer_cap_is_2_to_10(app):
    venue_id = venue(app)
    for cap in (1, 11):
        with breaks_rule("visiting-producer-cap"):
            offering(app, venue_id, capacity=800, card_cap=cap, production="visiting")
    assert offering(app, venue_id, capacity=800, card_cap=2, production="visiting")


def test_sales_open_at_least_a_week_before(app):
    venue_id = venue(app)
    with breaks_rule("sales-opening-too-late"):
        offering(app, venue_id, sales_opens_at=STARTS - timedelta(days=6))
    offering_id = offering(app, venue_id, sales_opens_at=STARTS - timedelta(days=7))
    with breaks_rule("sales-not-open"):
        register(app, offering_id, now=STARTS - timedelta(days=8))
    register(app, offering_id, now=STARTS - timedelta(days=7))
    # Opening "now" for a short-notice event is fine: tickets are obtainable at once.
    assert offering(app, venue_id, starts_at=NOW + timedelta(days=2), sales_opens_at=NOW)


def test_excluded_productions_and_weekends(app):
    venue_id = venue(app, excluded_productions=["gala"], weekends_excluded=True)
    gala = offering(app, venue_id, production="gala")
    assert app.get_offering(gala).card_cap == 0
    with breaks_rule("production-excluded"):
        register(app, gala)
    saturday = STARTS + timedelta(days=5)
    weekend = offering(app, venue_id, starts_at=saturday)
    with breaks_rule("weekend-excluded"):
        register(app, weekend)
    weekday = offering(app, venue_id)
    with breaks_rule("weekend-excluded"):
        app.change_offering(offering_id=weekday, organisation_id=ORG, role="venue", now=NOW,
                            starts_at=saturday)
    with breaks_rule("own-productions-included"):
        venue(app, excluded_productions=["own"])


def test_venue_limits_follow_the_guideline(app):
    with breaks_rule("swimming-series-below-guideline"):
        venue(app, kind="swimming_hall", series_visits_per_year=29)
    with breaks_rule("swimming-series-only-for-swimming-halls"):
        venue(app, series_visits_per_year=30)
    with breaks_rule("library-fees-only-for-libraries"):
        venue(app, library_fee_cap_cents=100)


def test_open_reservations_count_only_future_events(app):
    venue_id = venue(app, max_open_reservations=1)
    soon = offering(app, venue_id, starts_at=NOW + timedelta(days=1))
    later = offering(app, venue_id)
    register(app, soon)
    with breaks_rule("open-reservation-limit"):
        register(app, later)
    # Once the first event has started it no longer holds a reservation.
    register(app, later, now=NOW + timedelta(days=1, minutes=1))


def test_open_reservation_limit_is_per_venue(app):
    first, second = venue(app, max_open_reservations=1), venue(app, max_open_reservations=1)
    register(app, offering(app, first))
    register(app, offering(app, second))


def test_companion_takes_a_place_and_is_recorded(app):
    offering_id = offering(app, venue(app), card_cap=3)
    ticket = register(app, offering_id, children=1, companion="interpreter")
    assert ticket.companion == "interpreter"
    assert app.get_offering(offering_id).places_taken == 3


def test_change_rechecks_the_guideline_and_the_places_taken(app):
    offering_id = offering(app, venue(app), capacity=100, card_cap=5)
    register(app, offering_id, children=2)
    with breaks_rule("card-cap-below-guideline"):
        app.change_offering(offering_id=offering_id, organisation_id=ORG, role="venue",
                            now=NOW, capacity=1000)
    with breaks_rule("card-cap-below-taken"):
        app.change_offering(offering_id=offering_id, organisation_id=ORG, role="venue",
                            now=NOW, capacity=50, card_cap=2)
    with breaks_rule("starts-in-past"):
        app.change_offering(offering_id=offering_id, organisation_id=ORG, role="venue",
                            now=NOW, starts_at=NOW - timedelta(hours=1))
    moved = STARTS + timedelta(days=1)
    changed = app.change_offering(offering_id=offering_id, organisation_id=ORG, role="venue",
                                  now=NOW, starts_at=moved, card_cap=8)
    assert (changed.starts_at, changed.card_cap, changed.places_taken) == (moved, 8, 3)
    assert contracts(app, offering_id)[-1].event_type == "offering_changed"
    # A moved event: cancelling is judged against the new start.
    ticket = register(app, offering_id)
    app.cancel_ticket(ticket_id=ticket.id, reason=None, now=STARTS + timedelta(hours=1),
                      organisation_id=ORG, role="venue")


def test_cancelling_an_offering_cancels_every_ticket_once(app):
    venue_id = venue(app, max_open_reservations=1)
    offering_id = offering(app, venue_id, card_cap=5)
    tickets = [register(app, offering_id, card) for card in ("KXA-11111", "KXA-22222")]
    offering_after, cancelled = app.cancel_offering(
        offering_id=offering_id, organisation_id=ORG, role="venue", reason="ill", now=NOW)
    assert offering_after.status == "cancelled" and len(cancelled) == 2
    assert all(app.get_ticket(t.id).status == "cancelled" for t in tickets)
    with breaks_rule("offering-already-cancelled"):
        app.cancel_offering(offering_id=offering_id, organisation_id=ORG, role="venue",
                            reason=None, now=NOW)
    with breaks_rule("offering-cancelled"):
        register(app, offering_id, "KXA-33333")
    # The cards' reservations were released: they can book elsewhere at the venue.
    register(app, offering(app, venue_id), "KXA-11111")
    (event,) = [c for c in contracts(app, offering_id) if c.event_type == "offering_cancelled"]
    assert (event.tickets_cancelled, event.reason) == (2, "ill")


def test_holder_refusal_is_recorded_once_per_request(app):
    offering_id = offering(app, venue(app))
    ticket = register(app, offering_id)
    account = uuid4()
    for _ in range(2):
        app.refuse_holder_cancellation(ticket_id=ticket.id, request_id="req-1",
                                       account_id=account, rule="event-started",
                                       detail="started")
    refusals = [c for c in contracts(app, ticket.id)
                if c.event_type == "ticket_cancellation_refused"]
    assert len(refusals) == 1
    assert (refusals[0].rule, refusals[0].account_id, refusals[0].card_number) == (
        "event-started", account, "KXA-12345")


def test_swimming_series_children_consume_visits(app):
    venue_id = venue(app, kind="swimming_hall", series_visits_per_year=30)
    for _ in range(10):
        series = app.register_swimming_visit(visit_id=uuid4(), venue_id=venue_id,
                                             card_number="KXA-12345", children=2,
                                             organisation_id=ORG, role="venue", now=NOW)
    assert (series.visits_used, series.visits_left) == (30, 0)
    with breaks_rule("swimming-series-used-up"):
        app.register_swimming_visit(visit_id=uuid4(), venue_id=venue_id,
                                    card_number="KXA-12345", children=0,
                                    organisation_id=ORG, role="venue", now=NOW)
    next_year = app.register_swimming_visit(
        visit_id=uuid4(), venue_id=venue_id, card_number="KXA-12345", children=0,
        organisation_id=ORG, role="venue", now=NOW.replace(year=2026))
    assert next_year.visits_used == 1
    visit_id = uuid4()
    again = [app.register_swimming_visit(visit_id=visit_id, venue_id=venue_id,
                                         card_number="KXA-54321", children=0,
                                         organisation_id=ORG, role="venue", now=NOW)
             for _ in range(2)]
    assert again[-1].visits_used == 1  # a retried request is one visit


def test_library_fees_respect_the_yearly_cap(app):
    venue_id = venue(app, kind="library", library_fee_cap_cents=500)

    def cover(amount: int, fee_type: str = "late_fee"):
        return app.cover_library_fee(fee_id=uuid4(), venue_id=venue_id,
                                     card_number="KXA-12345", fee_type=fee_type,
                                     amount_cents=amount, organisation_id=ORG, role="venue",
                                     now=NOW)

    assert cover(300).total_cents == 300
    with breaks_rule("library-fee-cap-reached"):
        cover(201)
    assert cover(200, "copying").total_cents == 500
    with breaks_rule("library-fee-type"):
        cover(1, "parking")
    no_cap = venue(app, kind="library")
    assert app.cover_library_fee(fee_id=uuid4(), venue_id=no_cap, card_number="KXA-12345",
                                 fee_type="interlibrary_loan", amount_cents=10_000,
                                 organisation_id=ORG, role="venue", now=NOW).cap_cents is None
