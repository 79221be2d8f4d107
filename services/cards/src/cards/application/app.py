"""Kaikukanta use cases: one method per use case, get → decide → save.

Synchronous (the eventsourcing library is); the HTTP layer calls these in a
thread. Library errors are translated here into the service's own errors.
"""

from __future__ import annotations

from datetime import date, datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from kaiku_shared.eventstore import KaikuApplication, retry_on_conflict

from ..domain.card_numbers import card_number_candidates
from ..domain.model import (
    Card,
    ContinuationRound,
    Organisation,
    Roster,
    RuleViolation,
    SignedOutToken,
    StaffUser,
    check_password,
    normalise_card_number,
    normalise_username,
)
from ..domain.network import Network, NetworkRegistry

# The national centre's own organisation: its staff users belong to it.
KAIKUKESKUS_ID = uuid5(NAMESPACE_URL, "/kaikukanta/organisations/kaikukeskus")
PARTNER_KINDS = ("distributor", "venue", "ticket_agent")


class NotFound(Exception):
    def __init__(self, what: str, message: str) -> None:
        super().__init__(message)
        self.what = what


class Forbidden(Exception):
    pass


class AuthenticationFailed(Exception):
    """Unknown user, wrong password or deactivated: deliberately one answer."""


class CardsApplication(KaikuApplication):
    name = "cards"

    def __init__(self, env: dict[str, str] | None = None, *, network: Network,
                 hasher: PasswordHasher | None = None) -> None:
        super().__init__(env)
        self.reference_network = network
        self.hasher = hasher or PasswordHasher()
        self._network_cache: tuple[int, Network] | None = None

    # --- the network (regions, municipalities) -----------------------------------

    def ensure_network(self) -> NetworkRegistry:
        """The editable network. Seeded from the reference data on first start and
        announced (published whole) with it; a store seeded before the network was
        published gets its announcement at the next start, once."""
        registry = self._network_or_seed()
        if not registry.announce():
            return registry
        try:
            self.save(registry)
        except IntegrityError:  # another process seeded or announced it first
            return self.repository.get(NetworkRegistry.create_id())
        return registry

    def _network_or_seed(self) -> NetworkRegistry:
        """The stored registry, or a new one from the reference data (unsaved)."""
        try:
            return self.repository.get(NetworkRegistry.create_id())
        except AggregateNotFoundError:
            data = self.reference_network.to_dict()
            return NetworkRegistry(regions=data["regions"],
                                   municipalities=data["municipalities"])

    @property
    def network(self) -> Network:
        """The network as it stands now (cached until Kaikukeskus changes it)."""
        registry = self.ensure_network()
        cached = self._network_cache
        if cached is None or cached[0] != registry.version:
            cached = (registry.version, registry.network())
            self._network_cache = cached
        return cached[1]

    @retry_on_conflict()
    def set_region(self, code: str, *, names: dict[str, str], country: str) -> Network:
        registry = self.ensure_network()
        if registry.set_region(code, names, country):
            self.save(registry)
        return registry.network()

    @retry_on_conflict()
    def set_municipality(self, code: str, *, names: dict[str, str] | None,
                         region: str | None, status: str | None,
                         country: str | None) -> Network:
        registry = self.ensure_network()
        if registry.set_municipality(code, names=names, region=region, status=status,
                                     country=country):
            self.save(registry)
        return registry.network()

    # --- organisations ---------------------------------------------------------

    def register_organisation(self, organisation_id: UUID, kind: str, name: str,
                              municipality: str, *, pending: bool = False,
                              override: bool = False, today: date | None = None
                              ) -> Organisation:
        place = self.network.municipality(municipality)
        try:
            existing = self.get_organisation(organisation_id)
        except NotFound:
            existing = None
        if existing is not None:
            return existing  # a retried request with the same idempotency key
        if not pending and kind in PARTNER_KINDS and today is not None:
            self._check_partner_list_open(today, override)
        organisation = Organisation.register(organisation_id, kind, name, place.code,
                                             pending=pending, override=override)
        self.save(organisation)
        return organisation

    def _check_partner_list_open(self, today: date, override: bool) -> None:
        """No new partners mid-year once the year's partner list is fixed."""
        if override:
            return
        round_ = self._round_or_none(today.year)
        if round_ is not None and round_.closed:
            raise RuleViolation(
                "no-new-partners-mid-year",
                f"The partner list for {today.year} is fixed (the continuation round is "
                "closed), so the customer brochure stays current. A new partner joins "
                "next year, unless Kaikukeskus overrides with override=true.")

    @retry_on_conflict()
    def approve_organisation(self, organisation_id: UUID, *, today: date,
                             override: bool) -> Organisation:
        organisation = self.get_organisation(organisation_id)
        if organisation.approved:
            return organisation  # approving twice changes nothing
        self._check_partner_list_open(today, override)
        organisation.approve(override=override)
        self.save(organisation)
        return organisation

    def ensure_kaikukeskus(self) -> Organisation:
        try:
            return self.get_organisation(KAIKUKESKUS_ID)
        except NotFound:
            pass
        organisation = Organisation.register(KAIKUKESKUS_ID, "kaikukeskus", "Kaikukeskus",
                                             self.network.municipality("helsinki").code)
        try:
            self.save(organisation)
        except IntegrityError:
            return self.get_organisation(KAIKUKESKUS_ID)
        return organisation

    # --- staff users -------------------------------------------------------------

    def create_user(self, *, username: str, password: str, organisation_id: UUID,
                    admin: bool) -> StaffUser:
        name = normalise_username(username)
        check_password(password)
        organisation = self.get_organisation(organisation_id)
        if organisation.status == "left":
            raise RuleViolation("organisation-left",
                                f"{organisation.name} has left the network.")
        password_hash = self.hasher.hash(password)
        for _ in range(30):
            # Built afresh on each try: a failed save has already taken their events.
            user = StaffUser.create(username=name, organisation_id=organisation.id,
                                    role=organisation.kind, admin=admin,
                                    password_hash=password_hash)
            roster = self._roster(organisation.id)
            roster.add(user_id=user.id, username=name, admin=admin)
            try:
                self.save(user, roster)  # one transaction: the user and its listing
                return user
            except IntegrityError:
                if self._user_or_none(name) is not None:
                    raise RuleViolation("username-taken",
                                        f"The username {name} is taken.", "username") from None
                # another user joined the roster meanwhile: reload and try again
        raise RuleViolation("busy", "Too many concurrent changes; try again.")

    def _roster(self, organisation_id: UUID) -> Roster:
        try:
            return self.repository.get(Roster.create_id(organisation_id))
        except AggregateNotFoundError:
            return Roster(organisation_id=organisation_id)

    def _user_or_none(self, username: str) -> StaffUser | None:
        try:
            return self.repository.get(StaffUser.create_id(username))
        except AggregateNotFoundError:
            return None

    def get_user(self, user_id: UUID) -> StaffUser:
        try:
            user = self.repository.get(user_id)
        except AggregateNotFoundError:
            raise NotFound("user", f"No user {user_id}.") from None
        if not isinstance(user, StaffUser):
            raise NotFound("user", f"No user {user_id}.")
        return user

    def list_users(self, organisation_id: UUID) -> list[dict[str, object]]:
        self.get_organisation(organisation_id)
        roster = self._roster(organisation_id)
        return [{"user_id": UUID(user_id), **entry} for user_id, entry in roster.users.items()]

    def authenticate(self, username: str, password: str) -> StaffUser:
        try:
            name = normalise_username(username)
        except RuleViolation:
            raise AuthenticationFailed() from None
        user = self._user_or_none(name)
        if user is None:
            # Spend the same time as a real check, so timing reveals no usernames.
            self.hasher.hash(password or "x")
            raise AuthenticationFailed()
        if not self._password_matches(user, password):
            raise AuthenticationFailed()
        if not user.active or self.get_organisation(user.organisation_id).status == "left":
            raise AuthenticationFailed()
        if self.hasher.check_needs_rehash(user.password_hash):
            user.change_password(self.hasher.hash(password))
            try:
                self.save(user)
            except IntegrityError:
                pass  # a concurrent sign-in rehashed it already
        return user

    def verify_current_password(self, user_id: UUID, password: str) -> StaffUser:
        """A user proves their password before changing it; AuthenticationFailed if not."""
        user = self.get_user(user_id)
        if not self._password_matches(user, password):
            raise AuthenticationFailed()
        return user

    def _password_matches(self, user: StaffUser, password: str) -> bool:
        try:
            return self.hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    @retry_on_conflict()
    def change_password(self, user_id: UUID, password: str) -> StaffUser:
        check_password(password)
        user = self.get_user(user_id)
        user.change_password(self.hasher.hash(password))
        self.save(user)
        return user

    def sign_out(self, token_id: str, expires_at: datetime) -> None:
        """Record that a staff token no longer counts (every service refuses it
        once the revocation reaches it). Signing out twice changes nothing."""
        self.save_once(SignedOutToken(token_id=token_id, expires_at=expires_at))

    @retry_on_conflict()
    def deactivate_user(self, user_id: UUID) -> StaffUser:
        user = self.get_user(user_id)
        user.deactivate()
        roster = self._roster(user.organisation_id)
        roster.deactivated(user_id=user.id)
        self.save(user, roster)
        return user

    # --- partner continuation ----------------------------------------------------

    def _round_or_none(self, year: int) -> ContinuationRound | None:
        try:
            return self.repository.get(ContinuationRound.create_id(year))
        except AggregateNotFoundError:
            return None

    def get_round(self, year: int) -> ContinuationRound:
        round_ = self._round_or_none(year)
        if round_ is None:
            raise NotFound("round", f"No continuation round for {year}.")
        return round_

    def open_round(self, *, year: int, deadline: date, today: date) -> ContinuationRound:
        if self._round_or_none(year) is not None:
            raise RuleViolation("round-exists", f"The round for {year} is already open.")
        round_ = ContinuationRound.open(year=year, deadline=deadline, today=today)
        try:
            self.save(round_)
        except IntegrityError:
            raise RuleViolation("round-exists",
                                f"The round for {year} is already open.") from None
        return round_

    @retry_on_conflict()
    def answer_round(self, year: int, organisation_id: UUID, decision: str, *,
                     today: date) -> ContinuationRound:
        organisation = self.get_organisation(organisation_id)
        if organisation.kind not in PARTNER_KINDS:
            raise Forbidden("Only partners answer the continuation round.")
        round_ = self.get_round(year)
        round_.answer(organisation_id, decision, today)
        self.save(round_)
        return round_

    @retry_on_conflict()
    def close_round(self, year: int) -> ContinuationRound:
        round_ = self.get_round(year)
        round_.close()
        to_save: list = [round_]
        for organisation_id, decision in round_.answers.items():
            if decision == "leave":
                organisation = self.get_organisation(UUID(organisation_id))
                organisation.leave(year)
                to_save.append(organisation)
        self.save(*to_save)
        return round_

    def get_organisation(self, organisation_id: UUID) -> Organisation:
        try:
            return self.repository.get(organisation_id)
        except AggregateNotFoundError:
            raise NotFound("organisation", f"No organisation {organisation_id}.") from None

    def require_distributor(self, organisation_id: UUID) -> Organisation:
        organisation = self.get_organisation(organisation_id)
        if organisation.kind != "distributor":
            raise Forbidden(f"Organisation {organisation_id} is not a distributor.")
        if organisation.status == "pending":
            raise RuleViolation(
                "distributor-not-approved",
                f"{organisation.name} is not yet approved by Kaikukeskus to issue cards.")
        if organisation.status == "left":
            raise RuleViolation("organisation-left",
                                f"{organisation.name} has left the network.")
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

    def replace_card(self, card_number: str, organisation_id: UUID, *, today: date,
                     issue_key: str | None = None) -> Card:
        """Replace a lost card: a new number, the same validity, a history link."""
        seed = f"{organisation_id}/replace/{issue_key}" if issue_key else None
        for attempt, number in enumerate(card_number_candidates(seed)):
            old = self.issued_card(card_number, organisation_id)
            if seed is not None and old.replaced_by is not None:
                existing = self.get_card(old.replaced_by)
                if existing.issue_key == seed:
                    return existing  # this very request already replaced it
            self.require_distributor(organisation_id)
            new = Card.issue_replacement(old, card_number=number, today=today,
                                         issue_key=seed)
            old.replace(replacement=number, today=today)
            try:
                self.save(old, new)  # one transaction: closed, linked, new card
                return new
            except IntegrityError:
                if attempt > 50:
                    raise
                # the number was taken, or someone changed the old card: retry
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


__all__ = ["KAIKUKESKUS_ID", "AuthenticationFailed", "CardsApplication", "Forbidden", "NotFound",
           "RuleViolation"]
