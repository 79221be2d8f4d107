"""Cards publishes the network (NetworkChangedV1): the whole of it once, when it
is announced, then one entry for each change. Each stored event is turned into
its contract exactly as the relay does (``contract_of_row``), and the published
JSON is read back as a consumer reads it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

import kaiku_shared.contracts as contracts
from cards.adapters.reference import load_network
from cards.adapters.translate import translate
from cards.application.app import CardsApplication
from cards.domain.model import RuleViolation
from cards.domain.network import NetworkRegistry
from kaiku_shared.contracts import NetworkChangedV1, contract_for, event_id_for
from kaiku_shared.eventstore import MetaMapper
from kaiku_shared.relay import contract_of_row

FIXTURE = Path(contracts.__file__).parent / "fixtures" / "network_changed.v1.json"


@pytest.fixture
def app() -> CardsApplication:
    return CardsApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo", "MAPPER_TOPIC": get_topic(MetaMapper)},
        network=load_network())


def rows(app: CardsApplication, after: int = 0) -> list[dict[str, Any]]:
    """The events table's rows after a position, as the relay selects them."""
    return [{"notification_id": n.id, "originator_id": n.originator_id,
             "originator_version": n.originator_version, "topic": n.topic, "state": n.state}
            for n in app.recorder.select_notifications(start=after + 1, limit=1000)]


def published(app: CardsApplication, after: int = 0) -> list[NetworkChangedV1]:
    """What the relay would publish for the rows after ``after``, as consumers
    decode it from the wire (the contract looked up by its envelope)."""
    out = []
    for row in rows(app, after):
        contract, _ = contract_of_row(row, app.mapper, translate, "cards")
        if contract is None:
            continue
        raw = json.loads(contract.to_json())
        decoded = contract_for(raw["producer"], raw["event_type"], raw["schema_version"])
        out.append(decoded.model_validate(raw))
        assert out[-1].event_id == event_id_for("cards", row["notification_id"])
    return out


def last_position(app: CardsApplication) -> int:
    return max((row["notification_id"] for row in rows(app)), default=0)


def test_a_fresh_registry_is_published_whole_once(app: CardsApplication) -> None:
    app.ensure_network()
    app.ensure_network()  # every later call (and start) finds it announced
    [network] = published(app)
    reference = load_network()
    assert {r.code for r in network.regions} == set(reference.regions)
    assert {m.code for m in network.municipalities} == set(reference.municipalities)
    imatra = next(m for m in network.municipalities if m.code == "imatra")
    assert (imatra.region, imatra.status, imatra.name["sv"]) == ("etela-karjala", "in_use",
                                                                 "Imatra")
    assert next(r for r in network.regions if r.code == "ruotsi").country == "SE"
    assert network.aggregate_id == NetworkRegistry.create_id()
    assert network.aggregate_version == 2  # after the seeding, which is not published


def test_the_published_json_has_the_golden_fixture_shape(app: CardsApplication) -> None:
    app.ensure_network()
    [network] = published(app)
    body = json.loads(network.to_json())
    golden = json.loads(FIXTURE.read_text())
    NetworkChangedV1.model_validate(golden)
    assert set(body) == set(golden)
    assert set(body["regions"][0]) == set(golden["regions"][0])
    assert set(body["municipalities"][0]) == set(golden["municipalities"][0])


def test_each_later_change_publishes_that_one_entry(app: CardsApplication) -> None:
    app.ensure_network()
    seen = last_position(app)
    app.set_region("pohjois-testi", names={"fi": "Pohjois-Testi"}, country="fi")
    app.set_municipality("imatra", names=None, region=None, status="left", country=None)
    app.set_municipality("imatra", names=None, region=None, status="left", country=None)
    region, municipality = published(app, seen)
    assert region.municipalities == ()
    assert [r.model_dump() for r in region.regions] == [
        {"code": "pohjois-testi", "name": {"fi": "Pohjois-Testi"}, "country": "FI"}]
    assert municipality.regions == ()
    [imatra] = municipality.municipalities
    assert (imatra.code, imatra.status, imatra.region) == ("imatra", "left", "etela-karjala")
    assert imatra.name == {"fi": "Imatra", "sv": "Imatra", "en": "Imatra"}
    assert municipality.aggregate_version == region.aggregate_version + 1


def test_a_registry_seeded_before_publication_is_announced_once(app: CardsApplication) -> None:
    # As an earlier version left it: seeded and edited, nothing announced.
    data = load_network().to_dict()
    old = NetworkRegistry(regions=data["regions"], municipalities=data["municipalities"])
    old.set_municipality("imatra", names=None, region=None, status="left", country=None)
    app.save(old)
    assert published(app) == []
    seen = last_position(app)

    app.ensure_network()
    app.ensure_network()
    [network] = published(app, seen)
    assert len(network.regions) == len(data["regions"])
    assert len(network.municipalities) == len(data["municipalities"])
    # the announcement carries the network as it stands, the earlier edit included
    assert next(m for m in network.municipalities if m.code == "imatra").status == "left"


def test_changes_stored_by_an_earlier_version_stay_unpublished(app: CardsApplication) -> None:
    """Their stored state has no ``publish`` field: the relay passed them long ago,
    so the audit must not expect them in the stream."""
    app.ensure_network()
    app.set_region("pohjois-testi", names={"fi": "Pohjois-Testi"}, country="FI")
    row = rows(app)[-1]
    assert row["topic"].endswith("NetworkRegistry.RegionSet")
    state = json.loads(row["state"])
    assert state.pop("publish") is True
    old_shape = StoredEvent(originator_id=row["originator_id"],
                            originator_version=row["originator_version"],
                            topic=row["topic"], state=json.dumps(state).encode())
    event = app.mapper.to_domain_event(old_shape)
    envelope = {"event_id": event_id_for("cards", 1), "occurred_at": event.timestamp,
                "aggregate_id": event.originator_id,
                "aggregate_version": event.originator_version}
    assert translate(event, envelope) is None
    as_stored = dataclasses.replace(old_shape, state=row["state"])
    assert translate(app.mapper.to_domain_event(as_stored), envelope) is not None



def test_every_code_the_registry_accepts_can_be_published(app: CardsApplication) -> None:
    """A change the contract refused would stop the relay at that stored event."""
    app.ensure_network()
    seen = last_position(app)
    longest = "a" * 60
    app.set_region(longest, names={"fi": "Pitkä"}, country="FI")
    app.set_municipality(longest, names={"fi": "Pitkä"}, region=longest, status="pilot",
                         country=None)
    region, municipality = published(app, seen)
    assert region.regions[0].code == municipality.municipalities[0].code == longest
    with pytest.raises(RuleViolation) as refused:
        app.set_region("a" * 61, names={"fi": "Liian pitkä"}, country="FI")
    assert refused.value.rule == "code"
    assert published(app, seen + 2) == []
