"""OmaKaiku use cases. Synchronous; called from async code through a thread.

Personal fields are sealed with the holder's own key (``Vault``) before any
event records them, and opened again on read; ``erase_account`` shreds the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from kaiku_shared.eventstore import KaikuApplication, retry_on_conflict
from kaiku_shared.kernel.errors import NotFound

from ..domain.model import (
    SignedOutToken,
    PERSONAL_FIELDS,
    Account,
    CardAccount,
    Feedback,
    MobileCardKey,
    RuleViolation,
)
from .ports import KeyErased, PersonalDataVault


@dataclass(frozen=True)
class PersonalData:
    first_name: str
    last_name: str
    email: str
    phone: str | None
    municipality: str

    def as_dict(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in PERSONAL_FIELDS}


@dataclass(frozen=True)
class Profile:
    account: Account
    personal: PersonalData


class OmaKaikuApplication(KaikuApplication):
    name = "omakaiku"

    def __init__(self, env: dict[str, str] | None = None, *,
                 vault: PersonalDataVault | None = None) -> None:
        super().__init__(env)
        # Given by the composition root to the api and worker; the relay needs none.
        self.vault = vault

    # --- accounts ---------------------------------------------------------------

    def activate_account(self, *, account_id: UUID, card_number: str,
                         personal: PersonalData, language: str,
                         activated_by: UUID) -> Account:
        vault = self._vault()
        link_id = CardAccount.create_id(card_number)
        try:
            link: CardAccount | None = self.repository.get(link_id)
        except AggregateNotFoundError:
            link = None
        if link is not None and link.account_id == account_id:
            return self.repository.get(account_id)  # the same request, retried
        if link is not None:
            link.relink(account_id)  # refuses while the card has a live account
        key = vault.create_key(account_id, personal.email)
        account = Account(id=account_id, card_number=card_number,
                          sealed=vault.seal(account_id, personal.as_dict(), key),
                          language=language, activated_by=activated_by)
        link = link or CardAccount(card_number=card_number, account_id=account_id)
        try:
            self.save(account, link)
        except IntegrityError:
            try:
                saved = self.repository.get(account_id)
            except AggregateNotFoundError:
                vault.shred(account_id)  # the key of an account that never came to be
            else:
                if saved.card_number == card_number:
                    return saved  # a concurrent retry of the same request saved it
            raise RuleViolation("account-exists",
                                f"Card {card_number} already has an OmaKaiku account.") from None
        return account

    def get_account(self, account_id: UUID) -> Account:
        try:
            account = self.repository.get(account_id)
        except AggregateNotFoundError:
            raise NotFound("Account", f"No account {account_id}.") from None
        if not isinstance(account, Account) or account.erased:
            raise NotFound("Account", f"No account {account_id}.")
        return account

    def load_account(self, account_id: UUID) -> Account:
        """The account even when erased (its card numbers; no personal data)."""
        try:
            account = self.repository.get(account_id)
        except AggregateNotFoundError:
            raise NotFound("Account", f"No account {account_id}.") from None
        if not isinstance(account, Account):
            raise NotFound("Account", f"No account {account_id}.")
        return account

    def get_profile(self, account_id: UUID) -> Profile:
        account = self.get_account(account_id)
        try:
            fields = self._vault().open(account_id, account.sealed)
        except KeyErased:
            raise NotFound("Account", f"No account {account_id}.") from None
        return Profile(account, PersonalData(**fields))

    def accounts_for_email(self, email: str) -> list[UUID]:
        return self._vault().accounts_for(email)

    def signin_holder(self, email_lookup: bytes) -> Profile | None:
        """Whom a sign-in code for this e-mail (by its lookup hash) goes to: the
        newest live account with the address, or None."""
        for account_id in self._vault().accounts_for_lookup(email_lookup)[:1]:
            try:
                return self.get_profile(account_id)
            except NotFound:
                return None
        return None

    def account_for_card(self, card_number: str) -> UUID | None:
        try:
            link = self.repository.get(CardAccount.create_id(card_number))
        except AggregateNotFoundError:
            return None
        return link.account_id

    @retry_on_conflict()
    def erase_account(self, account_id: UUID, *, by: str) -> Account:
        """Shred the key first: from that moment every sealed copy is unreadable.
        Idempotent: a retry after a crash finishes what the first began."""
        try:
            account = self.repository.get(account_id)
        except AggregateNotFoundError:
            raise NotFound("Account", f"No account {account_id}.") from None
        self._vault().shred(account_id)
        links = []
        for card_number in account.card_numbers:
            try:
                link = self.repository.get(CardAccount.create_id(card_number))
            except AggregateNotFoundError:
                continue
            if link.account_id == account_id:
                link.release()
                links.append(link)
        if account.erase(by) or links:
            self.save(account, *links)
        return account

    @retry_on_conflict()
    def move_card(self, old_card_number: str, new_card_number: str) -> UUID | None:
        """Cards replaced a lost card: the account (if any) moves to the new number,
        and the new number is linked so it cannot get a second account."""
        account_id = self.account_for_card(old_card_number)
        if account_id is None:
            return None
        account = self.repository.get(account_id)
        if not account.move_to_card(new_card_number):
            return account_id
        new_link_id = CardAccount.create_id(new_card_number)
        try:
            new_link = self.repository.get(new_link_id)
            new_link.relink(account_id)
        except AggregateNotFoundError:
            new_link = CardAccount(card_number=new_card_number, account_id=account_id)
        except RuleViolation:
            return None  # the new card already has its own account: leave both alone
        self.save(account, new_link)
        return account_id

    # --- the holder's own actions --------------------------------------------------

    @retry_on_conflict()
    def request_cancellation(self, account_id: UUID, ticket_id: UUID) -> bool:
        account = self.get_account(account_id)
        requested = account.request_cancellation(ticket_id)
        if requested:
            self.save(account)
        return requested

    @retry_on_conflict()
    def change_subscriptions(self, account_id: UUID, *, genres: list[str],
                             subgenres: list[str], region: str | None) -> Account:
        account = self.get_account(account_id)
        if account.change_subscriptions(genres, subgenres, region):
            self.save(account)
        return account

    def give_feedback(self, *, ticket_id: UUID, offering_id: UUID, venue_id: UUID,
                      accessibility: int, meaning: int, interest: int) -> Feedback:
        feedback = Feedback.give(ticket_id=ticket_id, offering_id=offering_id,
                                 venue_id=venue_id, accessibility=accessibility,
                                 meaning=meaning, interest=interest)
        try:
            self.save(feedback)
        except IntegrityError:
            raise RuleViolation("feedback-given",
                                "You have already given feedback for this ticket.") from None
        return feedback

    def feedback_given(self, ticket_id: UUID) -> bool:
        try:
            self.repository.get(Feedback.create_id(ticket_id))
        except AggregateNotFoundError:
            return False
        return True

    # --- the mobile card's signing key ---------------------------------------------

    def sign_out(self, token_id: str, expires_at: datetime) -> None:
        """Record that a holder token no longer counts (every service refuses it
        once the revocation reaches it). Signing out twice changes nothing."""
        self.save_once(SignedOutToken(token_id=token_id, expires_at=expires_at))

    def publish_mobile_card_key(self, *, kid: str, algorithm: str, kty: str, crv: str,
                                x: str, now: datetime) -> bool:
        """Record the public key once per kid, for the relay to publish to venues.

        False when it was recorded before (a restart, another api replica, or
        both replicas starting at the same moment): nothing new is recorded."""
        try:
            self.repository.get(MobileCardKey.create_id(kid))
            return False
        except AggregateNotFoundError:
            pass
        key = MobileCardKey(kid=kid, algorithm=algorithm, kty=kty, crv=crv, x=x,
                            published_at=now)
        try:
            self.save(key)
        except IntegrityError:
            return False  # another replica recorded the same kid a moment ago
        return True

    def mobile_card_key(self, kid: str) -> MobileCardKey | None:
        try:
            key = self.repository.get(MobileCardKey.create_id(kid))
        except AggregateNotFoundError:
            return None
        return key if isinstance(key, MobileCardKey) else None

    def _vault(self) -> PersonalDataVault:
        if self.vault is None:
            raise RuntimeError("this process has no vault (keys are configured in the api "
                               "and worker only)")
        return self.vault


__all__ = ["NotFound", "OmaKaikuApplication", "PersonalData", "Profile", "RuleViolation"]
