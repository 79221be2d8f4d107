"""Kaikukanta's aggregates: organisations and cards. Pure: no I/O.

Public methods check the rules and compute values; the ``@event`` methods only
change state, so replaying history never re-checks an old rule.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from kaiku_shared.kernel import card_numbers

ORGANISATION_KINDS = ("kaikukeskus", "distributor", "venue", "ticket_agent")
MIN_AGE = 16
MAX_VALIDITY = timedelta(days=366)  # "up to one year", a leap day included
CARD_STATUSES = ("open", "closed")
CLOSURE_REASONS = ("lost", "moved", "misuse", "expired", "holder_request", "other")

# [0-9], not \d: \d also matches Arabic-Indic and full-width digits.
_POSTAL_CODE = re.compile(r"^[0-9]{5}$")


class RuleViolation(Exception):
    """A business rule refused the command; ``rule`` names it for clients."""

    def __init__(self, rule: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.field = field


def normalise_card_number(raw: str) -> str:
    """'kxa 12345', 'KXA12345' and 'KXA-12345' are the same card."""
    try:
        return card_numbers.normalise_card_number(raw)
    except card_numbers.CardNumberFormatError as error:
        raise RuleViolation("card-number-format", str(error), "card_number") from None


def normalise_postal_code(raw: str) -> str:
    compact = raw.replace(" ", "")
    if not _POSTAL_CODE.match(compact):
        raise RuleViolation("postal-code", "A postal code is five digits, e.g. 00100.",
                            "postal_code")
    return compact


ORGANISATION_STATUSES = ("approved", "pending", "left")


class Organisation(Aggregate):
    """A partner (distributor, venue, ticket agent) or Kaikukeskus itself.

    A distributor Kaikukeskus registers directly is approved at once (Kaikukeskus
    is the approver); one registered as a proposal stays ``pending`` and may not
    issue cards until Kaikukeskus approves it.
    """

    @staticmethod
    def create_id(organisation_id: UUID) -> UUID:
        return organisation_id

    @event("Registered")
    def __init__(self, organisation_id: UUID, kind: str, name: str, municipality: str,
                 status: str = "approved", override: bool = False) -> None:
        self.kind = kind
        self.name = name
        self.municipality = municipality
        self.status = status

    @classmethod
    def register(cls, organisation_id: UUID, kind: str, name: str, municipality: str,
                 *, pending: bool = False, override: bool = False) -> Organisation:
        if kind not in ORGANISATION_KINDS:
            raise RuleViolation("organisation-kind",
                                f"kind must be one of {', '.join(ORGANISATION_KINDS)}", "kind")
        if not name.strip():
            raise RuleViolation("organisation-name", "name must not be empty", "name")
        return cls(organisation_id=organisation_id, kind=kind, name=name.strip(),
                   municipality=municipality, status="pending" if pending else "approved",
                   override=override)

    @property
    def approved(self) -> bool:
        return getattr(self, "status", "approved") == "approved"

    def approve(self, *, override: bool) -> None:
        if self.status == "approved":
            raise RuleViolation("organisation-already-approved",
                                f"{self.name} is already approved.")
        if self.status == "left":
            raise RuleViolation("organisation-left", f"{self.name} has left the network.")
        self._approved(override=override)

    @event("Approved")
    def _approved(self, override: bool) -> None:
        self.status = "approved"

    def leave(self, year: int) -> None:
        if self.status != "left":
            self._left(year=year)

    @event("Left")
    def _left(self, year: int) -> None:
        self.status = "left"


USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
MIN_PASSWORD = 12


def normalise_username(raw: str) -> str:
    username = raw.strip().lower()
    if not USERNAME.fullmatch(username):
        raise RuleViolation(
            "username", "A username is 3-64 characters: a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit.", "username")
    return username


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise RuleViolation("weak-password",
                            f"A password is at least {MIN_PASSWORD} characters long.",
                            "password")
    if len(password) > 256:
        raise RuleViolation("password", "A password is at most 256 characters.", "password")


class StaffUser(Aggregate):
    """A staff member's sign-in: username, argon2 hash, organisation, role, admin.

    The role is the organisation's kind. Users never leave this service: their
    events are not translated to contracts, so usernames never reach NATS.
    """

    @staticmethod
    def create_id(username: str) -> UUID:
        # Deterministic: a username can exist only once.
        return uuid5(NAMESPACE_URL, f"/kaikukanta/users/{username}")

    @classmethod
    def create(cls, *, username: str, organisation_id: UUID, role: str, admin: bool,
               password_hash: str) -> StaffUser:
        return cls(username=normalise_username(username), organisation_id=organisation_id,
                   role=role, admin=admin, password_hash=password_hash)

    @event("Created")
    def __init__(self, username: str, organisation_id: UUID, role: str, admin: bool,
                 password_hash: str) -> None:
        self.username = username
        self.organisation_id = organisation_id
        self.role = role
        self.admin = admin
        self.password_hash = password_hash
        self.active = True

    @event("PasswordChanged")
    def change_password(self, password_hash: str) -> None:
        self.password_hash = password_hash

    def deactivate(self) -> None:
        if not self.active:
            raise RuleViolation("user-inactive", f"User {self.username} is already deactivated.")
        self._deactivated()

    @event("Deactivated")
    def _deactivated(self) -> None:
        self.active = False


class SignedOutToken(Aggregate):
    """A staff token signed out before it expired. The id derives from the token's
    id (jti), so signing out twice is one event."""

    @staticmethod
    def create_id(token_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/kaikukanta/signed-out-tokens/{token_id}")

    @event("SignedOut")
    def __init__(self, token_id: str, expires_at: datetime) -> None:
        self.token_id = token_id
        self.expires_at = expires_at


class Roster(Aggregate):
    """The staff users of one organisation, saved with each user it lists."""

    @staticmethod
    def create_id(organisation_id: UUID) -> UUID:
        return uuid5(NAMESPACE_URL, f"/kaikukanta/rosters/{organisation_id}")

    @event("Started")
    def __init__(self, organisation_id: UUID) -> None:
        self.organisation_id = organisation_id
        self.users: dict[str, dict[str, object]] = {}

    @event("UserAdded")
    def add(self, user_id: UUID, username: str, admin: bool) -> None:
        self.users[str(user_id)] = {"username": username, "admin": admin, "active": True}

    @event("UserDeactivated")
    def deactivated(self, user_id: UUID) -> None:
        self.users[str(user_id)]["active"] = False


ANSWERS = ("continue", "leave")


class ContinuationRound(Aggregate):
    """Kaikukeskus asks every partner whether it continues in ``year``.

    Closing the round fixes the year's partner list: from then on no new partner
    joins during that year unless Kaikukeskus overrides.
    """

    @staticmethod
    def create_id(year: int) -> UUID:
        return uuid5(NAMESPACE_URL, f"/kaikukanta/continuation/{year}")

    @classmethod
    def open(cls, *, year: int, deadline: date, today: date) -> ContinuationRound:
        if deadline < today:
            raise RuleViolation("deadline", "The deadline is in the past.", "deadline")
        if not today.year <= year <= today.year + 1:
            raise RuleViolation("round-year",
                                "A round asks about this year or the next.", "year")
        return cls(year=year, deadline=deadline)

    @event("Opened")
    def __init__(self, year: int, deadline: date) -> None:
        self.year = year
        self.deadline = deadline
        self.answers: dict[str, str] = {}
        self.closed = False

    def answer(self, organisation_id: UUID, decision: str, today: date) -> None:
        if decision not in ANSWERS:
            raise RuleViolation("decision", "decision is 'continue' or 'leave'.", "decision")
        if self.closed:
            raise RuleViolation("round-closed", f"The round for {self.year} is closed.")
        if today > self.deadline:
            raise RuleViolation(
                "round-deadline-passed",
                f"The deadline {self.deadline.isoformat()} has passed; ask Kaikukeskus.")
        self._answered(organisation_id=organisation_id, decision=decision)

    @event("Answered")
    def _answered(self, organisation_id: UUID, decision: str) -> None:
        self.answers[str(organisation_id)] = decision

    def close(self) -> None:
        if self.closed:
            raise RuleViolation("round-closed", f"The round for {self.year} is already closed.")
        self._closed()

    @event("Closed")
    def _closed(self) -> None:
        self.closed = True


class Card(Aggregate):
    """One Kaikukortti. Anonymous: birth year, postal code, children — never a name.

    Every event carries the card number and the card's whole current state
    (validity, children, place), so a read model can apply the newest fact it has
    seen and ignore older ones, whatever order they arrive in.
    """

    @staticmethod
    def create_id(card_number: str) -> UUID:
        # Deterministic: two cards can never get the same number.
        return uuid5(NAMESPACE_URL, f"/kaikukortti/cards/{card_number}")

    @classmethod
    def issue(
        cls,
        *,
        card_number: str,
        issuer_organisation_id: UUID,
        today: date,
        birth_year: int,
        postal_code: str,
        municipality: str,
        region: str,
        children: int,
        valid_until: date | None,
        life_satisfaction: int | None,
        community: bool,
        issue_key: str | None,
    ) -> Card:
        if community and life_satisfaction is not None:
            raise RuleViolation(
                "community-card-wellbeing",
                "A community card belongs to the distributor's staff: the wellbeing "
                "questions are asked of holders only. Leave life_satisfaction out.",
                "life_satisfaction")
        if not community and today.year - birth_year < MIN_AGE:
            raise RuleViolation(
                "holder-too-young",
                f"The holder must turn {MIN_AGE} this year at the latest "
                f"(born {today.year - MIN_AGE} or earlier).",
                "birth_year",
            )
        if birth_year < today.year - 120:
            raise RuleViolation("birth-year", "The birth year is not plausible.", "birth_year")
        valid_until = valid_until or _one_year_from(today)
        _check_validity(today, valid_until)
        _check_children(children)
        _check_score(life_satisfaction, "life_satisfaction")
        return cls(
            card_number=card_number,
            issuer_organisation_id=issuer_organisation_id,
            valid_from=today,
            valid_until=valid_until,
            birth_year=birth_year,
            postal_code=normalise_postal_code(postal_code),
            municipality=municipality,
            region=region,
            children=children,
            life_satisfaction=life_satisfaction,
            community=community,
            issue_key=issue_key,
        )

    @event("Issued")
    def __init__(
        self,
        card_number: str,
        issuer_organisation_id: UUID,
        valid_from: date,
        valid_until: date,
        birth_year: int,
        postal_code: str,
        municipality: str,
        region: str,
        children: int,
        life_satisfaction: int | None,
        community: bool,
        issue_key: str | None,
        replaces: str | None = None,
    ) -> None:
        self.card_number = card_number
        self.issuer_organisation_id = issuer_organisation_id
        self.valid_from = valid_from
        self.valid_until = valid_until
        self.birth_year = birth_year
        self.postal_code = postal_code
        self.municipality = municipality
        self.region = region
        self.children = children
        self.community = community
        self.issue_key = issue_key
        self.status = "open"
        self.closure_reason: str | None = None
        self.replaces = replaces
        self.replaced_by: str | None = None

    @classmethod
    def issue_replacement(cls, old: Card, *, card_number: str, today: date,
                          issue_key: str | None) -> Card:
        """A new number for a lost card: the same validity, data and issuer."""
        return cls(
            card_number=card_number, issuer_organisation_id=old.issuer_organisation_id,
            valid_from=today, valid_until=old.valid_until, birth_year=old.birth_year,
            postal_code=old.postal_code, municipality=old.municipality, region=old.region,
            children=old.children, life_satisfaction=None, community=old.community,
            issue_key=issue_key, replaces=old.card_number,
        )

    def check_replaceable(self, today: date) -> None:
        if self.replaced_by is not None:
            raise RuleViolation(
                "card-already-replaced",
                f"Card {self.card_number} was already replaced by {self.replaced_by}.")
        if self.status == "closed" and self.closure_reason != "lost":
            raise RuleViolation(
                "card-closed",
                f"Card {self.card_number} was closed ({self.closure_reason}); only a "
                "lost card is replaced. Issue a new card instead.")
        if self.valid_until < today:
            raise RuleViolation(
                "card-expired",
                f"Card {self.card_number} expired on {self.valid_until.isoformat()}; "
                "renew it instead of replacing it.")

    def replace(self, *, replacement: str, today: date) -> None:
        """Close as lost (unless already) and link to the replacement card."""
        self.check_replaceable(today)
        if self.status == "open":
            self._closed(card_number=self.card_number, reason="lost")
        self._replaced(card_number=self.card_number, replaced_by=replacement,
                       valid_until=self.valid_until)

    @event("Replaced")
    def _replaced(self, card_number: str, replaced_by: str, valid_until: date) -> None:
        self.replaced_by = replaced_by

    def is_valid_on(self, day: date) -> bool:
        return self.status == "open" and self.valid_from <= day <= self.valid_until

    def renew(self, *, today: date, valid_until: date | None, life_satisfaction: int | None,
              wellbeing_impact: int | None) -> None:
        self._require_open()
        if self.community and (life_satisfaction is not None or wellbeing_impact is not None):
            raise RuleViolation(
                "community-card-wellbeing",
                "A community card belongs to the distributor's staff: the wellbeing "
                "questions are asked of holders only.", "life_satisfaction")
        valid_until = valid_until or _one_year_from(today)
        _check_validity(today, valid_until)
        _check_score(life_satisfaction, "life_satisfaction")
        _check_score(wellbeing_impact, "wellbeing_impact")
        self._renewed(card_number=self.card_number, children=self.children,
                      municipality=self.municipality, region=self.region,
                      valid_until=valid_until, life_satisfaction=life_satisfaction,
                      wellbeing_impact=wellbeing_impact)

    @event("Renewed")
    def _renewed(self, card_number: str, children: int, municipality: str, region: str,
                 valid_until: date, life_satisfaction: int | None,
                 wellbeing_impact: int | None) -> None:
        self.valid_until = valid_until

    def change(self, *, children: int | None, postal_code: str | None,
               municipality: str | None, region: str | None) -> bool:
        """Apply the given changes; False when nothing actually changed."""
        self._require_open()
        new_children = self.children if children is None else children
        _check_children(new_children)
        new_postal = self.postal_code if postal_code is None else normalise_postal_code(
            postal_code)
        new_municipality = municipality or self.municipality
        new_region = region or self.region
        if (new_children, new_postal, new_municipality) == (
            self.children, self.postal_code, self.municipality
        ):
            return False
        self._changed(card_number=self.card_number, valid_until=self.valid_until,
                      children=new_children, postal_code=new_postal,
                      municipality=new_municipality, region=new_region)
        return True

    @event("Changed")
    def _changed(self, card_number: str, valid_until: date, children: int, postal_code: str,
                 municipality: str, region: str) -> None:
        self.children = children
        self.postal_code = postal_code
        self.municipality = municipality
        self.region = region

    def close(self, reason: str) -> None:
        if self.status == "closed":
            raise RuleViolation("card-closed", f"Card {self.card_number} is already closed.")
        if reason not in CLOSURE_REASONS:
            raise RuleViolation("closure-reason",
                                f"reason must be one of {', '.join(CLOSURE_REASONS)}", "reason")
        self._closed(card_number=self.card_number, reason=reason)

    @event("Closed")
    def _closed(self, card_number: str, reason: str) -> None:
        self.status = "closed"
        self.closure_reason = reason

    def import_uses(self, uses: list[dict]) -> None:
        """Record historical uses (from before this system) for the statistics.

        Each use: ``use_id`` (UUID), ``used_at`` (datetime), ``venue_municipality``,
        ``children``. Uses fall within the card's first issuing and today.
        """
        for use in uses:
            if use["children"] < 0:
                raise RuleViolation("children", "children cannot be negative.", "children")
            if use["used_at"].date() < self.valid_from:
                raise RuleViolation("use-before-issue",
                                    "A use cannot be before the card was issued.", "used_at")
        if uses:
            self._uses_imported(card_number=self.card_number, uses=uses)

    @event("UsesImported")
    def _uses_imported(self, card_number: str, uses: list[dict]) -> None:
        pass  # statistics only: the card's own state does not change

    def _require_open(self) -> None:
        if self.status != "open":
            raise RuleViolation("card-closed", f"Card {self.card_number} is closed.")


def _one_year_from(day: date) -> date:
    try:
        return day.replace(year=day.year + 1) - timedelta(days=1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


def _check_validity(today: date, valid_until: date) -> None:
    if valid_until < today:
        raise RuleViolation("validity", "valid_until is in the past.", "valid_until")
    if valid_until - today > MAX_VALIDITY:
        raise RuleViolation("validity-over-a-year",
                            "A card is valid for at most one year from today.", "valid_until")


def _check_children(children: int) -> None:
    if children < 0:
        raise RuleViolation("children", "children cannot be negative.", "children")
    if children > 30:
        raise RuleViolation("children", "children must be at most 30.", "children")


def _check_score(score: int | None, field: str) -> None:
    if score is not None and not 0 <= score <= 10:
        raise RuleViolation("score", f"{field} is a whole number from 0 to 10.", field)
