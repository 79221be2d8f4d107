"""Sign-in without revealing who holds a card: whose address a request comes
from, the constant-time code check, and whom a queued code goes to."""

from __future__ import annotations

import hashlib
import hmac
from uuid import UUID, uuid4

import pytest
from eventsourcing.utils import get_topic
from pydantic import ValidationError

from kaiku_shared.eventstore import MetaMapper
from omakaiku.adapters.signin import matching_code
from omakaiku.adapters.vault import MemoryKeyStore, Vault
from omakaiku.application.app import OmaKaikuApplication, PersonalData
from omakaiku.config import OmaKaikuSettings
from omakaiku.entrypoints.api import CodeRequest

DISTRIBUTOR = UUID("3f6c2a1e-8d4b-4c7a-9e21-5b0d7f3a9c14")


def test_settings_limit_every_dimension():
    settings = OmaKaikuSettings()
    assert settings.signin_max_requests >= 1 and settings.signin_max_requests_per_client >= 1
    assert settings.signin_max_requests_global >= 1
    assert settings.signin_sender_poll_seconds <= 1.0  # a code arrives within about a second


# --- the code check -----------------------------------------------------------------


def _hash(code: str) -> bytes:
    return hmac.new(b"k" * 32, code.encode(), hashlib.sha256).digest()


def test_the_matching_code_is_found_among_several_and_a_wrong_one_finds_none():
    live = [{"id": n, "secret_hash": _hash(code), "account_id": uuid4()}
            for n, code in enumerate(["111111", "222222", "333333"])]
    assert matching_code(live, _hash("222222"))["id"] == 1
    assert matching_code(live, _hash("444444")) is None
    assert matching_code([], _hash("111111")) is None


def test_a_code_request_takes_only_an_address_and_a_known_language():
    assert CodeRequest(email="a@example.org").language is None
    assert CodeRequest(email="a@example.org", language="sv").language == "sv"
    with pytest.raises(ValidationError):
        CodeRequest(email="a@example.org", language="de")
    with pytest.raises(ValidationError):
        CodeRequest(email="a@example.org", account_id=str(uuid4()))


# --- whom a queued code goes to -----------------------------------------------------


@pytest.fixture
def app() -> OmaKaikuApplication:
    app = OmaKaikuApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo",
                                   "MAPPER_TOPIC": get_topic(MetaMapper)})
    app.vault = Vault(MemoryKeyStore(), b"m" * 32, b"l" * 32)
    return app


def _activate(app: OmaKaikuApplication, card_number: str, email: str) -> UUID:
    account_id = uuid4()
    app.activate_account(account_id=account_id, card_number=card_number,
                         personal=PersonalData("Aino", "Virtanen", email, None, "Imatra"),
                         language="sv", activated_by=DISTRIBUTOR)
    return account_id


def test_a_queued_code_goes_to_the_account_found_by_the_lookup_hash_alone(app):
    account_id = _activate(app, "123-456789", "Aino@Example.org")
    holder = app.signin_holder(app.vault.email_lookup("aino@example.org "))
    assert holder is not None
    assert holder.account.id == account_id
    assert holder.personal.email == "Aino@Example.org"  # the address on the account
    assert holder.account.language == "sv"


def test_an_unknown_or_erased_address_has_nobody_to_send_to(app):
    assert app.signin_holder(app.vault.email_lookup("nobody@example.org")) is None
    account_id = _activate(app, "123-456780", "gone@example.org")
    app.erase_account(account_id, by="holder")
    assert app.signin_holder(app.vault.email_lookup("gone@example.org")) is None
