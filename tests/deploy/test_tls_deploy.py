"""The deployment's TLS pieces work together, on a real nats-server.

* deploy/tls/make-staging-certs.sh (openssl) makes a CA and server certificates
  for every name compose and k8s use, keys private;
* deploy/nats/tls.conf (nats.conf's permissions + TLS, what compose runs) with
  those certificates: a service connects through kaiku_shared.tls with the CA,
  as the compose file configures it, and uses its JetStream permissions; a
  client without the CA is refused; nothing listens in plain text.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from kaiku_shared.settings import KaikuSettings
from kaiku_shared.tls import connect_nats

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "tls" / "make-staging-certs.sh"
TLS_CONF = REPO / "deploy" / "nats" / "tls.conf"
SERVER = Path(sys.executable).parent / "nats-server"
USERS = ("cards", "venues", "omakaiku", "notifications", "admin", "sys")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    directory = tmp_path_factory.mktemp("pki") / "tls"
    subprocess.run(["sh", str(SCRIPT), str(directory)], check=True, capture_output=True,
                   timeout=60)
    return directory


def _names(cert_file: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n) for n in san.get_values_for_type(x509.DNSName)} | \
        {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}


def test_staging_certificates_cover_compose_and_k8s_names(certs: Path) -> None:
    assert {"nats", "localhost", "127.0.0.1", "nats.kaikukortti.svc.cluster.local",
            "*.nats-headless.kaikukortti.svc.cluster.local"} <= _names(certs / "nats.crt")
    assert {"postgres", "postgres.kaikukortti.svc"} <= _names(certs / "postgres.crt")
    for key in ("ca.key", "nats.key", "postgres.key"):
        assert stat.S_IMODE((certs / key).stat().st_mode) == 0o600, key
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(certs / "ca.crt"),
                             str(certs / "nats.crt"), str(certs / "postgres.crt")],
                            capture_output=True, text=True, timeout=30)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # Run again, it refuses to overwrite the CA (that would orphan every cert).
    again = subprocess.run(["sh", str(SCRIPT), str(certs)], capture_output=True, text=True,
                           timeout=60)
    assert again.returncode != 0 and "not overwriting" in again.stderr


def _env(certs: Path, store: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NATS_")}
    env.update({f"NATS_{user.upper()}_PASSWORD": f"tls-{user}-pw" for user in USERS})
    env.update(NATS_STORE_DIR=str(store), NATS_TLS_CERT=str(certs / "nats.crt"),
               NATS_TLS_KEY=str(certs / "nats.key"))
    return env


@pytest.fixture(scope="module")
def tls_server(certs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """deploy/nats/tls.conf, unmodified, on a random port; yields ``host:port``."""
    if not SERVER.exists():
        pytest.skip(f"no nats-server at {SERVER}")
    tmp = tmp_path_factory.mktemp("nats-tls")
    ports = tmp / "ports"
    ports.mkdir()
    with (tmp / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [str(SERVER), "-c", str(TLS_CONF), "-a", "127.0.0.1", "-p", "-1", "-m", "-1",
             "--ports_file_dir", str(ports)], env=_env(certs, tmp / "store"),
            stdout=log, stderr=subprocess.STDOUT)
    try:
        yield _address(ports / f"nats-server_{process.pid}.ports", process, tmp / "server.log")
    finally:
        process.terminate()
        process.wait(timeout=10)


def _address(ports_file: Path, process: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + 10
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail("nats-server did not start:\n" + log.read_text())
        try:  # written once listening; complete JSON only at the end
            return json.loads(ports_file.read_text())["nats"][0].split("://")[-1]
        except (OSError, ValueError, KeyError, IndexError):
            time.sleep(0.02)


def _settings(address: str, user: str, **tls: str) -> KaikuSettings:
    return KaikuSettings(nats_url=f"nats://{user}:tls-{user}-pw@{address}", **tls)


async def test_a_service_connects_with_the_ca_as_compose_configures_it(
        tls_server: str, certs: Path) -> None:
    settings = _settings(tls_server, "cards", nats_tls_ca=str(certs / "ca.crt"))
    nc = await connect_nats(settings, allow_reconnect=False, connect_timeout=3,
                            inbox_prefix=settings.inbox_prefix("cards").encode())
    try:
        js = nc.jetstream()
        await js.add_stream(name="KAIKU_CARDS", subjects=["kaiku.cards.>"])
        ack = await js.publish("kaiku.cards.card_issued.v1", b"{}", stream="KAIKU_CARDS")
        assert ack.stream == "KAIKU_CARDS"
    finally:
        await nc.close()


async def test_without_the_ca_or_without_tls_nothing_connects(tls_server: str) -> None:
    with pytest.raises(Exception, match="(?i)certificate verify failed"):
        await connect_nats(_settings(tls_server, "cards"), allow_reconnect=False,
                           connect_timeout=3)
    # No plain-text service: a client that does not start TLS gets, after the
    # 300 ms grace for TLS-first clients, an INFO that demands the upgrade.
    host, port = tls_server.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=3) as raw:
        raw.settimeout(3)
        line = b""
        while b"\r\n" not in line:
            line += raw.recv(4096)
    assert line.startswith(b"INFO ")
    info = json.loads(line[5:line.index(b"\r\n")])
    assert info["tls_required"] is True
