"""OmaKaiku's aggregates: the holder's account — the only personal data anywhere.

Events of these aggregates stay in omakaiku's own event store. What leaves the
service (see adapters/translate.py) carries the opaque account id and the card
number only.
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

LANGUAGES = ("fi", "sv", "en")


class RuleViolation(Exception):
    def __init__(self, rule: str, message: str, *, status: int = 409,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.status = status
        self.field = field


class Account(Aggregate):
    @event("Activated")
    def __init__(self, id: UUID, card_number: str, first_name: str,  # noqa: A002
                 last_name: str, email: str, phone: str | None, municipality: str,
                 language: str, activated_by: UUID) -> None:
        self.card_number = card_number
        self.first_name = first_name
        self.last_name = last_name
        self.email = email
        self.phone = phone
        self.municipality = municipality
        self.language = language
        self.activated_by = activated_by
        self.cancellation_requests: list[str] = []

    def request_cancellation(self, ticket_id: UUID) -> bool:
        """False when the holder already asked (a double tap, a retry)."""
        if str(ticket_id) in self.cancellation_requests:
            return False
        self._cancellation_requested(ticket_id=ticket_id, card_number=self.card_number)
        return True

    @event("CancellationRequested")
    def _cancellation_requested(self, ticket_id: UUID, card_number: str) -> None:
        self.cancellation_requests.append(str(ticket_id))


class CardAccount(Aggregate):
    """One account per card: saved with the account, a second one conflicts."""

    @staticmethod
    def create_id(card_number: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/kaikukortti/omakaiku/card-account/{card_number}")

    @event("Linked")
    def __init__(self, card_number: str, account_id: UUID) -> None:
        self.card_number = card_number
        self.account_id = account_id
