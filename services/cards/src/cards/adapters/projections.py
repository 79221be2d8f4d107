"""Cards' projections: the facts that keep the statistics read models (``schema``).

What each fact does to the rows is defined once, in ``statistics_fold``: the live
handlers here and the rebuild (``rebuild.py``) both apply that fold, so a rebuild
from the event store gives exactly what the live consumers built. Rows carry the
aggregate version of the last fact applied, so a fact arriving after a newer one
for the same card or ticket never overwrites it, and every fold gives the same
rows whatever order the facts arrive in.

Each handler is a plain function of the event and a connection (the consumer's
transaction). ``PROJECTIONS`` is the one table of which contract is applied by
which handler; the durable that applies it is the one reading its producer's
stream (``DURABLES``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import asyncpg

from kaiku_shared.consumer import Consumer
from kaiku_shared.contracts import (
    IntegrationEvent,
    LibraryFeeCoveredV1,
    OfferingPublishedV1,
    SwimmingVisitRegisteredV1,
    VenueChangedV1,
    VenueRegisteredV1,
)

from . import statistics_fold as fold
from .statistics_fold import TABLES, Table, Upsert, keep

STATISTICS_CONSUMER = "cards-statistics"
USAGE_CONSUMER = "cards-usage"
DESK_USES_CONSUMER = "cards-desk-uses"
VENUE_PROFILES_CONSUMER = "cards-venue-profiles"
# The durable that reads each producer's stream.
DURABLES = {"cards": STATISTICS_CONSUMER, "venues": USAGE_CONSUMER}
# Contracts added after their producer's durable existed get a durable of their
# own: a filtered durable that already exists has passed their earlier messages
# and would never see them, while a new one starts at the stream's first message.
OWN_DURABLES = {SwimmingVisitRegisteredV1: DESK_USES_CONSUMER,
                LibraryFeeCoveredV1: DESK_USES_CONSUMER,
                VenueRegisteredV1: VENUE_PROFILES_CONSUMER,
                VenueChangedV1: VENUE_PROFILES_CONSUMER,
                OfferingPublishedV1: VENUE_PROFILES_CONSUMER}
# Every statistics change NOTIFYs this channel in the applying transaction
# (delivered on commit only): the worker's public-statistics refresher listens.
STATISTICS_CHANGED = "cards_statistics_changed"
NOTIFY_CHANGED = f"NOTIFY {STATISTICS_CHANGED}"

Projection = Callable[[Any, asyncpg.Connection], Awaitable[None]]


# --- which contract is applied how -----------------------------------------------------


def _applying(fold_fact: Callable[[Any], list[Upsert]]) -> Projection:
    """The live handler of one fact: its fold's upserts, applied in the consumer's
    transaction (the rebuild applies the same fold to its shadow tables)."""
    async def handler(event: IntegrationEvent, conn: asyncpg.Connection) -> None:
        await apply_upserts(conn, fold_fact(event))

    handler.__name__ = handler.__qualname__ = f"on_{fold_fact.__name__}"
    return handler


# One handler for each fact the fold knows (statistics_fold.FOLDS), so the live
# consumers and the rebuild can never disagree on which facts count.
PROJECTIONS: dict[type[IntegrationEvent], Projection] = {
    contract: _applying(fold_fact) for contract, fold_fact in fold.FOLDS.items()}


def durable_of(contract: type[IntegrationEvent]) -> str:
    return OWN_DURABLES.get(contract) or DURABLES[contract.PRODUCER]


def handlers_of(durable: str) -> dict[type[IntegrationEvent], Projection]:
    """The part of ``PROJECTIONS`` one durable applies (the rebuild reads it too)."""
    return {contract: handler for contract, handler in PROJECTIONS.items()
            if durable_of(contract) == durable}


CARD_HANDLERS = handlers_of(STATISTICS_CONSUMER)
USAGE_HANDLERS = handlers_of(USAGE_CONSUMER)
DESK_USE_HANDLERS = handlers_of(DESK_USES_CONSUMER)
VENUE_PROFILE_HANDLERS = handlers_of(VENUE_PROFILES_CONSUMER)
# Every durable with the stream it reads.
SOURCES = {STATISTICS_CONSUMER: "cards", USAGE_CONSUMER: "venues",
           DESK_USES_CONSUMER: "venues", VENUE_PROFILES_CONSUMER: "venues"}
# What the rebuild reads from the venues stream.
VENUE_SOURCED_HANDLERS = {**USAGE_HANDLERS, **DESK_USE_HANDLERS, **VENUE_PROFILE_HANDLERS}


def consumers(application: Any = None) -> list[Consumer]:
    """The durable consumers of ``PROJECTIONS`` (they need no application; None in
    an audit, which only reads their names and contracts)."""
    built = []
    for durable, source in SOURCES.items():
        consumer = Consumer(durable, source)
        for contract, handler in handlers_of(durable).items():
            consumer.on(contract)(handler)
        built.append(consumer)
    return built


# --- applying upserts ------------------------------------------------------------------
# A live handler applies a fact's upserts in order, in the consumer's transaction,
# one row at a time: it reads the row FOR UPDATE (worker replicas applying facts
# about the same row take turns), folds and updates it. A row that is not there
# yet is inserted, unless another transaction inserted it meanwhile; then it is
# read again. An upsert that leaves an existing row as it is (``keep``) needs no
# read: it is INSERT … ON CONFLICT DO NOTHING.


@dataclass(frozen=True)
class _Statements:
    select: str  # the row, locked
    insert: str  # a new row; true when inserted
    update: str  # every column, by key
    keep: str  # a new row, or nothing

    @classmethod
    def of(cls, table: Table) -> _Statements:
        number = {c: f"${i + 1}" for i, c in enumerate(table.columns)}
        columns, keys = ", ".join(table.columns), ", ".join(table.key)
        insert = (f"INSERT INTO {table.name} ({columns}) "
                  f"VALUES ({', '.join(number.values())}) ON CONFLICT ({keys}) DO NOTHING")
        return cls(
            select=(f"SELECT {columns} FROM {table.name} WHERE "
                    + " AND ".join(f"{k} = ${i + 1}" for i, k in enumerate(table.key))
                    + " FOR UPDATE"),
            insert=f"{insert} RETURNING true",
            update=(f"UPDATE {table.name} SET "
                    + ", ".join(f"{c} = {number[c]}" for c in table.columns
                                if c not in table.key)
                    + " WHERE " + " AND ".join(f"{k} = {number[k]}" for k in table.key)),
            keep=insert,
        )


_STATEMENTS = {table: _Statements.of(table) for table in TABLES}


async def apply_upserts(conn: asyncpg.Connection, changes: list[Upsert]) -> None:
    """Apply one fact's row changes to the tables (the live side of the fold), and
    tell the public statistics' refresher once the transaction commits."""
    if changes:
        await conn.execute(NOTIFY_CHANGED)
    for (table, keeps), group in groupby(changes, lambda c: (c.table, c.on_conflict is keep)):
        sql = _STATEMENTS[table]
        if keeps:
            await conn.executemany(sql.keep, [table.record(table.new_row(change.values))
                                              for change in group])
            continue
        for change in group:
            key = [change.values[k] for k in table.key]
            while True:
                current = await conn.fetchrow(sql.select, *key)
                if current is not None:
                    row = change.apply(dict(current))
                    if row is not None:
                        await conn.execute(sql.update, *table.record(row))
                    break
                if await conn.fetchval(sql.insert, *table.record(change.apply(None))):
                    break  # else another transaction has just inserted it: read it
