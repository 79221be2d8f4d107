"""Kaikukanta's aggregates: organisations and cards. Pure: no I/O.

Public methods check the rules and compute values; the ``@event`` methods only
change state, so replaying history never re-checks an old rule.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

ORGANISATION_KINDS = ("kaikukeskus", "distributor", "venue", "ticket_agent")
MIN_AGE = 16
MAX_VALIDITY = timedelta(days=366)  # "up to one year", a leap day included
CARD_STATUSES = ("open", "closed")
CLOSURE_REASONS = ("lost", "moved", "misuse", "expired", "holder_request", "other")

_CARD_NUMBER = re.compile(r"^[A-Z]{3}-\d{5}$")
_POSTAL_CODE = re.compile(r"^\d{5}$")


class RuleViolation(Exception):
    """A business rule refused the command; ``rule`` names it for clients."""

    def __init__(self, rule: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.field = field


def normalise_card_number(raw: str) -> str:
    """'kxa 12345', 'KXA12345' and 'KXA-12345' are the same card."""
    compact = re.sub(r"[\s-]", "", raw).upper()
    number = f"{compact[:3]}-{compact[3:]}"
    if not _CARD_NUMBER.match(number):
        raise RuleViolation(
            "card-number-format",
            "A card number is three letters and five digits, e.g. KXA-12345.",
            "card_number",
        )
    return number


def normalise_postal_code(raw: str) -> str:
    compact = raw.replace(" ", "")
    if not _POSTAL_CODE.match(compact):
        raise RuleViolation("postal-code", "A postal code is five digits, e.g. 00100.",
                            "postal_code")
    return compact


class Organisation(Aggregate):
    @staticmethod
    def create_id(organisation_id: UUID) -> UUID:
        return organisation_id

    @event("Registered")
    def __init__(self, organisation_id: UUID, kind: str, name: str, municipality: str) -> None:
        self.kind = kind
        self.name = name
        self.municipality = municipality

    @classmethod
    def register(cls, organisation_id: UUID, kind: str, name: str, municipality: str
                 ) -> Organisation:
        if kind not in ORGANISATION_KINDS:
            raise RuleViolation("organisation-kind",
                                f"kind must be one of {', '.join(ORGANISATION_KINDS)}", "kind")
        if not name.strip():
            raise RuleViolation("organisation-name", "name must not be empty", "name")
        return cls(organisation_id=organisation_id, kind=kind, name=name.strip(),
                   municipality=municipality)


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

    def is_valid_on(self, day: date) -> bool:
        return self.status == "open" and self.valid_from <= day <= self.valid_until

    def renew(self, *, today: date, valid_until: date | None, life_satisfaction: int | None,
              wellbeing_impact: int | None) -> None:
        self._require_open()
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
    def _changed(self, card_number: str, valid_until: date, children: int, postal_code: str, municipality: str, region: str) -> None:
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
