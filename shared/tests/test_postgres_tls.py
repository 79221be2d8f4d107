"""libpq's TLS parameters in KAIKU_DATABASE_URL reach both Postgres drivers.

asyncpg (read models, relay, tools) takes the URL itself; psycopg (the
eventsourcing write side) gets host/port/user/password/dbname from
``postgres_params`` and the TLS parameters through ``application_env`` and
``kaiku_shared.pgstore.TlsPostgresFactory``.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, urlsplit

import asyncpg
import asyncpg.connect_utils
import psycopg
import pytest
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from kaiku_shared.eventstore import application_env
from kaiku_shared.settings import KaikuSettings, postgres_params
from kaiku_dev.testcerts import make_ca

TLS_QUERY = ("sslmode=verify-full&sslrootcert=/etc/kaiku/tls/ca.crt"
             "&sslcert=/etc/kaiku/tls/client.crt&sslkey=/etc/kaiku/tls/client%20key.pem")
URL = f"postgresql://cards:pw@postgres:5432/postgres?{TLS_QUERY}"


def test_postgres_params_carry_the_tls_parameters() -> None:
    params = postgres_params(URL)
    assert params == {
        "host": "postgres", "port": "5432", "user": "cards", "password": "pw",
        "dbname": "postgres", "sslmode": "verify-full",
        "sslrootcert": "/etc/kaiku/tls/ca.crt", "sslcert": "/etc/kaiku/tls/client.crt",
        "sslkey": "/etc/kaiku/tls/client key.pem",
    }
    # Without them nothing is added (libpq's defaults apply).
    assert set(postgres_params("postgresql://u@h/db")) == {"host", "port", "user", "password",
                                                          "dbname"}


def test_each_service_url_keeps_the_query() -> None:
    settings = KaikuSettings(database_url=URL)
    for url in (settings.service_database_url("cards"), settings.maintenance_database_url()):
        assert urlsplit(url).query == TLS_QUERY
    assert settings.postgres_params["sslmode"] == "verify-full"


def test_the_write_side_connection_carries_them() -> None:
    env = application_env(KaikuSettings(database_url=URL), "cards")
    factory = InfrastructureFactory.construct(Environment("CardsApplication", env))
    kwargs = {k: v for k, v in factory.datastore.pool.kwargs.items() if k != "row_factory"}
    # What psycopg hands libpq for every pooled connection.
    conninfo = conninfo_to_dict(make_conninfo("", **kwargs))
    assert conninfo["dbname"] == "kaiku_cards"
    assert conninfo["sslmode"] == "verify-full"
    assert conninfo["sslrootcert"] == "/etc/kaiku/tls/ca.crt"
    assert conninfo["sslcert"] == "/etc/kaiku/tls/client.crt"
    assert conninfo["sslkey"] == "/etc/kaiku/tls/client key.pem"
    factory.close()


def test_the_read_side_connection_verifies_with_the_ca(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    url = (f"postgresql://cards:pw@postgres:5432/postgres"
           f"?sslmode=verify-full&sslrootcert={quote(str(ca.cert_file))}")
    dsn = KaikuSettings(database_url=url).service_database_url("cards")
    _, params = asyncpg.connect_utils._parse_connect_dsn_and_args(
        dsn=dsn, host=None, port=None, user=None, password=None, passfile=None,
        database=None, ssl=None, service=None, servicefile=None, direct_tls=None,
        server_settings=None, target_session_attrs=None, krbsrvname=None, gsslib=None)
    assert params.sslmode.name == "verify_full"
    assert params.ssl.check_hostname
    [trusted] = params.ssl.get_ca_certs()
    assert dict(x[0] for x in trusted["subject"])["commonName"] == "Kaikukortti test ca"


def _tcp_server() -> str:
    url = os.environ.get("KAIKU_DATABASE_URL", "")
    if not url or not urlsplit(url).hostname or "sslmode" in url:
        pytest.skip("needs KAIKU_DATABASE_URL of a TCP server without TLS settings")
    return url


@pytest.mark.integration  # a real PostgreSQL server
async def test_a_real_server_sees_the_drivers_ask_for_tls(tmp_path: Path) -> None:
    """Both drivers refuse a server that cannot prove itself with our CA (it has no
    TLS, or a certificate another CA signed): they asked for TLS. (TLS is settled
    before authentication, so the refusal names it whatever else is wrong.)"""
    url = _tcp_server()
    ca = make_ca(tmp_path)
    separator = "&" if urlsplit(url).query else "?"
    strict = f"{url}{separator}sslmode=verify-full&sslrootcert={quote(str(ca.cert_file))}"
    with pytest.raises((ConnectionError, OSError, asyncpg.PostgresError)) as read_side:
        await asyncpg.connect(strict, timeout=5)
    assert "ssl" in str(read_side.value).lower() or "certificate" in str(read_side.value).lower()

    env = application_env(KaikuSettings(database_url=strict), "cards")
    factory = InfrastructureFactory.construct(Environment("CardsApplication", env))
    kwargs = {k: v for k, v in factory.datastore.pool.kwargs.items() if k != "row_factory"}
    kwargs["dbname"] = urlsplit(url).path.lstrip("/") or "postgres"  # an existing database
    with pytest.raises(psycopg.OperationalError, match="(?i)ssl|certificate"):
        psycopg.connect(**kwargs, connect_timeout=5).close()
    factory.close()
