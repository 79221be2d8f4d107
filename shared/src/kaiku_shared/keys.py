"""Signing keys as JSON Web Keys (RFC 7517, Ed25519 per RFC 8037).

An issuer (cards for staff, omakaiku for holders) holds a *private* key set: the
first key signs, every key verifies, so a rotation puts a new key first and
drops an old one once the tokens it signed have expired. Every other process
holds only the *public* halves, configured or fetched from the issuer's
``/.well-known/jwks.json``.

A setting holding a key set is either the JSON text itself or the path of a
file with it (a mounted secret).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALGORITHM = "EdDSA"
# Keys that `kaiku run` and the tests make for themselves carry this prefix in
# their kid, so that production can recognise and refuse them.
DEVELOPMENT_KID_PREFIX = "dev-"


class KeySetError(ValueError):
    """A key set setting that cannot be used (unreadable, malformed, empty)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def generate_signing_key(purpose: str, *, development: bool = False) -> dict[str, str]:
    """A fresh private Ed25519 JWK whose kid names its purpose and day."""
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    seed = private.private_bytes_raw()
    prefix = DEVELOPMENT_KID_PREFIX if development else ""
    kid = f"{prefix}{purpose}-{time.strftime('%Y%m%d')}-{secrets.token_hex(4)}"
    return {"kty": "OKP", "crv": "Ed25519", "alg": ALGORITHM, "use": "sig", "kid": kid,
            "x": b64url(public), "d": b64url(seed)}


def public_key_set(keys: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The verifying halves of a key set, as served on /.well-known/jwks.json."""
    return {"keys": [{k: v for k, v in key.items() if k != "d"} for key in keys]}


def read_key_set(value: str | None, *, setting: str, private: bool) -> list[dict[str, Any]]:
    """The keys of a setting that holds a JWK set (or a file with one); [] if unset."""
    if not value or not value.strip():
        return []
    text = value.strip()
    if not text.startswith("{"):
        try:
            text = Path(text).read_text()
        except OSError as error:
            raise KeySetError(f"{setting}: cannot read the key file {value!r}: "
                              f"{error.strerror}") from None
    try:
        keys = json.loads(text)["keys"]
    except (ValueError, KeyError, TypeError):
        raise KeySetError(f"{setting} is not a JWK set ({{\"keys\": [...]}})") from None
    if not isinstance(keys, list) or not keys:
        raise KeySetError(f"{setting} holds no keys")
    for key in keys:
        _check_key(key, setting=setting, private=private)
    return keys


def _check_key(key: Any, *, setting: str, private: bool) -> None:
    if not isinstance(key, dict) or key.get("kty") != "OKP" or key.get("crv") != "Ed25519":
        raise KeySetError(f"{setting}: every key must be an Ed25519 OKP key")
    if not isinstance(key.get("kid"), str) or not key["kid"]:
        raise KeySetError(f"{setting}: every key needs a kid")
    if private and not key.get("d"):
        raise KeySetError(f"{setting}: key {key['kid']} has no private part (d)")


def is_development_key(key: dict[str, Any]) -> bool:
    return str(key.get("kid", "")).startswith(DEVELOPMENT_KID_PREFIX)


def random_secret(size: int = 32) -> str:
    """A random symmetric key, base64 (what the omakaiku and web keys are)."""
    return base64.b64encode(secrets.token_bytes(size)).decode()


def generate_vapid_key() -> str:
    """A VAPID (RFC 8292) private key: the P-256 scalar, 32 bytes, base64url
    without padding (the form web-push tools print)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    scalar = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
    return b64url(scalar.to_bytes(32, "big"))


# --- one installation's key set ---------------------------------------------------------

# Which process gets which secret: only the issuer holds a signing key set.
PRIVATE_SETTINGS = {
    "cards": ("KAIKU_STAFF_SIGNING_KEYS",),
    "omakaiku": ("KAIKU_HOLDER_SIGNING_KEYS", "KAIKU_OMAKAIKU_MASTER_KEY",
                 "KAIKU_OMAKAIKU_LOOKUP_KEY", "KAIKU_OMAKAIKU_CARD_SIGNING_KEY",
                 "KAIKU_OMAKAIKU_VAPID_PRIVATE_KEY"),
    "notifications": ("KAIKU_NOTIFICATIONS_MASTER_KEY",),
    "web": ("KAIKU_WEB_SESSION_SECRET",),
}
# Secrets added after the first release: a development key set written before
# them gets them, new and random, when it is next read (kaiku_dev.cli).
ADDED_SINCE_FIRST_RELEASE = {
    "KAIKU_NOTIFICATIONS_MASTER_KEY": random_secret,
    "KAIKU_OMAKAIKU_VAPID_PRIVATE_KEY": generate_vapid_key,
}
PUBLIC_SETTINGS = ("KAIKU_STAFF_JWKS", "KAIKU_HOLDER_JWKS")


@dataclass(frozen=True)
class KeyMaterial:
    """Every key one installation needs, each generated on its own."""

    values: dict[str, str]

    @classmethod
    def generate(cls, *, development: bool = False) -> KeyMaterial:
        staff = [generate_signing_key("staff", development=development)]
        holder = [generate_signing_key("holder", development=development)]
        return cls.of(staff, holder, master=random_secret(), lookup=random_secret(),
                      card_signing=random_secret(), session=random_secret(48),
                      messages=random_secret(), vapid=generate_vapid_key())

    @classmethod
    def of(cls, staff: list[dict[str, Any]], holder: list[dict[str, Any]], *, master: str,
           lookup: str, card_signing: str, session: str, messages: str,
           vapid: str | None = None) -> KeyMaterial:
        return cls({
            "KAIKU_OMAKAIKU_VAPID_PRIVATE_KEY": vapid or generate_vapid_key(),
            "KAIKU_NOTIFICATIONS_MASTER_KEY": messages,
            "KAIKU_STAFF_SIGNING_KEYS": json.dumps({"keys": staff}),
            "KAIKU_HOLDER_SIGNING_KEYS": json.dumps({"keys": holder}),
            "KAIKU_STAFF_JWKS": json.dumps(public_key_set(staff)),
            "KAIKU_HOLDER_JWKS": json.dumps(public_key_set(holder)),
            "KAIKU_OMAKAIKU_MASTER_KEY": master,
            "KAIKU_OMAKAIKU_LOOKUP_KEY": lookup,
            "KAIKU_OMAKAIKU_CARD_SIGNING_KEY": card_signing,
            "KAIKU_WEB_SESSION_SECRET": session,
        })

    def public_env(self) -> dict[str, str]:
        return {name: self.values[name] for name in PUBLIC_SETTINGS}

    def env_for(self, process: str) -> dict[str, str]:
        """The secrets one service's (or the web's) processes get: only their own."""
        return {name: self.values[name] for name in PRIVATE_SETTINGS.get(process, ())}

    def rotated(self, purpose: str, *, development: bool = False) -> KeyMaterial:
        """A new signing key first (it signs), the old ones kept (they verify)."""
        name = {"staff": "KAIKU_STAFF_SIGNING_KEYS", "holder": "KAIKU_HOLDER_SIGNING_KEYS"}[purpose]
        keys = [generate_signing_key(purpose, development=development),
                *json.loads(self.values[name])["keys"]]
        public = "KAIKU_STAFF_JWKS" if purpose == "staff" else "KAIKU_HOLDER_JWKS"
        return KeyMaterial({**self.values, name: json.dumps({"keys": keys}),
                            public: json.dumps(public_key_set(keys))})

    def write_env_file(self, path: Path) -> None:
        """``NAME='value'`` lines, for compose's env_file, a k8s Secret or a shell."""
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{name}='{value}'" for name, value in sorted(self.values.items())]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)

    @classmethod
    def read_env_file(cls, path: Path, *, complete: bool = False) -> KeyMaterial:
        """The key set in ``path``; with ``complete`` (development), secrets added
        since it was written are generated and written to it."""
        values = {}
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip():
                values[name.strip()] = value.strip().strip("'")
        added = [name for name in ADDED_SINCE_FIRST_RELEASE if name not in values]
        if complete and added:
            values.update({name: ADDED_SINCE_FIRST_RELEASE[name]() for name in added})
            cls(values).write_env_file(path)
        missing = set(PUBLIC_SETTINGS).union(*PRIVATE_SETTINGS.values()) - set(values)
        if missing:
            raise KeySetError(f"{path} lacks {', '.join(sorted(missing))}")
        return cls(values)
