"""Key sets and what production refuses: each process started for real
(``python -m <service> check``), so the refusal is what an operator sees. The
`kaiku` command's own (keys, token, run) are in dev/tests/test_cli.py."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kaiku_shared.keys import (
    PRIVATE_SETTINGS,
    KeyMaterial,
    KeySetError,
    read_key_set,
)

MODULES = ("cards", "venues", "omakaiku", "notifications", "web")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIKU_")}
    return {**env, **extra}


def production_env(keys: KeyMaterial, **extra: str) -> dict[str, str]:
    """Everything a production installation sets, every process's secrets at once."""
    return clean_env(**{"KAIKU_ENV": "production", **keys.values,
                        "KAIKU_OMAKAIKU_SMTP_HOST": "smtp.example.org",
                        **extra})


def check(module: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, "check"], env=env, text=True,
                          capture_output=True, timeout=120)


# --- key sets ---------------------------------------------------------------------------


def test_a_generated_set_gives_each_process_only_its_own_secrets() -> None:
    keys = KeyMaterial.generate()
    assert set(keys.env_for("cards")) == {"KAIKU_STAFF_SIGNING_KEYS"}
    assert set(keys.env_for("venues")) == set()
    assert set(keys.env_for("notifications")) == {"KAIKU_NOTIFICATIONS_MASTER_KEY"}
    assert "KAIKU_STAFF_SIGNING_KEYS" not in keys.env_for("omakaiku")
    assert set(keys.env_for("web")) == {"KAIKU_WEB_SESSION_SECRET"}
    secrets = [keys.values[name] for names in PRIVATE_SETTINGS.values() for name in names]
    assert len(set(secrets)) == len(secrets), "every key is its own"
    for public in keys.public_env().values():
        assert '"d"' not in public


def test_a_development_key_set_from_before_a_new_secret_gets_it_and_keeps_the_rest(
        tmp_path: Path) -> None:
    path = tmp_path / "kaiku.env"
    before = KeyMaterial.generate(development=True)
    KeyMaterial({name: value for name, value in before.values.items()
                 if name != "KAIKU_NOTIFICATIONS_MASTER_KEY"}).write_env_file(path)
    with pytest.raises(KeySetError, match="KAIKU_NOTIFICATIONS_MASTER_KEY"):
        KeyMaterial.read_env_file(path)  # an operator's file is never filled in silently
    completed = KeyMaterial.read_env_file(path, complete=True)
    assert len(base64.b64decode(completed.values["KAIKU_NOTIFICATIONS_MASTER_KEY"])) == 32
    assert {k: v for k, v in completed.values.items()
            if k != "KAIKU_NOTIFICATIONS_MASTER_KEY"} == {
        k: v for k, v in before.values.items() if k != "KAIKU_NOTIFICATIONS_MASTER_KEY"}
    assert KeyMaterial.read_env_file(path) == completed  # written down, stable


def test_a_key_set_is_read_from_text_or_a_file(tmp_path: Path) -> None:
    keys = KeyMaterial.generate()
    text = keys.values["KAIKU_STAFF_SIGNING_KEYS"]
    (tmp_path / "staff.jwks").write_text(text)
    assert read_key_set(text, setting="X", private=True) == read_key_set(
        str(tmp_path / "staff.jwks"), setting="X", private=True)
    with pytest.raises(KeySetError, match="cannot read"):
        read_key_set(str(tmp_path / "missing.jwks"), setting="X", private=True)
    with pytest.raises(KeySetError, match="no private part"):
        read_key_set(keys.values["KAIKU_STAFF_JWKS"], setting="X", private=True)
    with pytest.raises(KeySetError, match="not a JWK set"):
        read_key_set("{nonsense", setting="X", private=False)


# --- production refuses ----------------------------------------------------------------


def test_every_process_starts_in_production_with_a_real_key_set() -> None:
    env = production_env(KeyMaterial.generate())
    for module in MODULES:
        result = check(module, env)
        assert result.returncode == 0, f"{module}: {result.stderr}"


@pytest.mark.parametrize("module,missing", [
    ("cards", "KAIKU_STAFF_SIGNING_KEYS"),
    ("omakaiku", "KAIKU_HOLDER_SIGNING_KEYS"),
    ("omakaiku", "KAIKU_OMAKAIKU_MASTER_KEY"),
    ("omakaiku", "KAIKU_OMAKAIKU_LOOKUP_KEY"),
    ("omakaiku", "KAIKU_OMAKAIKU_CARD_SIGNING_KEY"),
    ("omakaiku", "KAIKU_OMAKAIKU_SMTP_HOST"),
    ("omakaiku", "KAIKU_OMAKAIKU_VAPID_PRIVATE_KEY"),
    ("notifications", "KAIKU_NOTIFICATIONS_MASTER_KEY"),
    ("web", "KAIKU_WEB_SESSION_SECRET"),
])
def test_production_refuses_to_start_without_each_key(module: str, missing: str) -> None:
    env = production_env(KeyMaterial.generate())
    del env[missing]
    started = time.monotonic()
    result = check(module, env)
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - started < 30
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("kaiku: refusing to start in production:") and missing in line


@pytest.mark.parametrize("module,setting,value,why", [
    ("cards", "KAIKU_STAFF_SIGNING_KEYS", "dev", "development key"),
    ("omakaiku", "KAIKU_HOLDER_SIGNING_KEYS", "dev", "development key"),
    ("venues", "KAIKU_STAFF_JWKS", "dev-public", "development key"),
    ("venues", "KAIKU_JWT_SECRET", "dev-only-insecure-jwt-secret-change-me-0123456789",
     "shared secret is gone"),
    ("omakaiku", "KAIKU_OMAKAIKU_LOOKUP_KEY", "same-as-master", "same as another key"),
    ("omakaiku", "KAIKU_OMAKAIKU_MASTER_KEY", "c2hvcnQ=", "at least 32"),
    ("web", "KAIKU_WEB_SESSION_SECRET", "dev-only-insecure-jwt-secret-change-me-0123456789",
     "published in this repository"),
    ("web", "KAIKU_WEB_DEV_TOKEN_SIGNIN", "true", "development form"),
    ("notifications", "KAIKU_FAILPOINTS", "crash-after-commit", "test setting"),
    ("omakaiku", "KAIKU_OMAKAIKU_RETENTION_TEST_KEEP_SECONDS", "5", "test setting"),
    ("omakaiku", "KAIKU_OMAKAIKU_RETENTION_TEST_NOTICE_SECONDS", "2", "test setting"),
])
def test_production_refuses_development_and_unsafe_values(module: str, setting: str,
                                                          value: str, why: str) -> None:
    keys = KeyMaterial.generate()
    development = KeyMaterial.generate(development=True)
    value = {"dev": development.values.get(setting, ""),
             "dev-public": development.values["KAIKU_STAFF_JWKS"],
             "same-as-master": keys.values["KAIKU_OMAKAIKU_MASTER_KEY"]}.get(value, value)
    result = check(module, production_env(keys, **{setting: value}))
    assert result.returncode == 2, result.stderr
    assert setting in result.stderr and why in result.stderr, result.stderr


def test_development_accepts_a_missing_key_at_the_check() -> None:
    """Development is what `kaiku run` and the tests are: they bring their own keys."""
    assert check("venues", clean_env()).returncode == 0
