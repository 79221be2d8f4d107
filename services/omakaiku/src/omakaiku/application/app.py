"""OmaKaiku use cases. Synchronous; called from async code through a thread."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from kaiku_shared.eventstore import KaikuApplication, retry_on_conflict

from ..domain.model import Account, CardAccount, RuleViolation


class NotFound(Exception):
    pass


class OmaKaikuApplication(KaikuApplication):
    name = "omakaiku"

    def activate_account(self, *, account_id: UUID, card_number: str, first_name: str,
                         last_name: str, email: str, phone: str | None, municipality: str,
                         language: str, activated_by: UUID) -> Account:
        link_id = CardAccount.create_id(card_number)
        try:
            existing = self.repository.get(link_id)
        except AggregateNotFoundError:
            existing = None
        if existing is not None:
            if existing.account_id == account_id:
                return self.repository.get(account_id)  # the same request, retried
            raise RuleViolation("account-exists",
                                f"Card {card_number} already has an OmaKaiku account.")
        account = Account(id=account_id, card_number=card_number, first_name=first_name,
                          last_name=last_name, email=email, phone=phone,
                          municipality=municipality, language=language,
                          activated_by=activated_by)
        link = CardAccount(card_number=card_number, account_id=account_id)
        try:
            self.save(account, link)
        except IntegrityError:
            raise RuleViolation("account-exists",
                                f"Card {card_number} already has an OmaKaiku account.") from None
        return account

    def get_account(self, account_id: UUID) -> Account:
        try:
            return self.repository.get(account_id)
        except AggregateNotFoundError:
            raise NotFound(f"No account {account_id}.") from None

    @retry_on_conflict()
    def request_cancellation(self, account_id: UUID, ticket_id: UUID) -> bool:
        account = self.get_account(account_id)
        requested = account.request_cancellation(ticket_id)
        if requested:
            self.save(account)
        return requested


__all__ = ["NotFound", "OmaKaikuApplication", "RuleViolation"]
