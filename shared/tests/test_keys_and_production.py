"""Key sets, `kaiku keys`, development keys of `kaiku run`, and what production
refuses — each process started for real (``python -m <service> check``), so the
refusal is what an operator sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kaiku_shared import cli
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
    assert set(keys.env_for("venues")) == set() == set(keys.env_for("notifications"))
    assert "KAIKU_STAFF_SIGNING_KEYS" not in keys.env_for("omakaiku")
    assert set(keys.env_for("web")) == {"KAIKU_WEB_SESSION_SECRET"}
    secrets = [keys.values[name] for names in PRIVATE_SETTINGS.values() for name in names]
    assert len(set(secrets)) == len(secrets), "every key is its own"
    for public in keys.public_env().values():
        assert '"d"' not in public


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


def test_kaiku_keys_generate_then_rotate(tmp_path: Path) -> None:
    assert cli.main(["keys", "generate", "--out", str(tmp_path)]) == 0
    path = tmp_path / "kaiku.env"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    first = KeyMaterial.read_env_file(path)
    assert cli.main(["keys", "generate", "--out", str(tmp_path)]) == 2  # never overwrites
    assert cli.main(["keys", "rotate", "--file", str(path), "--purpose", "staff"]) == 0
    rotated = KeyMaterial.read_env_file(path)
    staff = json.loads(rotated.values["KAIKU_STAFF_SIGNING_KEYS"])["keys"]
    old = json.loads(first.values["KAIKU_STAFF_SIGNING_KEYS"])["keys"]
    assert len(staff) == 2 and staff[1] == old[0] and staff[0]["kid"] != old[0]["kid"]
    assert rotated.values["KAIKU_HOLDER_SIGNING_KEYS"] == first.values[
        "KAIKU_HOLDER_SIGNING_KEYS"]
    assert rotated.values["KAIKU_OMAKAIKU_MASTER_KEY"] == first.values[
        "KAIKU_OMAKAIKU_MASTER_KEY"]
    assert not any(k["kid"].startswith("dev-") for k in staff)


def test_development_keys_of_a_new_installation_are_random_and_kept(tmp_path: Path) -> None:
    first = cli.development_keys(tmp_path)
    assert cli.development_keys(tmp_path) == first
    other = cli.development_keys(tmp_path / "elsewhere")
    assert other.values["KAIKU_OMAKAIKU_MASTER_KEY"] != first.values[
        "KAIKU_OMAKAIKU_MASTER_KEY"]
    assert json.loads(first.values["KAIKU_STAFF_SIGNING_KEYS"])["keys"][0]["kid"].startswith(
        "dev-staff-")


def test_an_installation_from_before_keeps_reading_its_holders_data(tmp_path: Path) -> None:
    """A `.kaiku/` made before separate keys sealed holders' data with keys derived
    from its seed: the development keys written for it are exactly those. The
    expected values were computed with that earlier code (omakaiku/config.py,
    key_bytes, at 852adb5) for the seed below."""
    (tmp_path / "jwt-secret").write_text("legacy-seed-for-the-test\n")
    keys = cli.development_keys(tmp_path).values
    assert keys["KAIKU_OMAKAIKU_MASTER_KEY"] == "u0k+2+36HDB3jBSgyfFg9OyK8sSWlpFVz4X/CFE/U6Y="
    assert keys["KAIKU_OMAKAIKU_LOOKUP_KEY"] == "3bi/aKiCjKCXgx5o8HY14RXnsrbj+4QtVZ4WTkH2+vg="
    assert keys["KAIKU_OMAKAIKU_CARD_SIGNING_KEY"] == (
        "2F/MXhWPt+/POXRScM0V2n6fn4cukX+XfuCYVUz0NnY=")


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


def test_kaiku_run_in_production_without_keys_stops_with_the_setting(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "kaiku_shared.cli", "run"],
                            env=clean_env(KAIKU_ENV="production", KAIKU_DATA_DIR=str(tmp_path)),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refusing to start in production" in result.stderr
    assert "KAIKU_STAFF_SIGNING_KEYS" in result.stderr
    assert time.monotonic() - started < 120
    assert not (tmp_path / "keys").exists(), "production makes no development keys"


def test_kaiku_token_refuses_in_production(tmp_path: Path) -> None:
    keys = KeyMaterial.generate()
    result = subprocess.run([sys.executable, "-m", "kaiku_shared.cli", "token", "--role",
                             "kaikukeskus"], env=production_env(keys),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "development tool" in result.stderr
    development = subprocess.run([sys.executable, "-m", "kaiku_shared.cli", "token", "--role",
                                  "kaikukeskus"], env=clean_env(**keys.values),
                                 capture_output=True, text=True, timeout=60)
    assert development.returncode == 0 and development.stdout.count(".") == 2
