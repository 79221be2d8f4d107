"""OmaKaiku's aggregates: the holder's account — the only personal data anywhere.

Personal fields never enter an event in clear: the application seals them with
the holder's own key before the account records them (``sealed``), so the event
store holds only ciphertext, and erasing the key (crypto-shredding) makes every
stored copy unreadable. Events of these aggregates stay in omakaiku's own event
store; what leaves the service (adapters/translate.py) carries the opaque
account id and the card number only. ``MobileCardKey`` is the one aggregate
about no holder: the public key venues verify mobile cards with.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate, event

from kaiku_shared.kernel.errors import NotFound, RuleViolation

LANGUAGES = ("fi", "sv", "en")
PERSONAL_FIELDS = ("first_name", "last_name", "email", "phone", "municipality")
SCORES = ("accessibility", "meaning", "interest")


class Account(Aggregate):
    @event("Activated")
    def __init__(self, id: UUID, card_number: str, sealed: str,  # noqa: A002
                 language: str, activated_by: UUID) -> None:
        self.card_number = card_number
        self.sealed = sealed  # the personal fields, encrypted with the holder's key
        self.language = language
        self.activated_by = activated_by
        self.cancellation_requests: list[str] = []
        self.genres: list[str] = []
        self.subgenres: list[str] = []
        self.region: str | None = None
        self.previous_card_numbers: list[str] = []
        self.erased = False

    @property
    def card_numbers(self) -> list[str]:
        """The current card first, then the cards it replaced (their history is the
        holder's too)."""
        return [self.card_number, *self.previous_card_numbers]

    def move_to_card(self, new_card_number: str) -> bool:
        """A lost card was replaced: the account continues on the new number."""
        if self.erased or new_card_number in self.card_numbers:
            return False
        self._card_replaced(old_card_number=self.card_number, new_card_number=new_card_number)
        return True

    @event("CardReplaced")
    def _card_replaced(self, old_card_number: str, new_card_number: str) -> None:
        self.previous_card_numbers.append(old_card_number)
        self.card_number = new_card_number

    def request_cancellation(self, ticket_id: UUID) -> bool:
        """False when the holder already asked (a double tap, a retry)."""
        self._must_be_active()
        if str(ticket_id) in self.cancellation_requests:
            return False
        self._cancellation_requested(ticket_id=ticket_id, card_number=self.card_number)
        return True

    @event("CancellationRequested")
    def _cancellation_requested(self, ticket_id: UUID, card_number: str) -> None:
        self.cancellation_requests.append(str(ticket_id))

    def change_subscriptions(self, genres: list[str], subgenres: list[str],
                             region: str | None) -> bool:
        """False when nothing changes (a retried PUT publishes nothing new)."""
        self._must_be_active()
        genres, subgenres = sorted(set(genres)), sorted(set(subgenres))
        if (genres, subgenres, region) == (self.genres, self.subgenres, self.region):
            return False
        self._subscriptions_changed(genres=genres, subgenres=subgenres, region=region)
        return True

    @event("SubscriptionsChanged")
    def _subscriptions_changed(self, genres: list[str], subgenres: list[str],
                               region: str | None) -> None:
        self.genres = list(genres)
        self.subgenres = list(subgenres)
        self.region = region

    def erase(self, by: str) -> bool:
        """The holder's data is gone for good: False when it already was."""
        if self.erased:
            return False
        self._erased(by=by)
        return True

    @event("Erased")
    def _erased(self, by: str) -> None:
        self.erased = True
        self.sealed = ""
        self.genres, self.subgenres, self.region = [], [], None

    def _must_be_active(self) -> None:
        if self.erased:
            raise NotFound("Account", "This account has been erased.")


class CardAccount(Aggregate):
    """One account per card: saved with the account, a second one conflicts.

    Erasure releases the card, so the holder may later get a new account."""

    @staticmethod
    def create_id(card_number: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/kaikukortti/omakaiku/card-account/{card_number}")

    @event("Linked")
    def __init__(self, card_number: str, account_id: UUID) -> None:
        self.card_number = card_number
        self.account_id: UUID | None = account_id

    def relink(self, account_id: UUID) -> None:
        if self.account_id is not None:
            raise RuleViolation("account-exists",
                                f"Card {self.card_number} already has an OmaKaiku account.")
        self._relinked(account_id=account_id)

    @event("Relinked")
    def _relinked(self, account_id: UUID) -> None:
        self.account_id = account_id

    def release(self) -> None:
        if self.account_id is not None:
            self._released()

    @event("Released")
    def _released(self) -> None:
        self.account_id = None


class Feedback(Aggregate):
    """A holder's rating of one attended event: one per ticket, by construction of
    the id. Carries no account id, so nothing links it back to the holder.

    The aggregate's id is derived from the ticket, so that a second answer for a
    ticket is refused by the event store itself: that stays inside omakaiku. What
    leaves it (FeedbackGivenV2) names the answer by ``feedback_id``, drawn at
    random for it alone, never by the ticket."""

    class Given(Aggregate.Created):
        """Version 2 added ``feedback_id``. An answer stored before it has none
        (upcast to None): the relay then names it after its event id, as a
        reader of the V1 message it was published as does."""

        class_version = 2
        ticket_id: UUID
        offering_id: UUID
        venue_id: UUID
        accessibility: int
        meaning: int
        interest: int
        feedback_id: UUID | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["feedback_id"] = None

    @staticmethod
    def create_id(ticket_id: UUID) -> UUID:
        return uuid5(NAMESPACE_URL, f"/kaikukortti/omakaiku/feedback/{ticket_id}")

    @classmethod
    def give(cls, *, ticket_id: UUID, offering_id: UUID, venue_id: UUID,
             accessibility: int, meaning: int, interest: int) -> Feedback:
        for name, value in zip(SCORES, (accessibility, meaning, interest), strict=True):
            if not (isinstance(value, int) and 0 <= value <= 5):
                raise RuleViolation("score-range", f"{name} must be an integer 0–5.",
                                    status=422, field=name)
        return cls(id=cls.create_id(ticket_id), ticket_id=ticket_id, offering_id=offering_id,
                   venue_id=venue_id, accessibility=accessibility, meaning=meaning,
                   interest=interest, feedback_id=uuid4())

    @event(Given)
    def __init__(self, id: UUID, ticket_id: UUID, offering_id: UUID,  # noqa: A002
                 venue_id: UUID, accessibility: int, meaning: int, interest: int,
                 feedback_id: UUID | None) -> None:
        self.ticket_id = ticket_id
        self.offering_id = offering_id
        self.venue_id = venue_id
        self.accessibility = accessibility
        self.meaning = meaning
        self.interest = interest
        self.feedback_id = feedback_id


class MobileCardKey(Aggregate):
    """The public half of a key the mobile cards are signed with.

    Recorded once per key id (``kid``, derived from the public key), so the
    relay publishes it exactly once and venues can verify mobile cards offline.
    The id comes from the kid: a restart, or a second api replica with the same
    key, finds it already recorded and records nothing. Rotating to a new key
    records a new one; the older keys stay known, so tokens signed a moment
    before the rotation still verify until they expire.
    """

    @staticmethod
    def create_id(kid: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/kaikukortti/omakaiku/mobile-card-key/{kid}")

    @event("Published")
    def __init__(self, kid: str, algorithm: str, kty: str, crv: str, x: str,
                 published_at: datetime) -> None:
        self.kid = kid
        self.algorithm = algorithm
        self.kty = kty
        self.crv = crv
        self.x = x
        self.published_at = published_at


class SignedOutToken(Aggregate):
    """A holder token signed out before it expired (``POST /me/sign-out``). The id
    derives from the token's id (jti), so signing out twice is one event. Names
    no holder: the token id is random."""

    @staticmethod
    def create_id(token_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/omakaiku/signed-out-tokens/{token_id}")

    @event("SignedOut")
    def __init__(self, token_id: str, expires_at: datetime) -> None:
        self.token_id = token_id
        self.expires_at = expires_at
