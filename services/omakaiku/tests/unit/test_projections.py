"""Each projection handler against the golden fixture of the contract it handles,
without a database: what it sends to Postgres, parameter by parameter. (What the
SQL then does to the tables: tests/integration/test_schema_and_network.py.)"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

import kaiku_shared.contracts as contracts
from kaiku_shared.contracts import (
    CardChangedV1,
    CardClosedV1,
    CardIssuedV1,
    CardRenewedV1,
    CardReplacedV1,
    IntegrationEvent,
    NetworkChangedV1,
    OfferingCancelledV1,
    OfferingChangedV1,
    OfferingPublishedV1,
    TicketCancellationRefusedV1,
    TicketCancelledV1,
    TicketRegisteredV1,
)
from omakaiku.adapters import projections

FIXTURES = Path(contracts.__file__).parent / "fixtures"
TICKET = UUID("e4a17b9c-3d65-4f20-8b1e-9c7d2a5f0b36")
OFFERING = UUID("5c2e8f71-9b04-4d3a-b7e6-1a8f0c4d2e95")
VENUE = UUID("0d9a7c3b-1e52-4b8f-a6d4-73c2e91f5a08")


def golden(contract: type[IntegrationEvent], **changes: Any) -> Any:
    path = FIXTURES / f"{contract.EVENT_TYPE}.v{contract.VERSION}.json"
    return contract.model_validate({**json.loads(path.read_text(encoding="utf-8")), **changes})


class RecordingConnection:
    """Records each statement with its parameters, and checks that the
    statement numbers exactly as many parameters as it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def execute(self, sql: str, *args: Any) -> None:
        self._check(sql, args)
        self.calls.append((sql, args))

    async def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        for row in rows:
            self._check(sql, row)
        self.calls.append((sql, tuple(rows)))

    @staticmethod
    def _check(sql: str, args: tuple[Any, ...]) -> None:
        numbers = {int(n) for n in re.findall(r"\$(\d+)", sql)}
        assert numbers == set(range(1, len(args) + 1)), (sql, args)


async def project(handler: Any, event: Any) -> list[tuple[str, tuple[Any, ...]]]:
    conn = RecordingConnection()
    await handler(event, conn)
    return conn.calls


def handler_for(consumer: str, contract: type[IntegrationEvent]) -> Any:
    return projections.PROJECTIONS[consumer][1][contract]


# --- the table -----------------------------------------------------------------------


def test_every_projected_contract_has_a_golden_fixture_that_validates() -> None:
    for source, projection in projections.PROJECTIONS.values():
        for contract in projection:
            assert contract.PRODUCER == source
            assert isinstance(golden(contract), contract)


def test_the_consumers_are_built_from_the_table() -> None:
    built = {c.name: c for c in projections.consumers(None)}
    assert {name: (c.source, dict(c.handlers)) for name, c in built.items()} == {
        name: (source, projection)
        for name, (source, projection) in projections.PROJECTIONS.items()}
    assert built["omakaiku-network"].source == "cards"
    assert set(built["omakaiku-network"].handlers) == {NetworkChangedV1}


async def test_the_workers_card_replaced_handler_also_moves_the_account() -> None:
    moved: list[tuple[str, str]] = []

    async def move_card(old: str, new: str) -> None:
        moved.append((old, new))

    (cards,) = [c for c in projections.consumers(move_card) if c.name == "omakaiku-cards"]
    replaced = cards.handlers[CardReplacedV1]
    assert replaced is not projections.on_card_replaced
    assert cards.handlers[CardIssuedV1] is projections.on_card_issued
    calls = await project(replaced, golden(CardReplacedV1))
    assert calls == await project(projections.on_card_replaced, golden(CardReplacedV1))
    assert moved == [("KXA-12345", "MTR-40721")]


# --- cards -----------------------------------------------------------------------------


async def test_card_issued() -> None:
    (call,) = await project(handler_for("omakaiku-cards", CardIssuedV1), golden(CardIssuedV1))
    assert call[1] == ("KXA-12345", UUID("3f6c2a1e-8d4b-4c7a-9e21-5b0d7f3a9c14"), 1,
                       date(2026, 3, 2), 2, "etela-karjala")


@pytest.mark.parametrize(("contract", "expected"), [
    (CardRenewedV1, ("KXA-12345", 2, date(2027, 2, 19), 2, "etela-karjala")),
    (CardChangedV1, ("KXA-12345", 3, date(2027, 2, 19), 3, "etela-karjala")),
])
async def test_card_renewed_and_changed(contract: Any, expected: tuple[Any, ...]) -> None:
    (call,) = await project(handler_for("omakaiku-cards", contract), golden(contract))
    assert call[1] == expected
    assert "WHERE card_view.version < excluded.version" in call[0]  # a late older one: no-op


async def test_card_closed() -> None:
    event = golden(CardClosedV1)
    (call,) = await project(handler_for("omakaiku-cards", CardClosedV1), event)
    assert call[1] == ("KXA-12345", 4, event.occurred_at)  # retention counts from it
    assert "'closed'" in call[0]
    assert "closed_at = COALESCE(card_view.closed_at" in call[0]  # the first closing counts


async def test_card_replaced() -> None:
    (call,) = await project(handler_for("omakaiku-cards", CardReplacedV1),
                            golden(CardReplacedV1))
    assert call[1] == ("KXA-12345", "MTR-40721", date(2026, 3, 2))


# --- tickets ---------------------------------------------------------------------------


async def test_ticket_registered() -> None:
    event = golden(TicketRegisteredV1)
    (call,) = await project(handler_for("omakaiku-history", TicketRegisteredV1), event)
    assert call[1] == (TICKET, "KXA-12345", OFFERING, "Nummisuutarit", VENUE,
                       "Imatran Kaupunginteatteri", event.starts_at, 1, event.occurred_at, 1)


async def test_ticket_cancelled() -> None:
    event = golden(TicketCancelledV1)
    (call,) = await project(handler_for("omakaiku-history", TicketCancelledV1), event)
    assert call[1] == (TICKET, "KXA-12345", OFFERING, VENUE, 1, event.occurred_at, 2)


async def test_cancellation_refused_says_why_and_falls_back_to_the_rule() -> None:
    handler = handler_for("omakaiku-history", TicketCancellationRefusedV1)
    (call,) = await project(handler, golden(TicketCancellationRefusedV1))
    assert call[1] == (TICKET, "The event has started; the ticket can no longer be cancelled.")
    (call,) = await project(handler, golden(TicketCancellationRefusedV1, detail=""))
    assert call[1] == (TICKET, "event-started")


async def test_offering_changed_reaches_history_and_the_offering() -> None:
    event = golden(OfferingChangedV1)
    (history,) = await project(handler_for("omakaiku-history", OfferingChangedV1), event)
    assert history[1] == (OFFERING, "Nummisuutarit (lisäesitys)", event.starts_at)
    (offering,) = await project(handler_for("omakaiku-offering", OfferingChangedV1), event)
    assert offering[1] == (OFFERING, "Nummisuutarit (lisäesitys)", event.starts_at, 5)


# --- the offering ------------------------------------------------------------------------


@pytest.mark.parametrize(("municipality", "folded"), [
    ("imatra", "imatra"), ("Mänttä-Vilppula", "mantta-vilppula"),
    (" Villmanstrand ", "villmanstrand")])
async def test_offering_published_looks_its_municipality_up_folded(
        municipality: str, folded: str) -> None:
    event = golden(OfferingPublishedV1, municipality=municipality)
    (call,) = await project(handler_for("omakaiku-offering", OfferingPublishedV1), event)
    assert call[1] == (OFFERING, VENUE, "Imatran Kaupunginteatteri", "Nummisuutarit",
                       "performance", ["theatre"], ["comedy"], event.starts_at, 1, folded)
    assert "network_municipalities" in call[0]


async def test_offering_cancelled() -> None:
    (call,) = await project(handler_for("omakaiku-offering", OfferingCancelledV1),
                            golden(OfferingCancelledV1))
    assert call == ("DELETE FROM offering_view WHERE offering_id = $1", (OFFERING,))


# --- the network -----------------------------------------------------------------------


async def test_network_changed_upserts_regions_and_municipalities_then_places_offerings(
        ) -> None:
    event = golden(NetworkChangedV1)
    regions, municipalities, placing = await project(
        handler_for("omakaiku-network", NetworkChangedV1), event)
    assert regions[1] == (("etela-karjala", json.dumps(
        {"fi": "Etelä-Karjala", "sv": "Södra Karelen", "en": "South Karelia"}), "FI",
        event.occurred_at),)
    assert municipalities[1] == (("imatra", json.dumps(
        {"fi": "Imatra", "sv": "Imatra", "en": "Imatra"}), "etela-karjala", "in_use", "FI",
        ["imatra", "imatra", "imatra", "imatra"], event.occurred_at),)
    assert placing[1] == (["imatra"],)
    # An older change delivered late must not undo a newer one.
    assert "changed_at <= excluded.changed_at" in regions[0]
    assert "changed_at <= excluded.changed_at" in municipalities[0]


async def test_one_municipality_changed_is_found_by_each_of_its_names_code_first() -> None:
    event = golden(NetworkChangedV1, regions=[], municipalities=[{
        "code": "lappeenranta", "region": "etela-karjala", "status": "in_use",
        "name": {"fi": "Lappeenranta", "sv": "Villmanstrand", "en": "Lappeenranta"}}])
    regions, municipalities, placing = await project(projections.on_network_changed, event)
    assert regions[1] == ()
    (row,) = municipalities[1]
    assert row[5] == ["lappeenranta", "lappeenranta", "villmanstrand", "lappeenranta"]
    assert placing[1] == (["lappeenranta"],)
