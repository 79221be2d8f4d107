"""The statistics rebuild gives exactly the rows the live consumers build.

Both apply one definition (``statistics_fold``): the live handlers one fact at a
time through Postgres (lock, read, fold, write back), the rebuild in memory and
then with COPY. These tests run both on a real Postgres and compare every row:

- a property test: random histories of every handled fact, with few cards,
  tickets and organisations so that facts about the same row meet, and the two
  streams interleaved at random on the live side;
- the real thing: cards issued, renewed, changed, closed and replaced through
  the domain and saved in the event store, the live handlers fed the contracts
  as they come off the wire (JSON), and ``rebuild`` reading the event store.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from uuid import NAMESPACE_URL, UUID, uuid5

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cards.adapters import rebuild as rebuilding
from cards.adapters import projections, queries
from cards.adapters import public_stats
from cards.adapters.statistics_fold import (
    CARD_FOLDS,
    DESK_FOLDS,
    FOLDS,
    TABLES,
    USAGE_FOLDS,
    VENUE_FOLDS,
)
from kaiku_shared.contracts import (
    CardChangedV1,
    CardClosedV1,
    CardIssuedV1,
    CardRenewedV1,
    CardReplacedV1,
    CardUsesImportedV1,
    IntegrationEvent,
    LibraryFeeCoveredV1,
    OfferingPublishedV1,
    OrganisationRegisteredV1,
    OrganisationStatusChangedV1,
    SwimmingVisitRegisteredV1,
    TicketCancelledV1,
    TicketRegisteredV1,
    VenueChangedV1,
    VenueRegisteredV1,
)
from kaiku_shared.contracts.events import ImportedUse
from kaiku_shared.db import ensure_database
from kaiku_dev.testing import Namespace, unique_namespace

LIVE = "stats_live"


def _ids(kind: str, n: int) -> list[UUID]:
    return [uuid5(NAMESPACE_URL, f"/test/{kind}/{i}") for i in range(n)]


CARDS = ["1000001", "1000002", "1000003"]
ORGS = _ids("organisation", 2)
TICKETS = _ids("ticket", 3)
USES = _ids("use", 3)  # never a ticket's id, as in life
PLACES = [("imatra", "etela-karjala"), ("kajaani", "kainuu")]

days = st.dates(date(2023, 1, 1), date(2026, 12, 31))
moments = st.datetimes(datetime(2023, 1, 1), datetime(2026, 12, 31),
                       timezones=st.just(UTC))
answers = st.none() | st.integers(0, 10)
children = st.integers(0, 4)


@st.composite
def fact(draw, contract: type[IntegrationEvent], **fields) -> IntegrationEvent:
    envelope = {"event_id": draw(st.uuids()), "occurred_at": draw(moments),
                "aggregate_id": draw(st.uuids()), "aggregate_version": draw(st.integers(1, 5))}
    return contract.build(**envelope, **{k: draw(v) for k, v in fields.items()})


cards = st.sampled_from(CARDS)
places = st.sampled_from(PLACES)


@st.composite
def card_fact(draw) -> IntegrationEvent:
    municipality, region = draw(places)
    kind = draw(st.sampled_from(list(CARD_FOLDS)))
    common = {"card_number": cards}
    if kind is CardIssuedV1:
        return draw(fact(kind, **common, issuer_organisation_id=st.sampled_from(ORGS),
                         valid_from=days, valid_until=days, children=children,
                         birth_year=st.integers(1930, 2009), postal_code=st.just("55100"),
                         municipality=st.just(municipality), region=st.just(region),
                         community=st.booleans(), life_satisfaction=answers))
    if kind is CardRenewedV1:
        return draw(fact(kind, **common, valid_until=days, children=children,
                         municipality=st.just(municipality), region=st.just(region),
                         life_satisfaction=answers, wellbeing_impact=answers))
    if kind is CardChangedV1:
        return draw(fact(kind, **common, valid_until=days, children=children,
                         postal_code=st.just("87100"), municipality=st.just(municipality),
                         region=st.just(region)))
    if kind is CardClosedV1:
        return draw(fact(kind, **common, reason=st.sampled_from(["lost", "other"])))
    if kind is CardReplacedV1:
        return draw(fact(kind, **common, replacement_card_number=cards, valid_until=days))
    if kind is CardUsesImportedV1:
        use = st.builds(ImportedUse, use_id=st.sampled_from(USES), used_at=moments,
                        venue_municipality=st.sampled_from([p[0] for p in PLACES]),
                        children=children)
        return draw(fact(kind, **common, uses=st.lists(use, min_size=1, max_size=3)
                         .map(tuple)))
    if kind is OrganisationRegisteredV1:
        return draw(fact(kind, organisation_id=st.sampled_from(ORGS),
                         kind=st.sampled_from(["distributor", "venue"]),
                         name=st.sampled_from(["Jakaja", "Teatteri"]),
                         municipality=st.just(municipality)))
    assert kind is OrganisationStatusChangedV1
    return draw(fact(kind, organisation_id=st.sampled_from(ORGS),
                     status=st.sampled_from(["approved", "left"])))


@st.composite
def ticket_fact(draw) -> IntegrationEvent:
    """A fact from the venues stream: a ticket's, a swimming visit or a library fee,
    a venue's registration or change, an offering's publication."""
    kind = draw(st.sampled_from([*USAGE_FOLDS, *DESK_FOLDS, *VENUE_FOLDS]))
    if kind is VenueRegisteredV1:
        return draw(fact(kind, venue_id=st.sampled_from(ORGS), organisation_id=st.uuids(),
                         name=st.sampled_from(["Teatteri", "Uimahalli"]),
                         kind=st.sampled_from(["performing_arts", "swimming_hall"]),
                         municipality=st.sampled_from([p[0] for p in PLACES])))
    if kind is VenueChangedV1:
        return draw(fact(kind, venue_id=st.sampled_from(ORGS), organisation_id=st.uuids(),
                         changed=st.sampled_from([("name",), ("contact",)]),
                         name=st.none() | st.sampled_from(["Uusi nimi", "Sali"])))
    if kind is OfferingPublishedV1:
        return draw(fact(kind, offering_id=st.sampled_from(ORGS),
                         venue_id=st.sampled_from(ORGS), venue_name=st.just("Teatteri"),
                         title=st.just("Hamlet"), kind=st.just("performance"),
                         genres=st.sampled_from([(), ("theatre",), ("music", "theatre")]),
                         starts_at=moments, municipality=st.just("imatra"),
                         capacity=st.just(100), card_cap=st.just(10)))
    if kind is SwimmingVisitRegisteredV1:
        return draw(fact(kind, card_number=cards, venue_id=st.sampled_from(ORGS),
                         year=st.just(2026), children=children, visits=st.integers(1, 5),
                         visits_used=st.integers(1, 30), registered_by=st.uuids()))
    if kind is LibraryFeeCoveredV1:
        return draw(fact(kind, card_number=cards, venue_id=st.sampled_from(ORGS),
                         year=st.just(2026), fee_type=st.just("late_fee"),
                         amount_cents=st.integers(1, 900),
                         year_total_cents=st.integers(1, 9000), registered_by=st.uuids()))
    common = {"ticket_id": st.sampled_from(TICKETS), "card_number": cards,
              "offering_id": st.sampled_from(ORGS), "venue_id": st.sampled_from(ORGS),
              "children": children}
    if kind is TicketRegisteredV1:
        return draw(fact(kind, **common, offering_title=st.just("Hamlet"),
                         venue_name=st.sampled_from(["Teatteri", "Sali"]),
                         municipality=st.sampled_from([p[0] for p in PLACES]),
                         starts_at=moments, channel=st.just("box_office"),
                         registered_by=st.uuids()))
    return draw(fact(kind, **common, reason=st.none(), requested_by_holder=st.booleans()))


@st.composite
def histories(draw) -> tuple[list[IntegrationEvent], list[IntegrationEvent], list[bool]]:
    """(the cards stream, the venues stream, how the live side interleaves them)."""
    card_facts = draw(st.lists(card_fact(), max_size=25))
    ticket_facts = draw(st.lists(ticket_fact(), max_size=12))
    interleave = draw(st.permutations([True] * len(card_facts) + [False] * len(ticket_facts)))
    return card_facts, ticket_facts, interleave


# --- plumbing --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def namespace(servers):
    """A cards database of this module's own: the session's is shared with tests that
    write cards events of their own, and this module needs to know every event in it."""
    own = Namespace(unique_namespace("rb"), servers)
    yield own
    asyncio.run(own.drop())


@pytest.fixture(scope="module")
def database(namespace):
    """A connection to this run's cards database, on a loop of its own (hypothesis
    drives the test synchronously)."""
    loop = asyncio.new_event_loop()

    async def connect() -> asyncpg.Connection:
        await ensure_database(namespace.settings, "cards")
        return await asyncpg.connect(namespace.settings.service_database_url("cards"))

    conn = loop.run_until_complete(connect())
    yield loop, conn
    loop.run_until_complete(conn.close())
    loop.close()


async def _rows(conn: asyncpg.Connection, schema: str) -> dict[str, list[tuple]]:
    return {table.name: [tuple(r) for r in await conn.fetch(
        f"SELECT {', '.join(table.columns)} FROM {schema}.{table.name} "
        f"ORDER BY {', '.join(table.key)}")] for table in TABLES}


async def _live_apply(conn: asyncpg.Connection, event: IntegrationEvent) -> None:
    """What the live consumer does with a fact it has not seen (one transaction)."""
    handlers = {**projections.CARD_HANDLERS, **projections.VENUE_SOURCED_HANDLERS}
    async with conn.transaction():
        await handlers[type(event)](event, conn)


# --- the property ----------------------------------------------------------------------

@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(history=histories())
def test_rebuild_fold_equals_the_live_handlers(database, history) -> None:
    loop, conn = database
    card_facts, ticket_facts, interleave = history

    async def check() -> None:
        # live: the two streams interleaved, one fact per transaction
        await rebuilding.create_statistics_schema(conn, LIVE)
        cards_, tickets_ = iter(card_facts), iter(ticket_facts)
        for from_cards in interleave:
            await _live_apply(conn, next(cards_) if from_cards else next(tickets_))
        # rebuild: the cards history, then the venues stream, folded in memory
        folded = rebuilding.Accumulator()
        for event in [*card_facts, *ticket_facts]:
            folded.apply(FOLDS[type(event)](event))
        async with rebuilding.ShadowWriter(conn) as shadow:
            await shadow.rows(folded)
        assert await _rows(conn, rebuilding.SHADOW) == await _rows(conn, LIVE)

    loop.run_until_complete(check())


# --- the real thing --------------------------------------------------------------------

def _history(app) -> None:
    """Cards through the domain, saved in the event store: issued, renewed with
    answers, changed, closed, replaced, community cards, imported uses."""
    import random
    from datetime import timedelta

    from cards.domain.model import Card, Organisation

    rng = random.Random(7)
    distributor = Organisation.register(ORGS[0], "distributor", "Jakaja", "imatra",
                                        pending=True)
    distributor.approve(override=False)
    venue = Organisation.register(ORGS[1], "venue", "Teatteri", "kajaani")
    venue.leave(2025)
    app.save(distributor, venue)
    for i in range(60):
        municipality, region = PLACES[i % 2]
        issued = date(2024, 1, 1) + timedelta(days=rng.randrange(600))
        card = Card.issue(
            card_number=f"20{i:05d}", issuer_organisation_id=ORGS[0], today=issued,
            birth_year=rng.randrange(1940, 2005), postal_code="55100",
            municipality=municipality, region=region, children=rng.randrange(3),
            valid_until=None, community=i % 10 == 9, issue_key=None,
            life_satisfaction=None if i % 3 or i % 10 == 9 else rng.randrange(11))
        card.import_uses([{"use_id": uuid5(NAMESPACE_URL, f"/test/real-use/{i}/{n}"),
                           "used_at": datetime.combine(issued, datetime.min.time(), UTC),
                           "venue_municipality": "imatra", "children": n % 2}
                          for n in range(i % 4)])
        saved = [card]
        if i % 4 == 1:
            card.renew(today=card.valid_until, valid_until=None,
                       life_satisfaction=None if card.community else rng.randrange(11),
                       wellbeing_impact=None)
        if i % 5 == 2:
            card.change(children=3, postal_code=None, municipality=PLACES[0][0],
                        region=PLACES[0][1])
        if i % 7 == 3:
            card.close("other")
        elif i % 7 == 4:
            replacement = Card.issue_replacement(card, card_number=f"30{i:05d}",
                                                 today=issued + timedelta(days=30),
                                                 issue_key=None)
            card.replace(replacement=replacement.card_number, today=issued + timedelta(days=30))
            saved.append(replacement)
        app.save(*saved)


async def _live_from_the_wire(conn: asyncpg.Connection, app, *, shuffle: int | None) -> None:
    """Relay + consumer without NATS: each stored event translated as the relay
    does, sent as JSON, decoded and applied as the live consumer does."""
    import random

    from kaiku_shared.consumer import Consumer
    from kaiku_shared.contracts import contract_for
    from kaiku_shared.eventstore import events_table

    rows = await conn.fetch(
        "SELECT notification_id, originator_id, originator_version, topic, state "
        f'FROM public."{events_table(app.name)}" ORDER BY notification_id')
    wire = []
    for row in rows:
        contract = rebuilding._contract(row, app.mapper)  # the relay's translation
        if contract is not None:
            wire.append(contract.to_json())
    if shuffle is not None:
        random.Random(shuffle).shuffle(wire)
    consumer: Consumer = projections.consumers()[0]
    for body in wire:
        raw = json.loads(body)
        contract = contract_for("cards", raw["event_type"], raw["schema_version"])
        if contract not in consumer.handlers:
            continue
        event = contract.model_validate(raw)
        async with conn.transaction():
            await conn.execute("INSERT INTO processed_events(consumer, event_id) "
                               "VALUES ($1, $2)", consumer.name, event.event_id)
            await consumer.handlers[type(event)](event, conn)


@pytest.fixture
def recorded_app(namespace):
    """The namespace's cards application, holding ``_history`` (saved once per module)."""
    from cards.bootstrap import build_application

    app = build_application(namespace.settings)
    try:
        if not app.recorder.max_notification_id():
            _history(app)
        yield app
    finally:
        app.close()


@pytest.mark.parametrize("shuffle", [None, 11, 12])
def test_rebuild_from_the_event_store_equals_live(namespace, database, recorded_app,
                                                  shuffle) -> None:
    """The live consumer seeing the facts in order, and in two shuffled orders."""
    app = recorded_app
    loop, conn = database

    async def check() -> None:
        await rebuilding.create_statistics_schema(conn, LIVE)
        await _live_from_the_wire(conn, app, shuffle=shuffle)
        counts = await rebuilding.rebuild(namespace.settings, app.mapper, app.name,
                                          include_venues=False, page=50)
        assert counts.cards_events > 150 and counts.stored_events >= counts.cards_events
        rebuilt, live = await _rows(conn, rebuilding.SHADOW), await _rows(conn, LIVE)
        assert rebuilt == live
        assert len(live["card_view"]) == 60 + 60 // 7 and live["usage_view"]
        assert {r[0] for r in live["wellbeing_view"]} and live["organisation_view"]
        applied = "SELECT consumer, event_id FROM {}.processed_events ORDER BY 1, 2"
        assert ([tuple(r) for r in await conn.fetch(applied.format(rebuilding.SHADOW))]
                == [tuple(r) for r in await conn.fetch(applied.format(LIVE))])
        # the keys and indexes, dropped for the COPY, are all back
        indexes = ("SELECT indexname, replace(indexdef, schemaname || '.', '') "
                   "FROM pg_indexes WHERE schemaname = $1 ORDER BY 1")
        rebuilt_indexes = [tuple(r) for r in await conn.fetch(indexes, rebuilding.SHADOW)]
        # eight primary keys (public_stats' too), usage_view_card, card_view_issuer,
        # desk_use_view_card, processed
        assert len(rebuilt_indexes) == 12
        assert rebuilt_indexes == [tuple(r) for r in await conn.fetch(indexes, LIVE)]
        today = date.today()
        period = queries.Period(None, None, today)
        await conn.execute(f"SET search_path TO {LIVE}")
        live_figures = await rebuilding.snapshot(conn, period, 5)
        await conn.execute(f"SET search_path TO {rebuilding.SHADOW}")
        assert await rebuilding.snapshot(conn, period, 5) == live_figures
        assert live_figures["national"]["replacement_cards"] == 60 // 7

    loop.run_until_complete(check())


def test_concurrent_live_handlers_equal_the_fold(namespace, database, recorded_app) -> None:
    """Worker replicas apply facts about the same cards at the same time, in any
    order: the rows read FOR UPDATE (or inserted once) end as the fold's."""
    import random

    from kaiku_shared.eventstore import events_table

    app = recorded_app
    loop, conn = database

    async def check() -> None:
        rows = await conn.fetch(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            f'FROM public."{events_table(app.name)}" ORDER BY notification_id')
        facts = [c for c in (rebuilding._contract(r, app.mapper) for r in rows)
                 if c is not None]
        random.Random(5).shuffle(facts)
        await rebuilding.create_statistics_schema(conn, LIVE)
        queue: asyncio.Queue = asyncio.Queue()
        for fact_ in facts:
            queue.put_nowait(fact_)
        pool = await asyncpg.create_pool(
            namespace.settings.service_database_url("cards"), min_size=6, max_size=6,
            server_settings={"search_path": LIVE})

        async def replica() -> None:
            while not queue.empty():
                event = queue.get_nowait()
                while True:
                    try:
                        async with pool.acquire() as c, c.transaction():
                            await _live_apply(c, event)
                        break
                    except asyncpg.DeadlockDetectedError:
                        continue  # the consumer naks and gets it again
                await asyncio.sleep(0)

        try:
            await asyncio.gather(*(replica() for _ in range(6)))
        finally:
            await pool.close()
        folded = rebuilding.Accumulator()
        for fact_ in facts:
            folded.apply(FOLDS[type(fact_)](fact_))
        async with rebuilding.ShadowWriter(conn) as shadow:
            await shadow.rows(folded)
        assert await _rows(conn, rebuilding.SHADOW) == await _rows(conn, LIVE)

    loop.run_until_complete(check())


def _desk_history() -> list[IntegrationEvent]:
    """Swimming visits and library fees at two venues over two months, and a ticket."""
    facts: list[IntegrationEvent] = []
    for i in range(12):
        envelope = {"event_id": uuid5(NAMESPACE_URL, f"/test/desk/{i}"),
                    "occurred_at": datetime(2026, 3 + i % 2, 10 + i, 12, tzinfo=UTC),
                    "aggregate_id": uuid5(NAMESPACE_URL, f"/test/desk-series/{i % 3}"),
                    "aggregate_version": 1 + i // 3}
        common = {"card_number": f"20{i % 6:05d}", "venue_id": ORGS[i % 2], "year": 2026,
                  "registered_by": ORGS[1]}
        if i % 3:
            facts.append(SwimmingVisitRegisteredV1.build(
                **envelope, **common, children=i % 3, visits=1 + i % 3, visits_used=i + 1))
        else:
            facts.append(LibraryFeeCoveredV1.build(
                **envelope, **common, fee_type="late_fee", amount_cents=150 + i,
                year_total_cents=150 + i))
    facts.append(TicketRegisteredV1.build(
        event_id=uuid5(NAMESPACE_URL, "/test/desk/ticket"),
        occurred_at=datetime(2026, 3, 1, tzinfo=UTC), aggregate_id=TICKETS[0],
        aggregate_version=1, ticket_id=TICKETS[0], offering_id=ORGS[0],
        offering_title="Hamlet", venue_id=ORGS[1], venue_name="Teatteri",
        municipality="imatra", starts_at=datetime(2026, 3, 20, 17, tzinfo=UTC),
        card_number="2000001", children=1, channel="box_office", registered_by=ORGS[1]))
    # The venues themselves (a swimming hall with no tickets, renamed; a library
    # that also sells a ticket) and the ticket's offering with its genres.
    venue = {"occurred_at": datetime(2026, 2, 1, tzinfo=UTC), "organisation_id": ORGS[1]}
    facts += [
        VenueRegisteredV1.build(**venue, event_id=uuid5(NAMESPACE_URL, "/test/desk/v0"),
                                aggregate_id=ORGS[0], aggregate_version=1, venue_id=ORGS[0],
                                name="Uimahalli", kind="swimming_hall", municipality="imatra"),
        VenueChangedV1.build(**venue, event_id=uuid5(NAMESPACE_URL, "/test/desk/v0b"),
                             aggregate_id=ORGS[0], aggregate_version=2, venue_id=ORGS[0],
                             changed=("name",), name="Imatran uimahalli"),
        VenueRegisteredV1.build(**venue, event_id=uuid5(NAMESPACE_URL, "/test/desk/v1"),
                                aggregate_id=ORGS[1], aggregate_version=1, venue_id=ORGS[1],
                                name="Kirjasto", kind="library", municipality="imatra"),
        OfferingPublishedV1.build(
            **{k: v for k, v in venue.items() if k != "organisation_id"},
            event_id=uuid5(NAMESPACE_URL, "/test/desk/o0"), aggregate_id=ORGS[0],
            aggregate_version=1, offering_id=ORGS[0], venue_id=ORGS[1], venue_name="Kirjasto",
            title="Satutunti", kind="performance", genres=("literature", "music"),
            starts_at=datetime(2026, 3, 20, 17, tzinfo=UTC), municipality="imatra",
            capacity=30, card_cap=5),
    ]
    return facts


def test_rebuild_reads_swimming_visits_and_library_fees_from_the_venues_stream(
        namespace, database, recorded_app) -> None:
    """Swimming visits and library fees, as published on the real venues stream
    (one of them twice, as a republished message is), rebuilt from it: the rows, the
    once-only records of both venues durables and every figure equal the live ones,
    and the figures count them apart from tickets."""
    from kaiku_shared.relay import ensure_stream
    from kaiku_shared.tls import connect_nats

    app = recorded_app
    loop, conn = database
    facts = _desk_history()
    settings_ = namespace.settings

    async def publish() -> None:
        nc = await connect_nats(settings_)
        try:
            js = nc.jetstream()
            await ensure_stream(js, settings_, "venues")
            await js.purge_stream(settings_.stream_name("venues"))
            for event in [*facts, facts[1]]:  # the second visit republished
                await js.publish(event.subject(settings_.namespace), event.to_json(),
                                 stream=settings_.stream_name("venues"))
        finally:
            await nc.close()

    async def check() -> None:
        await publish()
        await rebuilding.create_statistics_schema(conn, LIVE)
        await _live_from_the_wire(conn, app, shuffle=None)
        for event in facts:
            durable = projections.durable_of(type(event))
            async with conn.transaction():
                await conn.execute("INSERT INTO processed_events(consumer, event_id) "
                                   "VALUES ($1, $2)", durable, event.event_id)
                await _live_apply(conn, event)
        counts = await rebuilding.rebuild(settings_, app.mapper, app.name, page=5)
        assert counts.venues_events == len(facts)
        assert await _rows(conn, rebuilding.SHADOW) == await _rows(conn, LIVE)
        applied = "SELECT consumer, event_id FROM {}.processed_events ORDER BY 1, 2"
        rebuilt_applied = [tuple(r) for r in await conn.fetch(
            applied.format(rebuilding.SHADOW))]
        assert rebuilt_applied == [tuple(r) for r in await conn.fetch(applied.format(LIVE))]
        assert {c for c, _ in rebuilt_applied} == {
            projections.STATISTICS_CONSUMER, projections.USAGE_CONSUMER,
            projections.DESK_USES_CONSUMER, projections.VENUE_PROFILES_CONSUMER}
        period = queries.Period(date(2026, 3, 1), date(2026, 4, 30), date(2026, 5, 1))
        await conn.execute(f"SET search_path TO {LIVE}")
        live_figures = await rebuilding.snapshot(conn, period, 5)
        await conn.execute(f"SET search_path TO {rebuilding.SHADOW}")
        assert await rebuilding.snapshot(conn, period, 5) == live_figures
        visits = [f for f in facts if isinstance(f, SwimmingVisitRegisteredV1)]
        fees = [f for f in facts if isinstance(f, LibraryFeeCoveredV1)]
        national = live_figures["national"]
        assert national["swimming_visits"] == len(visits) == 8
        assert national["swimming_children"] == sum(v.children for v in visits)
        assert national["library_fees"] == len(fees) == 4
        assert national["library_fees_cents"] == sum(f.amount_cents for f in fees)
        # by venue (nothing hidden at threshold 1): tickets and desk uses apart
        await conn.execute(f"SET search_path TO {LIVE}")
        venues = {row["venue"]: row for row in await queries.breakdown(
            conn, period, "venue", region=None, threshold=1)}
        assert {k: venues[str(ORGS[1])][k] for k in (
            "uses", "child_tickets", "swimming_visits", "library_fees")} == {
            "uses": 1, "child_tickets": 1, "swimming_visits": 4, "library_fees": 2}
        assert (venues[str(ORGS[0])]["uses"], venues[str(ORGS[0])]["swimming_visits"]) == (0, 4)
        months = {row["month"]: row["swimming_visits"] for row in await queries.breakdown(
            conn, period, "month", region=None, threshold=1)}
        assert months == {"2026-03": 4, "2026-04": 4}
        # a swimming hall with no tickets is named from venue_view, as renamed
        assert venues[str(ORGS[0])]["name"] == "Imatran uimahalli"
        # by venue kind: desk uses by their venue's kind, the ticket by its venue's
        kinds = live_figures["venue_kind"]
        assert {kind: (row["uses"], row["swimming_visits"], row["library_fees"])
                for kind, row in kinds.items()} == {"swimming_hall": (0, 4, 2),
                                                    "library": (1, 4, 2)}
        assert live_figures["genre"] == {"literature": {"uses": 1, "child_tickets": 1}}
        await _public_documents_equal(conn)
        await conn.execute("SET search_path TO public")

    loop.run_until_complete(check())


async def _public_documents_equal(conn: asyncpg.Connection) -> None:
    """The public document built from the live tables and from the rebuilt ones."""
    names = {"etela-karjala": "Etelä-Karjala", "kainuu": "Kainuu"}
    today = date(2026, 4, 2)  # March is the last completed month
    documents = []
    for schema in (LIVE, rebuilding.SHADOW):
        await conn.execute(f"SET search_path TO {schema}")
        documents.append(await public_stats.build(conn, names, 1, today,
                                                  datetime(2026, 4, 2, tzinfo=UTC)))
    assert documents[0] == documents[1]
    live = documents[0]
    assert (live.swimming_visits, live.library_fees) == (8, 4)  # live, all time
    assert live.months_through == "2026-03"
    # March by venue kind: the hall's visits and fees, the library's ticket
    assert {row.venue_kind: (row.uses, row.swimming_visits, row.library_fees)
            for row in live.by_venue_kind} == {"swimming_hall": (0, 4, 2),
                                               "library": (1, 0, 0)}
    assert [(row.genre, row.uses) for row in live.by_genre] == [("literature", 1)]
