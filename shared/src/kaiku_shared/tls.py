"""TLS to NATS: one place that turns the ``KAIKU_NATS_TLS_*`` settings into the
options every connection uses (nats-py's ``nats.connect`` and faststream's
``NatsBroker``).

Postgres needs nothing here: its TLS settings are libpq's own URL parameters in
``KAIKU_DATABASE_URL`` (``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``),
which asyncpg reads from the URL and ``kaiku_shared.pgstore`` hands to psycopg.
"""

from __future__ import annotations

import ssl
from typing import Any

from .settings import KaikuSettings


def nats_tls_context(settings: KaikuSettings) -> ssl.SSLContext | None:
    """The client context, or None when no TLS setting is given (plain NATS).

    The server's certificate is always verified, with its host name: against
    ``nats_tls_ca`` when set, otherwise against the system's trusted CAs.
    """
    if not (settings.nats_tls_ca or settings.nats_tls_cert):
        return None
    if settings.nats_tls_key and not settings.nats_tls_cert:
        raise ValueError("KAIKU_NATS_TLS_KEY needs KAIKU_NATS_TLS_CERT")
    context = ssl.create_default_context(cafile=settings.nats_tls_ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.nats_tls_cert:
        context.load_cert_chain(settings.nats_tls_cert, settings.nats_tls_key)
    return context


def nats_connect_options(settings: KaikuSettings) -> dict[str, Any]:
    """Keyword arguments for ``nats.connect``: empty without TLS."""
    context = nats_tls_context(settings)
    if context is None:
        return {}
    return {"tls": context, "tls_handshake_first": settings.nats_tls_handshake_first}


def nats_broker_security(settings: KaikuSettings) -> Any:
    """faststream's ``security=`` for ``NatsBroker``: None without TLS."""
    context = nats_tls_context(settings)
    if context is None:
        return None
    from faststream.nats.security import NatsSecurity

    return NatsSecurity(ssl_context=context,
                        tls_handshake_first=settings.nats_tls_handshake_first)


async def connect_nats(settings: KaikuSettings, **options: Any) -> Any:
    """``nats.connect`` to the configured servers with the TLS options."""
    import nats

    return await nats.connect(settings.nats_servers, **options,
                              **nats_connect_options(settings))


__all__ = ["connect_nats", "nats_broker_security", "nats_connect_options", "nats_tls_context"]
