"""A synthetic national history written through the real write path.

Distributors are registered as organisations; every card is issued with
``Card.issue`` on its historical issuing day (so every rule is checked), some
are renewed with wellbeing answers, and the card's historical uses are recorded
with ``Card.import_uses``. Cards are saved many per transaction (``app.save(*cards)``)
— the group commit that keeps the event store's table lock from bounding the
throughput at one save per lock.

Deterministic from ``seed``: running it again finds what it wrote (ids and card
numbers derive from the seed) and continues where it stopped.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.persistence import IntegrityError, StoredEvent

from ..domain.card_numbers import card_number_candidates
from ..domain.model import Card, Organisation
from .app import CardsApplication

# The seed's national figures (April 2025).
SEED_CARDS = 88_188
SEED_USES = 251_566
SEED_USES_WITH_CHILDREN = 42_024
WELLBEING_FROM = date(2025, 1, 1)  # the wellbeing questions are asked from 2025


@dataclass(frozen=True)
class Plan:
    cards: int = SEED_CARDS
    uses: int = SEED_USES
    uses_with_children: int = SEED_USES_WITH_CHILDREN
    since: int = 2015
    until: date = date(2025, 4, 30)
    distributors: int = 420
    seed: str = "kaikukortti"
    batch: int = 100  # much larger batches stalled psycopg pipeline mode (README)


@dataclass
class Totals:
    distributors: int = 0
    cards: int = 0
    renewals: int = 0
    uses: int = 0
    uses_with_children: int = 0
    child_tickets: int = 0
    skipped_existing: int = 0
    by_region: dict[str, int] = field(default_factory=dict)

    def add(self, built: list[tuple[Card, bool, _Draft]]) -> None:
        for card, renewed, d in built:
            self.cards += 1
            self.renewals += renewed
            self.uses += len(d.uses)
            self.uses_with_children += sum(1 for u in d.uses if u["children"])
            self.child_tickets += sum(u["children"] for u in d.uses)
            self.by_region[card.region] = self.by_region.get(card.region, 0) + 1


@dataclass
class _Draft:
    number: str
    issuer: UUID
    municipality: str
    region: str
    issued: date
    birth_year: int
    postal_code: str
    children: int
    life_satisfaction: int | None
    uses: list[dict] = field(default_factory=list)


def _issue_days(rng: random.Random, plan: Plan, count: int) -> list[date]:
    """Issuing days since ``since``, more each year as the network grew."""
    start = date(plan.since, 1, 1)
    span = (plan.until - start).days
    # density grows linearly: day = span * sqrt(u)
    return sorted(start + timedelta(days=int(span * rng.random() ** 0.5)) for _ in range(count))


def _answer(rng: random.Random, low: int, high: int) -> int | None:
    return None if rng.random() < 0.15 else rng.randint(low, high)  # 15 % "no answer"


def draft(app: CardsApplication, plan: Plan) -> tuple[list[tuple[UUID, str, str]],
                                                       list[_Draft]]:
    """The distributors and cards to write, uses placed exactly to the totals."""
    rng = random.Random(plan.seed)
    places = [m for m in app.network.municipalities.values()
              if m.status in ("in_use", "pilot", "joining_2025_2026")]
    distributors = []
    for i in range(plan.distributors):
        place = places[i % len(places)] if i < len(places) else rng.choice(places)
        distributors.append((uuid5(NAMESPACE_URL, f"/seed-history/{plan.seed}/distributor/{i}"),
                             place.code, place.region))
    taken: set[str] = set()
    cards: list[_Draft] = []
    for i, issued in enumerate(_issue_days(rng, plan, plan.cards)):
        issuer, municipality, region = rng.choice(distributors)
        for number in card_number_candidates(f"seed-history/{plan.seed}/{i}"):
            if number not in taken:
                taken.add(number)
                break
        age = min(int(rng.triangular(16, 90, 45)), 95)
        children = rng.choices((0, 1, 2, 3, 4, 5), weights=(55, 17, 14, 8, 4, 2))[0]
        cards.append(_Draft(
            number=number, issuer=issuer, municipality=municipality, region=region,
            issued=issued, birth_year=issued.year - age,
            postal_code=f"{rng.randrange(100, 99999):05d}", children=children,
            life_satisfaction=_answer(rng, 2, 10) if issued >= WELLBEING_FROM else None,
        ))
    with_children = [c for c in cards if c.children > 0]
    if plan.uses_with_children and not with_children:
        raise ValueError("no card has children: cannot place uses with children")
    if plan.uses_with_children > plan.uses:
        raise ValueError("uses with children cannot exceed uses")
    for n in range(plan.uses):
        child_use = n < plan.uses_with_children
        card = rng.choice(with_children if child_use else cards)
        last = min(plan.until, card.issued + timedelta(days=364))
        day = card.issued + timedelta(days=rng.randint(0, max((last - card.issued).days, 0)))
        card.uses.append({
            "use_id": uuid5(NAMESPACE_URL, f"/seed-history/{plan.seed}/use/{n}"),
            "used_at": datetime.combine(day, time(12, 0), tzinfo=UTC),
            "venue_municipality": rng.choice(places).code if rng.random() < 0.2
            else card.municipality,
            "children": rng.randint(1, card.children) if child_use else 0,
        })
    return distributors, cards


def _build(draft_: _Draft, plan: Plan, rng: random.Random) -> tuple[Card, bool]:
    card = Card.issue(
        card_number=draft_.number, issuer_organisation_id=draft_.issuer, today=draft_.issued,
        birth_year=draft_.birth_year, postal_code=draft_.postal_code,
        municipality=draft_.municipality, region=draft_.region, children=draft_.children,
        valid_until=None, life_satisfaction=draft_.life_satisfaction, community=False,
        issue_key=None,
    )
    renewed = False
    renewal_day = card.valid_until
    if renewal_day < plan.until and rng.random() < 0.35:
        asked = renewal_day >= WELLBEING_FROM
        card.renew(today=renewal_day, valid_until=None,
                   life_satisfaction=_answer(rng, 3, 10) if asked else None,
                   wellbeing_impact=_answer(rng, 4, 10) if asked else None)
        renewed = True
    card.import_uses(draft_.uses)
    return card, renewed


def _exists(app: CardsApplication, aggregate_id: UUID) -> bool:
    return bool(app.recorder.select_events(aggregate_id, limit=1))


@dataclass
class History:
    """The history as aggregates with their new events, not yet saved: what
    ``seed_history`` saves batch by batch (and what the benchmark bulk-loads)."""

    distributors: list[tuple[UUID, str, str]]
    drafts: list[_Draft]
    plan: Plan

    def organisations(self) -> list[Organisation]:
        return [Organisation.register(organisation_id, "distributor",
                                      f"Kortinjakaja {i + 1:03d}", municipality)
                for i, (organisation_id, municipality, _) in enumerate(self.distributors)]

    def card_batches(self) -> Iterator[list[tuple[Card, bool, _Draft]]]:
        """(card, renewed, draft) in batches of ``plan.batch``, in the saving order."""
        rng = random.Random(f"{self.plan.seed}/renewals")
        for chunk in _chunks(self.drafts, self.plan.batch):
            yield [(*_build(d, self.plan, rng), d) for d in chunk]


def history(app: CardsApplication, plan: Plan) -> History:
    distributors, drafts = draft(app, plan)
    return History(distributors, drafts, plan)


def stored_history(app: CardsApplication, plan: Plan, totals: Totals | None = None
                   ) -> Iterator[list[StoredEvent]]:
    """The stored events ``seed_history`` would record, batch by batch, in its saving
    order, made by the application's own mapper but not saved: for loading a large
    history in bulk (the benchmark COPYs them into the events table). Only the
    event timestamps differ (the time they are made), as between two real runs."""
    planned = history(app, plan)
    if totals is not None:
        totals.distributors = len(planned.distributors)
    to_stored = app.mapper.to_stored_event
    yield [to_stored(e) for o in planned.organisations() for e in o.collect_events()]
    for built in planned.card_batches():
        yield [to_stored(e) for card, _, _ in built for e in card.collect_events()]
        if totals is not None:
            totals.add(built)


def seed_history(app: CardsApplication, plan: Plan,
                 progress: Callable[[str, int], None] | None = None) -> Totals:
    """Write the history; ``progress(stage, n)`` after each batch."""
    totals = Totals()
    planned = history(app, plan)
    if progress:
        progress("planned", len(planned.drafts))
    organisations = [o for o in planned.organisations() if not _exists(app, o.id)]
    if organisations:
        app.save(*organisations)
    totals.distributors = len(planned.distributors)
    if progress:
        progress("distributors", len(planned.distributors))
    for built in planned.card_batches():
        cards = [card for card, _, _ in built]
        try:
            app.save(*cards)  # one transaction for the whole batch
        except IntegrityError:
            # Written before (a resumed run): save only what is missing.
            missing = [c for c in cards if not _exists(app, c.id)]
            totals.skipped_existing += len(cards) - len(missing)
            if missing:
                app.save(*missing)
        totals.add(built)
        if progress:
            progress("cards", len(built))
    return totals


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
