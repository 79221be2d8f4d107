"""Venues: the national guideline's limits and ticket use cases, in memory."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from eventsourcing.utils import get_topic

from kaiku_shared.contracts import (
    OfferingPublishedV1,
    OfferingTermsPublishedV1,
    TicketCancelledV1,
    TicketRegisteredV1,
    VenueRegisteredV1,
    event_id_for,
)
from kaiku_shared.eventstore import MetaMapper
from venues.adapters.translate import translate
from venues.application.app import Forbidden, NotFound, VenuesApplication
from venues.domain.model import CardStanding, RuleViolation, card_cap_guideline, minimum_card_cap

STARTS = datetime(2025, 4, 12, 16, 0, tzinfo=UTC)
BEFORE = STARTS - timedelta(days=10)
VENUE_ORG = UUID("b81e4d02-6a3f-4f9c-8c55-2e7a1d9b6f30")
AGENT = UUID("c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f")


class Refused:
    """``with Refused("rule"):`` — a RuleViolation naming exactly this rule."""

    def __init__(self, rule: str, status: int | None = None) -> None:
        self.rule, self.status = rule, status
        self._ctx = pytest.raises(RuleViolation)

    def __enter__(self):
        self.info = self._ctx.__enter__()
        return self.info

    def __exit__(self, *exc):
        suppressed = self._ctx.__exit__(*exc)
        assert self.info.value.rule == self.rule, (self.info.value.rule, str(self.info.value))
        if self.status is not None:
            assert self.info.value.status == self.status
        return suppressed


@pytest.fixture
def app() -> VenuesApplication:
    return VenuesApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo",
                                  "MAPPER_TOPIC": get_topic(MetaMapper)})


def venue(app: VenuesApplication, *, one_ticket_per_card: bool = False,
          ticket_agents: list[UUID] | None = None,
          max_open_reservations: int | None = None) -> UUID:
    venue_id = uuid4()
    app.register_venue(venue_id=venue_id, organisation_id=VENUE_ORG,
                       name="Imatran Kaupunginteatteri", kind="performing_arts",
                       municipality="imatra", one_ticket_per_card=one_ticket_per_card,
                       max_open_reservations=max_open_reservations,
                       ticket_agents=ticket_agents or [])
    return venue_id


def offering(app: VenuesApplication, venue_id: UUID, *, capacity: int = 100,
             card_cap: int = 3, kind: str = "performance",
             starts_at: datetime = STARTS) -> UUID:
    offering_id = uuid4()
    app.publish_offering(offering_id=offering_id, venue_id=venue_id, organisation_id=VENUE_ORG,
                         role="venue", title="Nummisuutarit", kind=kind, genres=["theatre"],
                         subgenres=["comedy"], starts_at=starts_at, capacity=capacity,
                         card_cap=card_cap)
    return offering_id


def register(app: VenuesApplication, offering_id: UUID, card: str = "KXA-12345", *,
             children: int = 0, ticket_id: UUID | None = None, now: datetime = BEFORE,
             organisation_id: UUID = VENUE_ORG, role: str = "venue"):
    return app.register_ticket(ticket_id=ticket_id or uuid4(), offering_id=offering_id,
                               card_number=card, card=open_card(card), children=children,
                               channel="box_office", organisation_id=organisation_id,
                               role=role, now=now)


def open_card(number: str) -> CardStanding:
    """A card valid for decades, covering many children: only the offering's rules speak."""
    return CardStanding(card_number=number, status="open", valid_from=date(2000, 1, 1),
                        valid_until=date(2100, 1, 1), children=30)


# --- the guideline's minimum card cap -------------------------------------------------


@pytest.mark.parametrize(("capacity", "kind", "minimum"), [
    (1, "performance", 1),
    (10, "performance", 1),       # 0.3 rounds up to 1
    (33, "performance", 1),       # 0.99 → 1
    (34, "performance", 2),       # 1.02 → 2
    (100, "performance", 3),      # exactly 3 %
    (101, "performance", 4),      # 3.03 rounds up
    (320, "exhibition", 10),      # 9.6 → 10
    (700, "event", 21),           # exactly 21, no float noise
    (1000, "performance", 30),    # 1,000 is not "over 1,000"
    (1001, "event", 20),          # a mass event may cap at 20
    (15000, "event", 20),
    (30, "course", 1),            # adult-education: at least 1 place per course
    (2000, "course", 1),
])
def test_minimum_card_cap(capacity: int, kind: str, minimum: int) -> None:
    assert minimum_card_cap(capacity, kind) == minimum


def test_minimum_card_cap_is_3_percent_rounded_up_for_every_size() -> None:
    for capacity in range(1, 1001):
        assert minimum_card_cap(capacity, "performance") == max(1, -(-capacity * 3 // 100))


@pytest.mark.parametrize(("capacity", "kind", "rule"), [
    (30, "course", "course"), (2000, "course", "course"), (700, "event", "share"),
    (1000, "performance", "share"), (1001, "event", "mass-event"),
])
def test_the_guideline_names_the_rule_that_gave_the_minimum(capacity: int, kind: str,
                                                            rule: str) -> None:
    assert card_cap_guideline(capacity, kind) == (minimum_card_cap(capacity, kind), rule)


def test_publishing_below_the_guideline_is_refused(app: VenuesApplication) -> None:
    venue_id = venue(app)
    with Refused("card-cap-below-guideline", status=422) as info:
        offering(app, venue_id, capacity=320, card_cap=9)
    assert "at least 10" in str(info.value) and info.value.field == "card_cap"
    assert app.get_offering(offering(app, venue_id, capacity=320, card_cap=10)).card_cap == 10


def test_mass_events_may_cap_at_twenty(app: VenuesApplication) -> None:
    venue_id = venue(app)
    assert offering(app, venue_id, capacity=1500, card_cap=20, kind="event")
    with Refused("card-cap-below-guideline") as info:
        offering(app, venue_id, capacity=1500, card_cap=19, kind="event")
    assert "over 1,000" in str(info.value)


def test_a_course_needs_one_place(app: VenuesApplication) -> None:
    venue_id = venue(app)
    assert offering(app, venue_id, capacity=15, card_cap=1, kind="course")
    with Refused("card-cap-below-guideline"):
        offering(app, venue_id, capacity=15, card_cap=0, kind="course")


def test_offering_shape_is_checked(app: VenuesApplication) -> None:
    venue_id = venue(app)
    with Refused("card-cap-over-capacity", status=422):
        offering(app, venue_id, capacity=10, card_cap=11)
    with Refused("capacity", status=422):
        offering(app, venue_id, capacity=0, card_cap=0)
    with Refused("offering-kind", status=422):
        offering(app, venue_id, kind="gala")


def test_only_the_venue_organisation_publishes(app: VenuesApplication) -> None:
    venue_id = venue(app)
    with pytest.raises(Forbidden):
        app.publish_offering(offering_id=uuid4(), venue_id=venue_id, organisation_id=uuid4(),
                             role="venue", title="X", kind="performance", genres=["theatre"],
                             subgenres=[], starts_at=STARTS, capacity=100, card_cap=3)
    published = app.publish_offering(
        offering_id=uuid4(), venue_id=venue_id, organisation_id=None, role="kaikukeskus",
        title="X", kind="performance", genres=["theatre"], subgenres=[], starts_at=STARTS,
        capacity=100, card_cap=3)
    assert published.venue_id == venue_id


def test_publishing_the_same_offering_twice_is_one_offering(app: VenuesApplication) -> None:
    venue_id = venue(app)
    offering_id = offering(app, venue_id)
    version = app.get_offering(offering_id).version
    again = app.publish_offering(
        offering_id=offering_id, venue_id=venue_id, organisation_id=VENUE_ORG, role="venue",
        title="Nummisuutarit", kind="performance", genres=["theatre"], subgenres=[],
        starts_at=STARTS, capacity=100, card_cap=3)
    assert again.id == offering_id and again.version == version


def test_unknown_venue_and_offering_are_not_found(app: VenuesApplication) -> None:
    with pytest.raises(NotFound):
        offering(app, uuid4())
    with pytest.raises(NotFound):
        register(app, uuid4())


# --- registering tickets ----------------------------------------------------------------


def test_a_registration_takes_the_holder_and_children(app: VenuesApplication) -> None:
    offering_id = offering(app, venue(app), card_cap=3)
    ticket = register(app, offering_id, children=2)
    assert (ticket.card_number, ticket.children, ticket.status) == ("KXA-12345", 2, "registered")
    assert (ticket.offering_title, ticket.municipality, ticket.starts_at) == (
        "Nummisuutarit", "imatra", STARTS)
    assert app.get_offering(offering_id).places_taken == 3


def test_the_card_cap_counts_holder_and_children(app: VenuesApplication) -> None:
    offering_id = offering(app, venue(app), card_cap=3)
    with Refused("card-cap-reached", status=409) as info:
        register(app, offering_id, children=3)  # 4 places asked, 3 in the cap
    assert "3 card place(s) left, 4 asked" in str(info.value)
    register(app, offering_id, "KXA-11111", children=1)
    register(app, offering_id, "KXA-22222")
    with Refused("card-cap-reached"):
        register(app, offering_id, "KXA-33333")
    assert app.get_offering(offering_id).places_taken == 3


def test_one_ticket_per_card_when_the_venue_chose_it(app: VenuesApplication) -> None:
    offering_id = offering(app, venue(app, one_ticket_per_card=True), card_cap=5)
    register(app, offering_id, "KXA-12345")
    with Refused("one-ticket-per-card"):
        register(app, offering_id, "KXA-12345")
    register(app, offering_id, "KXA-54321")  # another card is fine
    assert app.get_offering(offering_id).places_taken == 2


def test_several_tickets_per_card_when_the_venue_did_not(app: VenuesApplication) -> None:
    offering_id = offering(app, venue(app, one_ticket_per_card=False), card_cap=5)
    register(app, offering_id, "KXA-12345")
    register(app, offering_id, "KXA-12345")
    assert app.get_offering(offering_id).places_taken == 2


def test_one_ticket_per_card_applies_per_performance(app: VenuesApplication) -> None:
    venue_id = venue(app, one_ticket_per_card=True)
    first, second = offering(app, venue_id), offering(app, venue_id)
    register(app, first, "KXA-12345")
    assert register(app, second, "KXA-12345").offering_id == second


@pytest.mark.parametrize("now", [STARTS, STARTS + timedelta(minutes=1)])
def test_cannot_register_after_the_start(app: VenuesApplication, now: datetime) -> None:
    offering_id = offering(app, venue(app))
    with Refused("event-started", status=422):
        register(app, offering_id, now=now)
    register(app, offering_id, now=STARTS - timedelta(seconds=1))


def test_the_same_ticket_id_twice_is_one_ticket(app: VenuesApplication) -> None:
    offering_id = offering(app, venue(app, one_ticket_per_card=True), card_cap=3)
    ticket_id = uuid4()
    first = register(app, offering_id, ticket_id=ticket_id, children=1)
    again = register(app, offering_id, ticket_id=ticket_id, children=1)
    assert again.id == first.id == ticket_id and again.version == 1
    assert app.get_offering(offering_id).places_taken == 2


def test_ticket_agents_only_when_listed(app: VenuesApplication) -> None:
    venue_id = venue(app, ticket_agents=[AGENT])
    offering_id = offering(app, venue_id, card_cap=5)
    ticket = register(app, offering_id, organisation_id=AGENT, role="ticket_agent")
    assert ticket.registered_by == AGENT
    with pytest.raises(Forbidden):
        register(app, offering_id, organisation_id=uuid4(), role="ticket_agent")
    unlisted = offering(app, venue(app), card_cap=5)
    with pytest.raises(Forbidden):
        register(app, unlisted, organisation_id=AGENT, role="ticket_agent")
    assert app.get_offering(offering_id).places_taken == 1


def test_other_organisations_cannot_register(app: VenuesApplication) -> None:
    offering_id = offering(app, venue(app))
    with pytest.raises(Forbidden):
        register(app, offering_id, organisation_id=uuid4(), role="venue")
    with pytest.raises(Forbidden):  # the venue's org id, but not in a venue role
        register(app, offering_id, organisation_id=VENUE_ORG, role="distributor")
    assert app.get_offering(offering_id).places_taken == 0


def test_the_simultaneous_reservation_limit_holds(app: VenuesApplication) -> None:
    venue_id = venue(app, max_open_reservations=1)
    first, second = offering(app, venue_id), offering(app, venue_id)
    register(app, first, "KXA-12345")
    with Refused("open-reservation-limit", status=409):
        register(app, second, "KXA-12345")
    register(app, second, "KXA-54321")  # another card is fine


# --- cancelling ---------------------------------------------------------------------------


def test_cancel_frees_the_places(app: VenuesApplication) -> None:
    offering_id = offering(app, venue(app, one_ticket_per_card=True), card_cap=3)
    ticket = register(app, offering_id, children=2)
    with Refused("card-cap-reached"):
        register(app, offering_id, "KXA-54321")
    cancelled = app.cancel_ticket(ticket_id=ticket.id, reason="ill", now=BEFORE,
                                  organisation_id=VENUE_ORG, role="venue")
    assert cancelled.status == "cancelled"
    assert app.get_offering(offering_id).places_taken == 0
    register(app, offering_id, "KXA-54321", children=2)
    # The same card may book again once its ticket is cancelled.
    other = offering(app, venue(app, one_ticket_per_card=True), card_cap=3)
    again = register(app, other, "KXA-12345")
    app.cancel_ticket(ticket_id=again.id, reason=None, now=BEFORE,
                      organisation_id=VENUE_ORG, role="venue")
    register(app, other, "KXA-12345")


def test_cancelling_twice_is_refused(app: VenuesApplication) -> None:
    offering_id = offering(app, venue(app), card_cap=5)
    ticket = register(app, offering_id, children=1)
    register(app, offering_id, "KXA-54321")
    app.cancel_ticket(ticket_id=ticket.id, reason=None, now=BEFORE,
                      organisation_id=VENUE_ORG, role="venue")
    with Refused("already-cancelled"):
        app.cancel_ticket(ticket_id=ticket.id, reason=None, now=BEFORE,
                          organisation_id=VENUE_ORG, role="venue")
    assert app.get_offering(offering_id).places_taken == 1  # released once only


def test_cannot_cancel_after_the_start(app: VenuesApplication) -> None:
    offering_id = offering(app, venue(app))
    ticket = register(app, offering_id)
    with Refused("event-started"):
        app.cancel_ticket(ticket_id=ticket.id, reason=None, now=STARTS,
                          organisation_id=VENUE_ORG, role="venue")
    assert app.get_offering(offering_id).places_taken == 1


def test_holder_cancels_only_their_own_ticket(app: VenuesApplication) -> None:
    offering_id = offering(app, venue(app))
    ticket = register(app, offering_id, "KXA-12345")
    with pytest.raises(Forbidden):
        app.cancel_ticket(ticket_id=ticket.id, reason="holder cancelled", now=BEFORE,
                          requested_by_holder=True, card_number="KXA-99999")
    cancelled = app.cancel_ticket(ticket_id=ticket.id, reason="holder cancelled", now=BEFORE,
                                  requested_by_holder=True, card_number="KXA-12345")
    assert cancelled.status == "cancelled"


def test_other_organisations_cannot_cancel(app: VenuesApplication) -> None:
    offering_id = offering(app, venue(app))
    ticket = register(app, offering_id)
    with pytest.raises(Forbidden):
        app.cancel_ticket(ticket_id=ticket.id, reason=None, now=BEFORE,
                          organisation_id=uuid4(), role="venue")
    assert app.get_ticket(ticket.id).status == "registered"


def test_cancelling_an_unknown_ticket_is_not_found(app: VenuesApplication) -> None:
    with pytest.raises(NotFound):
        app.cancel_ticket(ticket_id=uuid4(), reason=None, now=BEFORE,
                          organisation_id=VENUE_ORG, role="venue")


# --- what the relay publishes ----------------------------------------------------------------


def _contracts(app: VenuesApplication, aggregate_id: UUID) -> list:
    out = []
    for stored in app.recorder.select_events(aggregate_id):
        event = app.mapper.to_domain_event(stored)
        out.append(translate(event, {
            "event_id": event_id_for("venues", 1), "occurred_at": event.timestamp,
            "aggregate_id": event.originator_id,
            "aggregate_version": event.originator_version}))
    return out


def test_venue_offering_and_ticket_events_translate_to_contracts(
    app: VenuesApplication,
) -> None:
    venue_id = venue(app)
    offering_id = offering(app, venue_id, capacity=320, card_cap=10)
    ticket = register(app, offering_id, children=1)
    app.cancel_ticket(ticket_id=ticket.id, reason="holder cancelled", now=BEFORE,
                      requested_by_holder=True, card_number="KXA-12345")

    (registered_venue,) = _contracts(app, venue_id)
    assert isinstance(registered_venue, VenueRegisteredV1)
    assert (registered_venue.venue_id, registered_venue.organisation_id) == (venue_id, VENUE_ORG)

    published, terms, *bookkeeping = _contracts(app, offering_id)
    assert isinstance(terms, OfferingTermsPublishedV1)
    assert (terms.venue_id, terms.production, terms.venue_kind) == (
        venue_id, "own", "performing_arts")
    assert isinstance(published, OfferingPublishedV1)
    assert (published.capacity, published.card_cap, published.genres, published.subgenres) == (
        320, 10, ("theatre",), ("comedy",))
    assert (published.venue_name, published.municipality) == (
        "Imatran Kaupunginteatteri", "imatra")
    assert bookkeeping and all(c is None for c in bookkeeping)  # places stay inside

    registered, cancelled = _contracts(app, ticket.id)
    assert isinstance(registered, TicketRegisteredV1)
    assert (registered.card_number, registered.children, registered.registered_by) == (
        "KXA-12345", 1, VENUE_ORG)
    assert registered.starts_at == STARTS
    assert isinstance(cancelled, TicketCancelledV1)
    assert (cancelled.requested_by_holder, cancelled.reason, cancelled.aggregate_version) == (
        True, "holder cancelled", 2)


# --- ticket agents change (PATCH /venues/{id}) -------------------------------------------


def test_changing_ticket_agents_is_one_event_and_leaves_as_venue_changed(
        app: VenuesApplication) -> None:
    from venues.domain.model import Venue

    kept, removed = uuid4(), uuid4()
    venue_id = venue(app, ticket_agents=[kept, removed])
    changed = app.change_venue(venue_id, VENUE_ORG, "venue", ticket_agents=[kept, kept])[0]
    assert changed.ticket_agents == [kept]  # duplicates dropped
    assert changed.may_register_for(kept, "ticket_agent")
    assert not changed.may_register_for(removed, "ticket_agent")
    again = app.change_venue(venue_id, VENUE_ORG, "venue", ticket_agents=[kept])[0]
    assert again.version == changed.version  # unchanged: no event
    stored = [app.mapper.to_domain_event(e) for e in app.recorder.select_events(venue_id)]
    assert [type(e) for e in stored] == [Venue.Registered, Venue.TicketAgentsChanged]
    contract = translate(stored[1], {"event_id": uuid4(), "occurred_at": datetime.now(UTC),
                                     "aggregate_id": venue_id, "aggregate_version": 2})
    assert (contract.venue_id, contract.organisation_id, contract.ticket_agents,
            contract.changed) == (venue_id, VENUE_ORG, (kept,), ("ticket_agents",))


def test_only_the_venue_or_kaikukeskus_changes_its_ticket_agents(app: VenuesApplication) -> None:
    venue_id = venue(app)
    with pytest.raises(Forbidden):
        app.change_venue(venue_id, uuid4(), "venue", ticket_agents=[uuid4()])[0]
    with pytest.raises(Forbidden):
        app.change_venue(venue_id, VENUE_ORG, "ticket_agent", ticket_agents=[uuid4()])[0]
    agent = uuid4()
    assert app.change_venue(venue_id, None, "kaikukeskus", ticket_agents=[agent])[0].ticket_agents == [
        agent]


# --- name, contact and limits change (PATCH /venues/{id}) -----------------------------------


def _contracts(app: VenuesApplication, venue_id: UUID) -> list:
    stored = [app.mapper.to_domain_event(e) for e in app.recorder.select_events(venue_id)]
    return [translate(e, {"event_id": uuid4(), "occurred_at": datetime.now(UTC),
                          "aggregate_id": venue_id, "aggregate_version": e.originator_version})
            for e in stored]


def test_a_profile_change_is_one_event_leaving_with_the_whole_state(
        app: VenuesApplication) -> None:
    agent = uuid4()
    venue_id = venue(app, ticket_agents=[agent])
    changed, parts = app.change_venue(
        venue_id, VENUE_ORG, "venue", name=" Imatran Teatteri ",
        contact={"phone": "020 617 1234", "email": "", "box_office": "ti–pe 12–18"})
    assert parts == ["profile"]
    assert (changed.name, changed.contact) == (
        "Imatran Teatteri", {"phone": "020 617 1234", "box_office": "ti–pe 12–18"})
    assert app.change_venue(venue_id, VENUE_ORG, "venue", name="Imatran Teatteri")[1] == []
    contract = _contracts(app, venue_id)[-1]
    assert (contract.changed, contract.name, contract.contact.phone, contract.ticket_agents) \
        == (("name", "contact"), "Imatran Teatteri", "020 617 1234", (agent,))
    with Refused("venue-name-empty", status=422):
        app.change_venue(venue_id, VENUE_ORG, "venue", name="  ")


def test_limits_change_within_the_guideline_only(app: VenuesApplication) -> None:
    venue_id = venue(app)
    with Refused("own-productions-included", status=422):
        app.change_venue(venue_id, VENUE_ORG, "venue",
                         limits={"excluded_productions": ["own"]})
    with Refused("swimming-series-only-for-swimming-halls", status=422):
        app.change_venue(venue_id, VENUE_ORG, "venue", limits={"series_visits_per_year": 40})
    with Refused("unknown-limit", status=422):
        app.change_venue(venue_id, VENUE_ORG, "venue", limits={"max_tickets": 3})
    assert app.get_venue(venue_id).version == 1  # nothing half-written
    changed, parts = app.change_venue(venue_id, None, "kaikukeskus",
                                      limits={"weekends_excluded": True})
    assert parts == ["limits"] and changed.limits["weekends_excluded"] is True
    assert changed.limits["max_open_reservations"] is None  # the others stay
    assert app.change_venue(venue_id, VENUE_ORG, "venue",
                            limits={"one_ticket_per_card": None})[1] == []  # null is off
    assert _contracts(app, venue_id)[-1].changed == ("limits",)


def test_a_new_limit_applies_to_offerings_published_from_then_on(
        app: VenuesApplication) -> None:
    """Tightening a limit never breaks a ticket held nor refuses one on an offering
    published before: only the next offering carries the new limit."""
    venue_id = venue(app)
    earlier = offering(app, venue_id)
    register(app, earlier, "KXA-12345")
    app.change_venue(venue_id, VENUE_ORG, "venue",
                     limits={"max_open_reservations": 1, "one_ticket_per_card": True})
    register(app, earlier, "KXA-12345")  # the earlier offering keeps its terms
    later, next_one = offering(app, venue_id), offering(app, venue_id)
    assert app.get_offering(later).limits["max_open_reservations"] == 1
    register(app, later, "KXA-12345")
    with Refused("one-ticket-per-card", status=409):
        register(app, later, "KXA-12345")
    # Counted from the first offering that carries the limit on.
    with Refused("open-reservation-limit", status=409):
        register(app, next_one, "KXA-12345")
    register(app, next_one, "KXB-23456")


def test_one_patch_changing_everything_saves_one_event_per_part(
        app: VenuesApplication) -> None:
    from venues.domain.model import Venue

    venue_id = venue(app)
    _, parts = app.change_venue(venue_id, VENUE_ORG, "venue", name="Uusi nimi",
                                contact={"url": "https://example.fi"},
                                limits={"one_ticket_per_card": True},
                                ticket_agents=[uuid4()])
    assert parts == ["profile", "limits", "ticket_agents"]
    stored = [type(app.mapper.to_domain_event(e)) for e in app.recorder.select_events(venue_id)]
    assert stored == [Venue.Registered, Venue.ProfileChanged, Venue.LimitsChanged,
                      Venue.TicketAgentsChanged]
    with pytest.raises(Forbidden):
        app.change_venue(venue_id, uuid4(), "venue", name="Vieras")
