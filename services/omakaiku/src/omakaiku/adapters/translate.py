"""Domain events → integration contracts. Personal fields are never copied out
(and the account's sealed data is not even ciphertext on the wire). The mobile
card's public key goes out so that venues verify mobile cards offline."""

from __future__ import annotations

from typing import Any
from uuid import uuid5

from kaiku_shared.contracts import (
    AccountActivatedV1,
    AccountErasedV1,
    FEEDBACK_V1_NAMESPACE,
    FeedbackGivenV2,
    GenreSubscriptionsChangedV1,
    HolderAccessRevokedV1,
    IntegrationEvent,
    MobileCardKeyPublishedV1,
    TicketCancellationRequestedV1,
)

from ..domain.model import Account, Feedback, MobileCardKey, SignedOutToken


def translate(event: Any, envelope: dict[str, Any]) -> IntegrationEvent | None:
    if isinstance(event, SignedOutToken.SignedOut):
        return HolderAccessRevokedV1.build(
            **envelope, scope="token", target=event.token_id,
            not_before=envelope["occurred_at"], expires_at=event.expires_at,
            reason="signed_out")
    if isinstance(event, Account.Activated):
        return AccountActivatedV1.build(**envelope, account_id=event.originator_id,
                                        card_number=event.card_number,
                                        activated_by=event.activated_by)
    if isinstance(event, Account.CancellationRequested):
        return TicketCancellationRequestedV1.build(**envelope, account_id=event.originator_id,
                                                   ticket_id=event.ticket_id,
                                                   card_number=event.card_number)
    if isinstance(event, Account.SubscriptionsChanged):
        return GenreSubscriptionsChangedV1.build(**envelope, account_id=event.originator_id,
                                                 genres=tuple(event.genres),
                                                 subgenres=tuple(event.subgenres),
                                                 region=event.region)
    if isinstance(event, Account.Erased):
        return AccountErasedV1.build(**envelope, account_id=event.originator_id)
    if isinstance(event, Feedback.Given):
        return _feedback_given(event, envelope)
    if isinstance(event, MobileCardKey.Published):
        # Public key material only: the private seed never enters an event.
        return MobileCardKeyPublishedV1.build(**envelope, kid=event.kid,
                                              algorithm=event.algorithm, kty=event.kty,
                                              crv=event.crv, x=event.x,
                                              published_at=event.published_at)
    return None


def _feedback_given(event: Feedback.Given, envelope: dict[str, Any]) -> IntegrationEvent:
    """The answer under its own random id, unlinkable to the ticket and holder: not
    the aggregate's id (derived from the ticket, which venues knows), nor the
    request's correlation or trace ids (the holder's request named the ticket).
    An answer stored before it had a feedback id is named after its event id,
    exactly as a reader upcasting its V1 message names it."""
    feedback_id = event.feedback_id or uuid5(FEEDBACK_V1_NAMESPACE, str(envelope["event_id"]))
    return FeedbackGivenV2.build(
        event_id=envelope["event_id"], occurred_at=envelope["occurred_at"],
        aggregate_id=feedback_id, aggregate_version=1, feedback_id=feedback_id,
        offering_id=event.offering_id, venue_id=event.venue_id,
        accessibility=event.accessibility, meaning=event.meaning, interest=event.interest)
