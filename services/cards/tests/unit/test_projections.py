"""Cards' projection handlers against the contracts' golden fixtures (no server).

Each fixture is decoded as the durable consumer decodes it off the wire and
applied by the handler that consumer has for it. The connection keeps rows in
memory and answers exactly the four statements the handlers send per table
(select for update, insert, update, insert-or-nothing), so the rows show what
each fact did, in whichever order the facts come.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

import kaiku_shared.contracts as contracts
from cards.adapters import projections
from cards.adapters.statistics_fold import (
    CARD,
    DESK_USE,
    FOLDS,
    OFFERING,
    ORGANISATION,
    TABLES,
    USAGE,
    VENUE,
    WELLBEING,
)
from kaiku_shared.consumer import MessageProcessor

FIXTURES = Path(contracts.__file__).parent / "fixtures"
CARD_NUMBER, REPLACEMENT = "KXA-12345", "MTR-40721"
ORGANISATION_ID = UUID("3f6c2a1e-8d4b-4c7a-9e21-5b0d7f3a9c14")
TICKET_ID = UUID("e4a17b9c-3d65-4f20-8b1e-9c7d2a5f0b36")


class TablesInMemory:
    """An asyncpg connection as the handlers use it, over rows kept in memory."""

    def __init__(self) -> None:
        self.rows: dict[Any, dict[tuple, dict[str, Any]]] = {table: {} for table in TABLES}
        self.statements = {getattr(sql, kind): (table, kind)
                           for table, sql in projections._STATEMENTS.items()
                           for kind in ("select", "insert", "update", "keep")}
        self.notified = 0  # NOTIFYs sent (the public statistics' refresher listens)

    def _sent(self, sql: str, kind: str) -> Any:
        table, sent = self.statements[sql]
        assert sent == kind, f"{kind} expected, {sent} sent"
        return table

    def _insert(self, table: Any, values: tuple) -> bool:
        row = dict(zip(table.columns, values, strict=True))
        key = tuple(row[k] for k in table.key)
        if key in self.rows[table]:
            return False
        self.rows[table][key] = row
        return True

    async def fetchrow(self, sql: str, *key: Any) -> dict[str, Any] | None:
        row = self.rows[self._sent(sql, "select")].get(key)
        return dict(row) if row else None

    async def fetchval(self, sql: str, *values: Any) -> bool | None:
        return self._insert(self._sent(sql, "insert"), values) or None

    async def execute(self, sql: str, *values: Any) -> None:
        if sql == projections.NOTIFY_CHANGED:
            self.notified += 1
            return
        table = self._sent(sql, "update")
        row = dict(zip(table.columns, values, strict=True))
        key = tuple(row[k] for k in table.key)
        assert key in self.rows[table], "an update of a row that is not there"
        self.rows[table][key] = row

    async def executemany(self, sql: str, records: list[tuple]) -> None:
        table = self._sent(sql, "keep")
        for values in records:
            self._insert(table, values)

    def row(self, table: Any, *key: Any) -> dict[str, Any]:
        return self.rows[table][key]


# Each event type's durable (two read the venues stream).
CONSUMERS = {event_type: consumer for consumer in projections.consumers()
             for event_type in consumer.handled_types}


async def apply(conn: TablesInMemory, *names: str) -> None:
    """Decode each golden fixture as its durable does and apply its handler."""
    for name in names:
        body = (FIXTURES / f"{name}.v1.json").read_bytes()
        consumer = CONSUMERS[json.loads(body)["event_type"]]
        event = MessageProcessor(consumer, pool=None).decode(body)  # type: ignore[arg-type]
        assert event is not None, name
        await consumer.handlers[type(event)](event, conn)


def test_one_handler_for_each_fact_the_rebuild_folds() -> None:
    assert set(projections.PROJECTIONS) == set(FOLDS)
    assert {name: sorted(c.EVENT_TYPE for c in consumer.handlers)
            for name, consumer in ((c.name, c) for c in projections.consumers())} == {
        "cards-statistics": ["card_changed", "card_closed", "card_issued", "card_renewed",
                             "card_replaced", "card_uses_imported", "organisation_registered",
                             "organisation_status_changed"],
        "cards-usage": ["ticket_cancelled", "ticket_registered"],
        "cards-desk-uses": ["library_fee_covered", "swimming_visit_registered"],
        "cards-venue-profiles": ["offering_published", "venue_changed", "venue_registered"],
    }
    assert all(handler.__module__ == projections.__name__
               for handler in projections.PROJECTIONS.values())


async def test_a_cards_life_in_the_card_and_wellbeing_rows() -> None:
    conn = TablesInMemory()
    await apply(conn, "card_issued")
    issued = conn.row(CARD, CARD_NUMBER)
    assert (issued["issuer"], issued["birth_year"], issued["valid_from"], issued["children"],
            issued["municipality"], issued["status"], issued["version"]) == (
        ORGANISATION_ID, 1968, date(2025, 3, 3), 2, "imatra", "open", 1)
    assert conn.row(WELLBEING, CARD_NUMBER, 1)["life_satisfaction"] == 6

    await apply(conn, "card_renewed", "card_changed", "card_closed")
    card = conn.row(CARD, CARD_NUMBER)
    assert (card["valid_until"], card["children"], card["municipality"]) == (
        date(2027, 2, 19), 3, "lappeenranta")
    assert (card["status"], card["version"]) == ("closed", 3)  # a closure carries no state
    assert card["closed_on"] is not None and card["issuer"] == ORGANISATION_ID
    renewal = conn.row(WELLBEING, CARD_NUMBER, 2)
    assert (renewal["occasion"], renewal["life_satisfaction"],
            renewal["wellbeing_impact"]) == ("renewal", 7, 8)


async def test_a_change_arriving_before_the_issue_keeps_its_newer_state() -> None:
    conn = TablesInMemory()
    await apply(conn, "card_changed", "card_issued")
    card = conn.row(CARD, CARD_NUMBER)
    assert (card["children"], card["municipality"], card["version"]) == (3, "lappeenranta", 3)
    assert (card["birth_year"], card["issuer"]) == (1968, ORGANISATION_ID)


async def test_a_replacement_and_imported_uses() -> None:
    conn = TablesInMemory()
    await apply(conn, "card_replaced", "card_uses_imported", "card_uses_imported")
    replacement = conn.row(CARD, REPLACEMENT)
    assert (replacement["replaces"], replacement["status"]) == (CARD_NUMBER, "open")
    uses = list(conn.rows[USAGE].values())
    assert len(uses) == 2  # the same import twice: the same two rows
    assert {(u["venue_municipality"], u["children"], u["status"]) for u in uses} == {
        ("imatra", 2, "registered"), ("lappeenranta", 0, "registered")}


@pytest.mark.parametrize("order", [("ticket_registered", "ticket_cancelled"),
                                   ("ticket_cancelled", "ticket_registered")])
async def test_a_cancelled_ticket_whichever_comes_first(order) -> None:
    conn = TablesInMemory()
    await apply(conn, *order)
    ticket = conn.row(USAGE, TICKET_ID)
    assert (ticket["status"], ticket["version"], ticket["card_number"]) == (
        "cancelled", 2, CARD_NUMBER)
    assert ticket["venue_name"] == "Imatran Kaupunginteatteri"


@pytest.mark.parametrize("order", [("organisation_registered", "organisation_status_changed"),
                                   ("organisation_status_changed", "organisation_registered")])
async def test_an_approved_organisation_whichever_comes_first(order) -> None:
    conn = TablesInMemory()
    await apply(conn, *order)
    organisation = conn.row(ORGANISATION, ORGANISATION_ID)
    assert (organisation["kind"], organisation["municipality"], organisation["status"],
            organisation["version"]) == ("distributor", "imatra", "approved", 2)


async def test_swimming_visits_and_library_fees_are_rows_of_their_own() -> None:
    """Each is one row, kept once however often it is delivered, never a ticket."""
    conn = TablesInMemory()
    await apply(conn, "swimming_visit_registered", "library_fee_covered",
                "swimming_visit_registered")
    rows = sorted(conn.rows[DESK_USE].values(), key=lambda r: r["kind"])
    assert [(r["kind"], r["children"] >= 0, r["amount_cents"] > 0) for r in rows] == [
        ("library_fee", True, True), ("swimming_visit", True, False)]
    assert not conn.rows[USAGE]


VENUE_ID = UUID("0d9a7c3b-1e52-4b8f-a6d4-73c2e91f5a08")
OFFERING_ID = UUID("5c2e8f71-9b04-4d3a-b7e6-1a8f0c4d2e95")


@pytest.mark.parametrize("order", [("venue_registered", "venue_changed"),
                                   ("venue_changed", "venue_registered")])
async def test_a_venues_kind_and_name_whichever_comes_first(order) -> None:
    conn = TablesInMemory()
    await apply(conn, *order)
    venue = conn.row(VENUE, VENUE_ID)
    assert (venue["kind"], venue["name"], venue["municipality"]) == (
        "performing_arts", "Imatran Kaupunginteatteri", "imatra")


async def test_an_offerings_genres_are_kept_once() -> None:
    conn = TablesInMemory()
    await apply(conn, "offering_published", "offering_published")
    assert conn.row(OFFERING, OFFERING_ID)["genres"] == ["theatre"]
    assert conn.row(OFFERING, OFFERING_ID)["venue_id"] == VENUE_ID


async def test_every_applied_fact_tells_the_public_statistics() -> None:
    conn = TablesInMemory()
    await apply(conn, "card_issued", "ticket_registered", "swimming_visit_registered")
    assert conn.notified == 3
