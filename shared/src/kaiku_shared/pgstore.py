"""eventsourcing.postgres with libpq's TLS parameters.

The library hands psycopg only dbname/host/port/user/password, so a
``sslmode=verify-full&sslrootcert=…`` in ``KAIKU_DATABASE_URL`` would be lost
on the write side. This factory is the library's own, plus those parameters
(``POSTGRES_SSLMODE``, ``POSTGRES_SSLROOTCERT``, ``POSTGRES_SSLCERT``,
``POSTGRES_SSLKEY`` in the application's environment; ``application_env``
sets them from the URL). The pool is not opened yet when they are added, so
every connection it makes carries them.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.postgres import PostgresFactory

from .settings import LIBPQ_TLS_PARAMS


def tls_env_key(param: str) -> str:
    return f"POSTGRES_{param.upper()}"


class TlsPostgresFactory(PostgresFactory):
    def __init__(self, env: Any) -> None:
        super().__init__(env)
        tls = {param: value for param in LIBPQ_TLS_PARAMS
               if (value := self.env.get(tls_env_key(param)))}
        self.datastore.pool.kwargs.update(tls)


__all__ = ["TlsPostgresFactory", "tls_env_key"]
