"""Kaikukanta use cases: one method per use case, get → decide → save.

Synchronous (the eventsourcing library is); the HTTP layer calls these in a
thread. Library errors are translated here into the service's own errors.
"""

from __future__ import annotations

from datetime import date
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from kaiku_shared.eventstore import KaikuApplication, retry_on_conflict

from ..domain.card_numbers import card_number_candidates
from ..domain.model import Card, Organisation, RuleViolation, normalise_card_number
from ..domain.network import Network


class NotFound(Exception):
    def __init__(self, what: str, message: str) -> None:
        super().__init__(message)
        self.what = what


class Forbidden(Exception):
    pass


class CardsApplication(KaikuApplication):
    name = "cards"

    def __init__(self, env: dict[str, str] | None = None, *, network: Network) -> None:
        super().__init__(env)
        self.network = network

    # --- organisations ---------------------------------------------------------

    def register_organisation(self, organisation_id: UUID, kind: str, name: str,
                              municipality: str) -> Organisation:
        place = self.network.municipality(municipality)
        try:
            existing = self.get_organisation(organisation_id)
        except NotFound:
            existing = None
        if existing is not None:
            return existing  # a retried request with the same idempotency key
        organisation = Organisation.register(organisation_id, kind, name, place.code)
        self.save(organisation)
        return organisation

    def get_organisation(self, organisation_id: UUID) -> Organisation:
        try:
            return self.repository.get(organisation_id)
        except AggregateNotFoundError:
            raise NotFound("organisation", f"No organisation {organisation_id}.") from None

    def require_distributor(self, organisation_id: UUID) -> Organisation:
        organisation = self.get_organisation(organisation_id)
        if organisation.kind != "distributor":
            raise Forbidden(f"Organisation {organisation_id} is not a distributor.")
        return organisation

    # --- cards -----------------------------------------------------------------

    def issue_card(
        self,
        *,
        issuer_organisation_id: UUID,
        today: date,
        birth_year: int,
        postal_code: str,
        municipality: str,
        children: int,
        valid_until: date | None = None,
        life_satisfaction: int | None = None,
        community: bool = False,
        issue_key: str | None = None,
    ) -> Card:
        self.require_distributor(issuer_organisation_id)
        place = self.network.card_municipality(municipality)
        seed = f"{issuer_organisation_id}/{issue_key}" if issue_key else None
        for attempt, number in enumerate(card_number_candidates(seed)):
            card = Card.issue(
                card_number=number, issuer_organisation_id=issuer_organisation_id,
                today=today, birth_year=birth_year, postal_code=postal_code,
                municipality=place.code, region=place.region, children=children,
                valid_until=valid_until, life_satisfaction=life_satisfaction,
                community=community, issue_key=seed,
            )
            try:
                self.save(card)
                return card
            except IntegrityError:
                # The number is taken. The same idempotency key means this very
                # request already issued it: answer with that card.
                existing = self.repository.get(Card.create_id(number))
                if seed is not None and existing.issue_key == seed:
                    return existing
                if attempt > 50:
                    raise
        raise AssertionError("unreachable")

    def get_card(self, card_number: str) -> Card:
        number = normalise_card_number(card_number)
        try:
            return self.repository.get(Card.create_id(number))
        except AggregateNotFoundError:
            raise NotFound("card", f"No card {number} in Kaikukanta.") from None

    def issued_card(self, card_number: str, organisation_id: UUID) -> Card:
        """The card, if ``organisation_id`` issued it: distributors see only their own."""
        card = self.get_card(card_number)
        if card.issuer_organisation_id != organisation_id:
            raise Forbidden(f"Card {card.card_number} was issued by another distributor.")
        return card

    @retry_on_conflict()
    def renew_card(self, card_number: str, organisation_id: UUID, *, today: date,
                   valid_until: date | None, life_satisfaction: int | None,
                   wellbeing_impact: int | None) -> Card:
        card = self.issued_card(card_number, organisation_id)
        card.renew(today=today, valid_until=valid_until, life_satisfaction=life_satisfaction,
                   wellbeing_impact=wellbeing_impact)
        self.save(card)
        return card

    @retry_on_conflict()
    def change_card(self, card_number: str, organisation_id: UUID, *, children: int | None,
                    postal_code: str | None, municipality: str | None) -> Card:
        card = self.issued_card(card_number, organisation_id)
        place = self.network.card_municipality(municipality) if municipality else None
        card.change(children=children, postal_code=postal_code,
                    municipality=place.code if place else None,
                    region=place.region if place else None)
        self.save(card)
        return card

    @retry_on_conflict()
    def close_card(self, card_number: str, *, reason: str,
                   organisation_id: UUID | None) -> Card:
        """Close; ``organisation_id`` None means Kaikukeskus, who may close any card."""
        card = (self.get_card(card_number) if organisation_id is None
                else self.issued_card(card_number, organisation_id))
        card.close(reason)
        self.save(card)
        return card


__all__ = ["CardsApplication", "Forbidden", "NotFound", "RuleViolation"]
