"""Domain events → integration contracts. Personal fields are never copied out
(and the account's sealed data is not even ciphertext on the wire). The mobile
card's public key goes out so that venues verify mobile cards offline."""

from __future__ import annotations

from typing import Any

from kaiku_shared.contracts import (
    AccountActivatedV1,
    AccountErasedV1,
    FeedbackGivenV1,
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
        # The aggregate is the feedback itself (id derived from the ticket): the
        # envelope names no account, so venues cannot link one holder's ratings.
        return FeedbackGivenV1.build(**envelope, ticket_id=event.ticket_id,
                                     offering_id=event.offering_id, venue_id=event.venue_id,
                                     accessibility=event.accessibility, meaning=event.meaning,
                                     interest=event.interest)
    if isinstance(event, MobileCardKey.Published):
        # Public key material only: the private seed never enters an event.
        return MobileCardKeyPublishedV1.build(**envelope, kid=event.kid,
                                              algorithm=event.algorithm, kty=event.kty,
                                              crv=event.crv, x=event.x,
                                              published_at=event.published_at)
    return None
