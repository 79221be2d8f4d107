"""An outage of the database is told apart from a fault of the work itself:
the one is held and retried (503 to a caller), the other is recorded, retried a
bounded number of times and dead-lettered (500 to a caller)."""

import asyncpg
import eventsourcing.persistence as event_store
import psycopg

from kaiku_shared.consumer import is_transient
from kaiku_shared.db import is_database_unavailable


def wrapped(cause: BaseException) -> BaseException:
    """As eventsourcing raises it: its own error, from psycopg's."""
    try:
        try:
            raise cause
        except psycopg.Error as error:
            raise event_store.OperationalError(str(error)) from error
    except event_store.OperationalError as outer:
        return outer


def test_lost_connections_are_outages():
    assert is_database_unavailable(ConnectionRefusedError())
    assert is_database_unavailable(psycopg.OperationalError("server closed the connection"))
    assert is_database_unavailable(wrapped(psycopg.OperationalError("terminated")))
    assert is_database_unavailable(asyncpg.exceptions.CannotConnectNowError())


def test_a_statement_failing_inside_a_pipeline_is_not_an_outage():
    aborted = psycopg.errors.PipelineAborted("pipeline aborted")
    assert isinstance(aborted, psycopg.OperationalError)  # why it needs telling apart
    assert not is_database_unavailable(aborted)
    assert not is_database_unavailable(wrapped(aborted))
    assert not is_transient(wrapped(aborted))


def test_faults_of_the_work_are_not_outages():
    assert not is_database_unavailable(ValueError("bad"))
    assert not is_database_unavailable(psycopg.errors.UndefinedTable("no such table"))


def test_serialization_conflicts_are_transient_but_not_outages():
    conflict = asyncpg.exceptions.SerializationError()
    assert is_transient(conflict)
    assert not is_database_unavailable(conflict)
