"""Domain events → integration contracts (what the relay publishes)."""

from __future__ import annotations

from typing import Any

from kaiku_shared.contracts import (
    CardChangedV1,
    CardClosedV1,
    CardIssuedV1,
    CardRenewedV1,
    CardReplacedV1,
    CardUsesImportedV1,
    IntegrationEvent,
    NetworkChangedV1,
    OrganisationRegisteredV1,
    OrganisationStatusChangedV1,
    StaffAccessRevokedV1,
)

from ..domain.model import Card, Organisation, SignedOutToken, StaffUser
from ..domain.network import NetworkRegistry


def translate(event: Any, envelope: dict[str, Any]) -> IntegrationEvent | None:
    """The contract for a domain event; None for what never leaves the service
    (usernames and password hashes stay here; rosters, continuation rounds).
    What ends a staff user's tokens leaves as a revocation naming the user id."""
    revoked = _revocation(event, envelope)
    if revoked is not None:
        return revoked
    if isinstance(event, NetworkRegistry.Event):
        return _network_changed(event, envelope)
    if isinstance(event, Card.Issued):
        return CardIssuedV1.build(
            **envelope, card_number=event.card_number,
            issuer_organisation_id=event.issuer_organisation_id,
            valid_from=event.valid_from, valid_until=event.valid_until,
            children=event.children, birth_year=event.birth_year,
            postal_code=event.postal_code, municipality=event.municipality,
            region=event.region, community=event.community,
            life_satisfaction=event.life_satisfaction,
        )
    if isinstance(event, Card.Renewed):
        return CardRenewedV1.build(
            **envelope, card_number=event.card_number, valid_until=event.valid_until,
            children=event.children, municipality=event.municipality, region=event.region,
            life_satisfaction=event.life_satisfaction, wellbeing_impact=event.wellbeing_impact,
        )
    if isinstance(event, Card.Changed):
        return CardChangedV1.build(
            **envelope, card_number=event.card_number, valid_until=event.valid_until,
            children=event.children, postal_code=event.postal_code,
            municipality=event.municipality, region=event.region,
        )
    if isinstance(event, Card.Closed):
        return CardClosedV1.build(**envelope, card_number=event.card_number, reason=event.reason)
    if isinstance(event, Card.Replaced):
        return CardReplacedV1.build(
            **envelope, card_number=event.card_number,
            replacement_card_number=event.replaced_by, valid_until=event.valid_until,
        )
    if isinstance(event, Card.UsesImported):
        return CardUsesImportedV1.build(
            **envelope, card_number=event.card_number, uses=tuple(event.uses))
    if isinstance(event, Organisation.Approved):
        return OrganisationStatusChangedV1.build(
            **envelope, organisation_id=event.originator_id, status="approved")
    if isinstance(event, Organisation.Left):
        return OrganisationStatusChangedV1.build(
            **envelope, organisation_id=event.originator_id, status="left")
    if isinstance(event, Organisation.Registered):
        return OrganisationRegisteredV1.build(
            **envelope, organisation_id=event.originator_id, kind=event.kind, name=event.name,
            municipality=event.municipality, status=getattr(event, "status", "approved"),
        )
    return None


def _revocation(event: Any, envelope: dict[str, Any]) -> StaffAccessRevokedV1 | None:
    reason = {StaffUser.Deactivated: "deactivated",
              StaffUser.PasswordChanged: "password_changed"}.get(type(event))
    if reason is not None:
        return StaffAccessRevokedV1.build(
            **envelope, scope="user", target=str(event.originator_id),
            not_before=envelope["occurred_at"], reason=reason)
    if isinstance(event, SignedOutToken.SignedOut):
        return StaffAccessRevokedV1.build(
            **envelope, scope="token", target=event.token_id,
            not_before=envelope["occurred_at"], expires_at=event.expires_at,
            reason="signed_out")
    return None


def _network_changed(event: Any, envelope: dict[str, Any]) -> NetworkChangedV1 | None:
    """The whole network when it is announced, then one entry per change. The
    seeding itself and the changes made before the announcement (no ``publish``)
    were never published: the announcement covers them."""
    if isinstance(event, NetworkRegistry.Announced):
        return NetworkChangedV1.build(**envelope, regions=tuple(event.regions),
                                      municipalities=tuple(event.municipalities))
    if not getattr(event, "publish", False):
        return None
    if isinstance(event, NetworkRegistry.RegionSet):
        return NetworkChangedV1.build(**envelope, regions=(event.region,))
    if isinstance(event, NetworkRegistry.MunicipalitySet):
        return NetworkChangedV1.build(**envelope, municipalities=(event.municipality,))
    return None
