"""The `kaiku` command: `kaiku keys`, the development keys of `kaiku run`, and
what `kaiku run` and `kaiku token` refuse in production."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from kaiku_dev import cli
from kaiku_shared.keys import KeyMaterial


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIKU_")}
    return {**env, **extra}


def production_env(keys: KeyMaterial, **extra: str) -> dict[str, str]:
    return clean_env(**{"KAIKU_ENV": "production", **keys.values,
                        "KAIKU_OMAKAIKU_SMTP_HOST": "smtp.example.org", **extra})


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


def test_kaiku_run_in_production_without_keys_stops_with_the_setting(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "kaiku_dev.cli", "run"],
                            env=clean_env(KAIKU_ENV="production", KAIKU_DATA_DIR=str(tmp_path)),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refusing to start in production" in result.stderr
    assert "KAIKU_STAFF_SIGNING_KEYS" in result.stderr
    assert time.monotonic() - started < 120
    assert not (tmp_path / "keys").exists(), "production makes no development keys"


def test_kaiku_token_refuses_in_production(tmp_path: Path) -> None:
    keys = KeyMaterial.generate()
    result = subprocess.run([sys.executable, "-m", "kaiku_dev.cli", "token", "--role",
                             "kaikukeskus"], env=production_env(keys),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "development tool" in result.stderr
    development = subprocess.run([sys.executable, "-m", "kaiku_dev.cli", "token", "--role",
                                  "kaikukeskus"], env=clean_env(**keys.values),
                                 capture_output=True, text=True, timeout=60)
    assert development.returncode == 0 and development.stdout.count(".") == 2

