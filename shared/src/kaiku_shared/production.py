"""What ``KAIKU_ENV=production`` refuses at start-up.

Every process calls ``refuse_unsafe_start`` before it opens a connection: with a
missing key, a development key, a value once shipped in this repository, an old
shared secret, the web's token form or no SMTP relay, it exits non-zero at once with
one line that names the setting. Development (``kaiku run``, the tests) accepts
anything, and makes its own keys.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
from collections.abc import Callable

from .keys import KeySetError, is_development_key, read_key_set
from .settings import KaikuSettings

# SHA-256 of values that were ever committed as defaults: never secret.
SHIPPED_VALUES = frozenset({
    # KAIKU_JWT_SECRET in docker-compose.yml and deploy/k8s before 2026-12
    hashlib.sha256(b"dev-only-insecure-jwt-secret-change-me-0123456789").hexdigest(),
})


class UnsafeProduction(SystemExit):
    """Raised with the line to print; exit status 2."""

    def __init__(self, problem: str) -> None:
        super().__init__(2)
        self.problem = problem


def shipped(value: str) -> bool:
    return hashlib.sha256(value.encode()).hexdigest() in SHIPPED_VALUES


def signing_keys_problem(value: str | None, setting: str) -> str | None:
    try:
        keys = read_key_set(value, setting=setting, private=True)
    except KeySetError as error:
        return str(error)
    if not keys:
        return f"{setting} is not set (make a key set with `kaiku keys generate`)"
    if any(is_development_key(key) for key in keys):
        return f"{setting} holds a development key (kid 'dev-…'); generate production keys"
    return None


def secret_problem(value: str | None, setting: str, *, base64_bytes: int | None = None
                   ) -> str | None:
    if not value:
        return f"{setting} is not set (see `kaiku keys generate`)"
    if shipped(value):
        return f"{setting} is a development value published in this repository"
    if base64_bytes is not None:
        try:
            if len(base64.b64decode(value, validate=True)) < base64_bytes:
                return f"{setting} must be at least {base64_bytes} random bytes, base64"
        except ValueError:
            return f"{setting} is not base64"
    elif len(value) < 32:
        return f"{setting} must be at least 32 characters"
    return None


def common_problems(settings: KaikuSettings) -> list[str]:
    problems = []
    if os.environ.get("KAIKU_JWT_SECRET"):
        problems.append("KAIKU_JWT_SECRET is set: the shared secret is gone; remove it and "
                        "configure the keys from `kaiku keys generate`")
    if settings.failpoints:
        problems.append("KAIKU_FAILPOINTS is a test setting and must be empty")
    for value, setting in ((settings.staff_jwks, "KAIKU_STAFF_JWKS"),
                           (settings.holder_jwks, "KAIKU_HOLDER_JWKS")):
        try:
            keys = read_key_set(value, setting=setting, private=False)
        except KeySetError as error:
            problems.append(str(error))
            continue
        if any(is_development_key(key) for key in keys):
            problems.append(f"{setting} trusts a development key (kid 'dev-…')")
    return problems


def refuse_unsafe_start(settings: KaikuSettings,
                        own_problems: Callable[[], list[str]] = list) -> None:
    """In production, exit with the first problem; in development, do nothing."""
    if settings.env != "production":
        return
    problems = [*common_problems(settings), *own_problems()]
    if problems:
        print(f"kaiku: refusing to start in production: {problems[0]}"
              + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
              file=sys.stderr, flush=True)
        raise UnsafeProduction(problems[0])
