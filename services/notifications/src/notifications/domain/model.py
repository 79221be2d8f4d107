"""Notifications' aggregates. Holders appear only as opaque account ids or card numbers.

- ``Bulletin``: Kaikukeskus's message to every organisation and holder.
- ``Message``: one message between two parties (organisation, holder, staff user).
- ``NotificationBatch`` / ``NotificationDigest``: notifications handed to omakaiku
  for e-mail (a batch of accounts, or one holder's daily digest). The id is claimed in the read model before it is saved,
  so a crash between the two re-saves the same id and nothing is handed over twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal, Protocol
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from kaiku_shared.kernel.errors import RuleViolation

PartyKind = Literal["organisation", "holder", "user"]

SUBJECT_MAX = 200
BODY_MAX = 10_000
BULLETIN_DAYS = 30  # how long a bulletin is current when Kaikukeskus names no end
BULLETIN_MAX_DAYS = 366


def refused(rule: str, message: str) -> RuleViolation:
    """A message breaks a messaging rule: the input is at fault (422), ``rule`` names it."""
    return RuleViolation(rule, message, status=422)


@dataclass(frozen=True)
class Party:
    """A sender or recipient, by opaque ids only."""

    kind: PartyKind
    organisation_id: UUID | None = None
    account_id: UUID | None = None
    card_number: str | None = None
    user_id: str | None = None

    def __post_init__(self) -> None:
        given = {
            "organisation": self.organisation_id is not None,
            "holder": self.account_id is not None or self.card_number is not None,
            "user": self.user_id is not None,
        }
        if not given[self.kind]:
            raise refused("recipient-incomplete", f"a {self.kind} party needs its id")

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind,
                "organisation_id": str(self.organisation_id) if self.organisation_id else None,
                "account_id": str(self.account_id) if self.account_id else None,
                "card_number": self.card_number, "user_id": self.user_id}

    @property
    def holder_key(self) -> str | None:
        """Whose key seals what this party writes and receives: a holder's (by
        account, or by card before there is one); None for staff and organisations."""
        if self.kind != "holder":
            return None
        return f"account:{self.account_id}" if self.account_id else f"card:{self.card_number}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Party:
        return cls(kind=data["kind"],
                   organisation_id=UUID(data["organisation_id"]) if data.get("organisation_id")
                   else None,
                   account_id=UUID(data["account_id"]) if data.get("account_id") else None,
                   card_number=data.get("card_number"), user_id=data.get("user_id"))


class Bulletin(Aggregate):
    """A message from Kaikukeskus to every organisation and holder.

    Current until ``valid_until`` (an ISO date, the last day; Helsinki time is
    the reader's concern): organisations and accounts that join before then get it
    too. Bulletins published before this existed have none (BULLETIN_DAYS apply).
    """

    @staticmethod
    def last_day(today: date, valid_until: date | None) -> date:
        """The bulletin's last current day: the one named, or BULLETIN_DAYS on."""
        if valid_until is None:
            return today + timedelta(days=BULLETIN_DAYS)
        if valid_until < today:
            raise refused("bulletin-expired", "valid_until is in the past: a bulletin "
                          "is current from today until that day.")
        if valid_until > today + timedelta(days=BULLETIN_MAX_DAYS):
            raise refused("bulletin-too-long", f"A bulletin is current for at most "
                          f"{BULLETIN_MAX_DAYS} days.")
        return valid_until

    @event("Published")
    def __init__(self, id: UUID, title: str, body: str, published_by: UUID | None,  # noqa: A002
                 valid_until: str | None = None) -> None:
        self.title = title
        self.body = body
        self.published_by = published_by
        self.valid_until = valid_until


class Sealer(Protocol):
    """Seals a holder's text under that holder's key (what erasure destroys)."""

    def __call__(self, holder_key: str, text: str) -> str: ...


class Message(Aggregate):
    """One message; the rules of who may write to whom are checked in ``send``.

    Between a holder and an organisation, the subject and body are recorded
    sealed under the holder's key (``sealed_for``): the event, the stream and
    every copy of them keep only ciphertext, readable while the holder's key
    exists. Messages recorded before sealing have no ``sealed_for``.
    """

    @staticmethod
    def holder_key_of(sender: Party, recipient: Party) -> str | None:
        return sender.holder_key or recipient.holder_key

    @classmethod
    def send(cls, message_id: UUID, sender: Party, recipient: Party, subject: str, body: str,
             in_reply_to: UUID | None = None, seal: Sealer | None = None) -> Message:
        subject, body = subject.strip(), body.strip()
        if not subject or not body:
            raise refused("message-empty", "A message needs a subject and a body.")
        if len(subject) > SUBJECT_MAX or len(body) > BODY_MAX:
            raise refused("message-too-long", f"The subject is at most {SUBJECT_MAX} "
                          f"and the body at most {BODY_MAX} characters.")
        if sender == recipient:
            raise refused("message-to-self", "Write to someone other than yourself.")
        if sender.kind == "holder" and recipient.kind != "organisation":
            raise refused("holder-writes-to-organisations",
                          "A holder writes to a venue or distributor organisation.")
        holder_key = cls.holder_key_of(sender, recipient)
        if holder_key is not None:
            if seal is None:
                raise RuntimeError("a holder's message must be sealed: no sealer given")
            subject, body = seal(holder_key, subject), seal(holder_key, body)
        return cls(id=message_id, sender=sender.as_dict(), recipient=recipient.as_dict(),
                   subject=subject, body=body, in_reply_to=in_reply_to, sealed_for=holder_key)

    @event("Sent")
    def __init__(self, id: UUID, sender: dict[str, Any], recipient: dict[str, Any],  # noqa: A002
                 subject: str, body: str, in_reply_to: UUID | None,
                 sealed_for: str | None = None) -> None:
        self.sender = sender
        self.recipient = recipient
        self.subject = subject
        self.body = body
        self.in_reply_to = in_reply_to
        self.sealed_for = sealed_for


class NotificationBatch(Aggregate):
    """One notification (template + params) for up to BATCH_SIZE accounts."""

    @event("Issued")
    def __init__(self, id: UUID, kind: str, source_id: UUID,  # noqa: A002
                 template_key: str, params: dict[str, str], account_ids: list[str]) -> None:
        self.kind = kind
        self.source_id = source_id
        self.template_key = template_key
        self.params = params
        self.account_ids = account_ids


class NotificationDigest(Aggregate):
    """One holder's daily digest."""

    @event("Issued")
    def __init__(self, id: UUID, account_id: UUID, digest_date: date,  # noqa: A002
                 items: list[dict[str, Any]]) -> None:
        self.account_id = account_id
        self.digest_date = digest_date
        self.items = items
