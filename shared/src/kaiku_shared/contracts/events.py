"""Every integration event in the system, declared once.

None of these carries personal data: a holder appears only as a card number or an
opaque account id. Names, e-mail addresses and phones never leave omakaiku.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field

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
    # Added without a new version (an optional field, readers ignore unknown
    # ones): a proposal waits for Kaikukeskus' approval. Absent = approved.
    status: Literal["approved", "pending"] = "approved"


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


@contract
class CardReplacedV1(IntegrationEvent):
    """A lost card was replaced: ``card_number`` (closed) now continues as
    ``replacement_card_number``, with the same validity. Follows the old card's
    CardClosedV1; lets a holder's account and history move to the new number."""

    PRODUCER = "cards"
    EVENT_TYPE = "card_replaced"
    card_number: str
    replacement_card_number: str
    valid_until: date


class ImportedUse(BaseModel):
    """One historical use of a card, from before this system (no venue id)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    use_id: UUID
    used_at: datetime
    venue_municipality: str
    children: int = Field(ge=0)


@contract
class CardUsesImportedV1(IntegrationEvent):
    """A card's historical uses, imported into Kaikukanta (e.g. ``seed-history``).
    Statistics count them as uses; they are not tickets at any venue."""

    PRODUCER = "cards"
    EVENT_TYPE = "card_uses_imported"
    card_number: str
    uses: tuple[ImportedUse, ...]


@contract
class OrganisationStatusChangedV1(IntegrationEvent):
    """A pending distributor was approved, or a partner left the network."""

    PRODUCER = "cards"
    EVENT_TYPE = "organisation_status_changed"
    organisation_id: UUID
    status: Literal["approved", "left"]


@contract
class StaffAccessRevokedV1(IntegrationEvent):
    """Staff tokens stop counting: every token of a user issued before
    ``not_before`` (deactivated, password changed), or one token (signed out;
    ``target`` is its ``jti``, ``expires_at`` when it would have expired anyway).
    Every service projects this and refuses such tokens within 2 s. Names no
    person: a user id or a token id."""

    PRODUCER = "cards"
    EVENT_TYPE = "staff_access_revoked"
    scope: Literal["user", "token"]
    target: str = Field(min_length=1, max_length=100)  # the user, account or token id
    not_before: datetime
    expires_at: datetime | None = None
    reason: Literal["deactivated", "password_changed", "signed_out"]


class NetworkRegion(BaseModel):
    model_config = ConfigDict(frozen=True)
    code: str = Field(min_length=1, max_length=60)
    name: dict[str, str]  # by language: fi, sv, en
    country: str = "FI"


class NetworkMunicipality(BaseModel):
    model_config = ConfigDict(frozen=True)
    code: str = Field(min_length=1, max_length=60)
    name: dict[str, str]  # by language: fi, sv, en
    region: str
    status: str  # member | not_member | ...: as cards' network says
    country: str = "FI"


@contract
class NetworkChangedV1(IntegrationEvent):
    """The network's reference data, owned by cards: these regions and
    municipalities are now as given (the whole network when it is first
    published, one entry for each later change). Other services project it
    instead of keeping a copy of cards' reference file."""

    PRODUCER = "cards"
    EVENT_TYPE = "network_changed"
    regions: tuple[NetworkRegion, ...] = ()
    municipalities: tuple[NetworkMunicipality, ...] = ()


# --- venues -------------------------------------------------------------------


class VenueContact(BaseModel):
    """A venue's public box-office contact, as the venue publishes it for holders:
    the organisation's phone, e-mail, web page and opening hours, never a person's
    own. It is public by nature, so it may travel on NATS (holders' views of an
    offering show it and follow its changes)."""

    model_config = ConfigDict(frozen=True)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=200)
    url: str | None = Field(default=None, max_length=300)
    box_office: str | None = Field(default=None, max_length=300)


@contract
class VenueRegisteredV1(IntegrationEvent):
    PRODUCER = "venues"
    EVENT_TYPE = "venue_registered"
    venue_id: UUID
    organisation_id: UUID
    name: str
    kind: str
    municipality: str
    # Added without a new version (optional; absent on venues registered before).
    contact: VenueContact | None = None


@contract
class VenueChangedV1(IntegrationEvent):
    """A venue's profile changed; ``changed`` names what (``name``, ``contact``,
    ``limits``, ``ticket_agents``). Every other field is the venue's whole state
    after the change, so a reader keeps a copy without reading the venue again and
    a removed ticket agent is simply absent. ``name`` and ``contact`` are optional
    only because events published before they were added lack them (absent there
    means unchanged). Changed limits apply to offerings published from then on;
    each offering's own limits travel in OfferingTermsPublished."""

    PRODUCER = "venues"
    EVENT_TYPE = "venue_changed"
    venue_id: UUID
    organisation_id: UUID
    changed: tuple[str, ...]
    ticket_agents: tuple[UUID, ...] = ()
    name: str | None = None
    contact: VenueContact | None = None


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
    # Card places the ticket takes (the holder, the children, an assistant). Added
    # without a new version: absent on older events, where it was 1 + children.
    places: int | None = Field(default=None, ge=1)


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


@contract
class OfferingTermsPublishedV1(IntegrationEvent):
    """What the card covers for an offering, published right after OfferingPublished:
    the venue's limits, so holders see every limit with the offering (the venue's
    public box-office contact travels in VenueRegistered and VenueChanged).
    ``card_tickets_excluded`` names the rule (``production-excluded``,
    ``weekend-excluded``) when the card gives no tickets to it at all."""

    PRODUCER = "venues"
    EVENT_TYPE = "offering_terms_published"
    offering_id: UUID
    venue_id: UUID
    venue_kind: str
    production: str
    sales_opens_at: datetime | None = None
    card_tickets_excluded: str | None = None
    one_ticket_per_card: bool = False
    max_open_reservations: int | None = None
    weekends_excluded: bool = False
    excluded_productions: tuple[str, ...] = ()


@contract
class OfferingChangedV1(IntegrationEvent):
    """The offering's state after a change (all fields, not a diff)."""

    PRODUCER = "venues"
    EVENT_TYPE = "offering_changed"
    offering_id: UUID
    venue_id: UUID
    title: str
    starts_at: datetime
    capacity: int
    card_cap: int
    sales_opens_at: datetime | None = None


@contract
class OfferingCancelledV1(IntegrationEvent):
    """The offering is cancelled; each of its tickets gets its own TicketCancelled."""

    PRODUCER = "venues"
    EVENT_TYPE = "offering_cancelled"
    offering_id: UUID
    venue_id: UUID
    title: str
    starts_at: datetime
    reason: str | None = None
    tickets_cancelled: int = Field(ge=0)


@contract
class TicketCancellationRefusedV1(IntegrationEvent):
    """A holder's TicketCancellationRequested that venues refused (``rule`` names why)."""

    PRODUCER = "venues"
    EVENT_TYPE = "ticket_cancellation_refused"
    ticket_id: UUID
    account_id: UUID
    card_number: str
    rule: str
    detail: str
    request_event_id: str


@contract
class SwimmingVisitRegisteredV1(IntegrationEvent):
    """A use of the card at a swimming hall on its yearly series of visits."""

    PRODUCER = "venues"
    EVENT_TYPE = "swimming_visit_registered"
    venue_id: UUID
    card_number: str
    year: int
    children: int = Field(ge=0)
    visits: int = Field(ge=1)
    visits_used: int = Field(ge=1)
    visits_per_year: int | None = None
    registered_by: UUID


@contract
class LibraryFeeCoveredV1(IntegrationEvent):
    """A library fee the card covered (interlibrary loan, late fee, copying)."""

    PRODUCER = "venues"
    EVENT_TYPE = "library_fee_covered"
    venue_id: UUID
    card_number: str
    year: int
    fee_type: Literal["interlibrary_loan", "late_fee", "copying"]
    amount_cents: int = Field(ge=1)
    year_total_cents: int = Field(ge=1)
    cap_cents: int | None = None
    registered_by: UUID


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


# A holder may rate an event from its start until this long after it; omakaiku
# refuses later feedback (422), so no FeedbackGiven for an offering is recorded
# after ``starts_at + FEEDBACK_WINDOW``, and venues releases an offering's averages
# only once that is past (they cannot change after release, so cannot be
# differenced over time). 30 days: long enough for a holder to get round to it,
# short enough that a venue hears back within the month.
FEEDBACK_WINDOW = timedelta(days=30)


@contract
class FeedbackGivenV1(IntegrationEvent):
    """Superseded by ``FeedbackGivenV2``: its ``ticket_id`` linked each answer to a
    ticket, and so to a card. No longer published; kept while V1 messages stay in
    the stream. A reader upcasts it (``upcast``) and drops the ticket id."""

    PRODUCER = "omakaiku"
    EVENT_TYPE = "feedback_given"
    ticket_id: UUID
    offering_id: UUID
    venue_id: UUID
    accessibility: int = Score
    meaning: int = Score
    interest: int = Score

    def upcast(self) -> FeedbackGivenV2:
        """The same answer as a V2 event, without the ticket. Its ``feedback_id`` is
        derived from this event's ``event_id`` (never from the ticket), so a
        redelivery of the same V1 message is the same answer; so is its
        ``aggregate_id``, which was derived from the ticket in V1."""
        feedback_id = uuid5(FEEDBACK_V1_NAMESPACE, str(self.event_id))
        envelope = self.model_dump(include=set(IntegrationEvent.model_fields) - {
            "event_type", "schema_version", "producer", "aggregate_id"})
        return FeedbackGivenV2.build(  # type: ignore[return-value]
            **envelope, aggregate_id=feedback_id, feedback_id=feedback_id,
            offering_id=self.offering_id, venue_id=self.venue_id,
            accessibility=self.accessibility, meaning=self.meaning, interest=self.interest)


# Namespace of the feedback ids of upcast V1 events: uuid5(namespace, event_id).
FEEDBACK_V1_NAMESPACE = UUID("3e0b6f52-8d1a-4c7e-9b25-6f4a0d8c1e73")


@contract
class FeedbackGivenV2(IntegrationEvent):
    """A holder's rating of an event they attended, unlinkable to the holder: it
    names no ticket, card or account. ``feedback_id`` (also the ``aggregate_id``)
    is random, drawn for this answer alone; only omakaiku knows which ticket gave
    it (to refuse a second answer). The envelope's correlation and trace fields
    are left empty, so the answer cannot be matched to the holder's request
    either. Given between the offering's start and ``FEEDBACK_WINDOW`` after it."""

    PRODUCER = "omakaiku"
    EVENT_TYPE = "feedback_given"
    VERSION = 2
    feedback_id: UUID
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


@contract
class HolderAccessRevokedV1(IntegrationEvent):
    """A holder token stops counting: one token signed out (``target`` is its
    ``jti``), or every token of an account issued before ``not_before``.
    (Erasure needs no event of its own: ``AccountErasedV1`` revokes the account.)"""

    PRODUCER = "omakaiku"
    EVENT_TYPE = "holder_access_revoked"
    scope: Literal["account", "token"]
    target: str = Field(min_length=1, max_length=100)  # the user, account or token id
    not_before: datetime
    expires_at: datetime | None = None
    reason: Literal["signed_out"]


@contract
class MobileCardKeyPublishedV1(IntegrationEvent):
    """The public half of a key omakaiku signs mobile cards with, published once
    per key id (``kid``) so that venues verify mobile-card tokens offline.

    The key is given as JWK fields (RFC 7517/8037): today ``kty`` OKP, ``crv``
    Ed25519, ``x`` the raw public key in base64url, for ``algorithm`` EdDSA.
    Several keys may be valid at once (rotation): a token names its key by the
    ``kid`` in its header. The aggregate is the key itself (id derived from the
    kid), so it is always version 1. Names no holder.
    """

    PRODUCER = "omakaiku"
    EVENT_TYPE = "mobile_card_key_published"
    kid: str = Field(min_length=1, max_length=200)
    algorithm: str
    kty: str
    crv: str
    x: str = Field(min_length=1, max_length=1000)
    published_at: datetime


# --- notifications (decides who gets what; never learns who they are) ---------


class NotificationItem(BaseModel):
    """One notification inside a digest: a template key and its parameters.

    The key is language-neutral; omakaiku renders it in the holder's language.
    Parameters are offering titles, venue names, dates: never personal data.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")
    kind: str
    source_id: UUID
    template_key: str
    params: dict[str, str]


@contract
class NotificationBatchIssuedV1(IntegrationEvent):
    """Hand-over to omakaiku: send this one notification to each listed account.

    A batch, not one event per holder: a fan-out to 100,000 holders is 100
    events of at most 1,000 accounts (each well under the NATS payload limit).
    Holders who chose a daily digest are not listed; they get a digest.
    """

    PRODUCER = "notifications"
    EVENT_TYPE = "notification_batch_issued"
    batch_id: UUID
    kind: str
    source_id: UUID
    template_key: str
    params: dict[str, str]
    account_ids: tuple[UUID, ...]


@contract
class NotificationDigestIssuedV1(IntegrationEvent):
    """Hand-over to omakaiku: one holder's daily digest of notifications."""

    PRODUCER = "notifications"
    EVENT_TYPE = "notification_digest_issued"
    digest_id: UUID
    account_id: UUID
    digest_date: date
    items: tuple[NotificationItem, ...]


@contract
class MessageSentV1(IntegrationEvent):
    """A message was delivered to an inbox. Ids only: subject and body may hold
    whatever people write, so they stay in notifications' database."""

    PRODUCER = "notifications"
    EVENT_TYPE = "message_sent"
    message_id: UUID
    sender_kind: Literal["organisation", "holder", "user"]
    sender_organisation_id: UUID | None = None
    sender_account_id: UUID | None = None
    sender_user_id: str | None = None
    recipient_kind: Literal["organisation", "holder", "user"]
    recipient_organisation_id: UUID | None = None
    recipient_account_id: UUID | None = None
    recipient_card_number: str | None = None
    recipient_user_id: str | None = None


@contract
class BulletinPublishedV1(IntegrationEvent):
    """Kaikukeskus's bulletin to every organisation and holder (public text)."""

    PRODUCER = "notifications"
    EVENT_TYPE = "bulletin_published"
    bulletin_id: UUID
    title: str
    body: str
