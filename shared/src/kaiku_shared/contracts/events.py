"""Every integration event in the system, declared once.

None of these carries personal data: a holder appears only as a card number or an
opaque account id. Names, e-mail addresses and phones never leave omakaiku.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from .base import IntegrationEvent, contract

Score = Field(ge=0, le=5)

# --- cards (Kaikukanta) -----------------------------------------------------


@contract
class OrganisationRegisteredV1(IntegrationEvent):
    PRODUCER = "cards"
    EVENT_TYPE = "organisation_registered"
    organisation_id: UUID
    kind: Literal["kaikukeskus", "distributor", "venue", "ticket_agent"]
    name: str
    municipality: str


@contract
class CardIssuedV1(IntegrationEvent):
    PRODUCER = "cards"
    EVENT_TYPE = "card_issued"
    card_number: str
    issuer_organisation_id: UUID
    valid_from: date
    valid_until: date
    children: int = Field(ge=0)
    birth_year: int
    postal_code: str
    municipality: str
    region: str
    community: bool = False
    life_satisfaction: int | None = None


@contract
class CardRenewedV1(IntegrationEvent):
    PRODUCER = "cards"
    EVENT_TYPE = "card_renewed"
    card_number: str
    valid_until: date
    children: int = Field(ge=0)
    municipality: str
    region: str
    life_satisfaction: int | None = None
    wellbeing_impact: int | None = None


@contract
class CardChangedV1(IntegrationEvent):
    PRODUCER = "cards"
    EVENT_TYPE = "card_changed"
    card_number: str
    valid_until: date
    children: int = Field(ge=0)
    postal_code: str
    municipality: str
    region: str


@contract
class CardClosedV1(IntegrationEvent):
    """Closing is final: a read model keeps a card closed whatever arrives later."""

    PRODUCER = "cards"
    EVENT_TYPE = "card_closed"
    card_number: str
    reason: str


# --- venues -------------------------------------------------------------------


@contract
class VenueRegisteredV1(IntegrationEvent):
    PRODUCER = "venues"
    EVENT_TYPE = "venue_registered"
    venue_id: UUID
    organisation_id: UUID
    name: str
    kind: str
    municipality: str


@contract
class OfferingPublishedV1(IntegrationEvent):
    PRODUCER = "venues"
    EVENT_TYPE = "offering_published"
    offering_id: UUID
    venue_id: UUID
    venue_name: str
    title: str
    kind: str
    genres: tuple[str, ...]
    subgenres: tuple[str, ...] = ()
    starts_at: datetime
    municipality: str
    capacity: int
    card_cap: int


@contract
class TicketRegisteredV1(IntegrationEvent):
    PRODUCER = "venues"
    EVENT_TYPE = "ticket_registered"
    ticket_id: UUID
    offering_id: UUID
    offering_title: str
    venue_id: UUID
    venue_name: str
    municipality: str
    starts_at: datetime
    card_number: str
    children: int = Field(ge=0)
    channel: str
    registered_by: UUID


@contract
class TicketCancelledV1(IntegrationEvent):
    PRODUCER = "venues"
    EVENT_TYPE = "ticket_cancelled"
    ticket_id: UUID
    offering_id: UUID
    venue_id: UUID
    card_number: str
    children: int = Field(ge=0)
    reason: str | None = None
    requested_by_holder: bool = False


# --- omakaiku (holder service; no personal data leaves it) --------------------


@contract
class AccountActivatedV1(IntegrationEvent):
    PRODUCER = "omakaiku"
    EVENT_TYPE = "account_activated"
    account_id: UUID
    card_number: str
    activated_by: UUID


@contract
class TicketCancellationRequestedV1(IntegrationEvent):
    PRODUCER = "omakaiku"
    EVENT_TYPE = "ticket_cancellation_requested"
    account_id: UUID
    ticket_id: UUID
    card_number: str


@contract
class FeedbackGivenV1(IntegrationEvent):
    PRODUCER = "omakaiku"
    EVENT_TYPE = "feedback_given"
    ticket_id: UUID
    offering_id: UUID
    venue_id: UUID
    accessibility: int = Score
    meaning: int = Score
    interest: int = Score


@contract
class GenreSubscriptionsChangedV1(IntegrationEvent):
    PRODUCER = "omakaiku"
    EVENT_TYPE = "genre_subscriptions_changed"
    account_id: UUID
    genres: tuple[str, ...]
    subgenres: tuple[str, ...] = ()
    region: str | None = None


@contract
class AccountErasedV1(IntegrationEvent):
    PRODUCER = "omakaiku"
    EVENT_TYPE = "account_erased"
    account_id: UUID
