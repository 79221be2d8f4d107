"""Embedded NATS + PostgreSQL: real servers start, persist data, and leave no processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import psutil
import pytest

from kaiku_dev.embedded import EmbeddedServers


def _gone(pid: int) -> bool:
    # A zombie waiting for init to reap it is as dead as a process gets.
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[EmbeddedServers]:
    embedded = EmbeddedServers(tmp_path / "kaiku")
    try:
        yield embedded
    finally:
        embedded.stop()  # even when the test failed half-way


@pytest.mark.asyncio
async def test_start_persist_stop_and_restart(servers: EmbeddedServers) -> None:
    nats_url, database_url = servers.start()
    assert servers.start() == (nats_url, database_url)  # idempotent
    assert nats_url.startswith("nats://127.0.0.1:")
    assert not nats_url.endswith(":4222")
    assert database_url.startswith("postgresql://postgres@/postgres?host=/")

    stream = f"EMB_{uuid.uuid4().hex[:8].upper()}"
    subject = f"{stream.lower()}.hello"
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
    ack = await js.publish(subject, b"persist me")
    sub = await js.pull_subscribe(subject, durable="reader", stream=stream)
    (msg,) = await sub.fetch(1, timeout=5)
    assert msg.data == b"persist me"
    await msg.ack()
    await nc.close()

    conn = await asyncpg.connect(database_url)
    await conn.execute("CREATE TABLE things (id int PRIMARY KEY, name text)")
    await conn.execute("INSERT INTO things VALUES (1, 'kept')")
    assert await conn.fetchval("SELECT name FROM things WHERE id = 1") == "kept"
    await conn.execute("CREATE DATABASE emb_other")
    await conn.close()

    psycopg = pytest.importorskip("psycopg")  # eventsourcing's driver takes the same URL
    with psycopg.connect(database_url) as pconn:
        assert pconn.execute("SELECT count(*) FROM things").fetchone() == (1,)

    nats_pid, pg_pid = servers.nats_pid, servers.postgres_pid
    assert nats_pid is not None and pg_pid is not None
    pg_children = [p.pid for p in psutil.Process(pg_pid).children(recursive=True)]
    servers.stop()
    servers.stop()  # safe twice
    assert _gone(nats_pid)
    assert all(_gone(pid) for pid in [pg_pid, *pg_children])
    assert servers.nats_pid is None and servers.postgres_pid is None

    # Same data dir again: same port, and everything written above is still there.
    nats_url2, database_url2 = servers.start()
    assert nats_url2 == nats_url
    assert servers.nats_pid != nats_pid

    nc = await nats.connect(nats_url2)
    js = nc.jetstream()
    info = await js.stream_info(stream)
    assert info.state.messages == 1
    assert (await js.get_msg(stream, ack.seq)).data == b"persist me"
    assert (await js.consumer_info(stream, "reader")).num_pending == 0  # the ack survived
    await nc.close()

    conn = await asyncpg.connect(database_url2)
    assert await conn.fetchval("SELECT name FROM things WHERE id = 1") == "kept"
    assert await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'emb_other'") == 1
    await conn.close()


def test_given_urls_are_passed_through(tmp_path: Path) -> None:
    data_dir = tmp_path / "unused"
    with EmbeddedServers(
        data_dir, nats_url="nats://nats.example:4222", database_url="postgresql://u@db/x"
    ) as embedded:
        assert embedded.start() == ("nats://nats.example:4222", "postgresql://u@db/x")
        assert embedded.nats_pid is None and embedded.postgres_pid is None
    assert not data_dir.exists()  # nothing started, nothing written


@pytest.mark.asyncio
async def test_only_postgres_in_a_deep_dir(tmp_path: Path) -> None:
    # Deeper than a unix socket path may be (~107 bytes): the socket must go elsewhere.
    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 5)
    assert len(str(deep / "pg" / ".s.PGSQL.5432")) > 108
    with EmbeddedServers(deep, nats_url="nats://given:1") as embedded:
        nats_url, database_url = embedded.start()
        assert nats_url == "nats://given:1"
        assert embedded.nats_pid is None
        conn = await asyncpg.connect(database_url)
        assert await conn.fetchval("SELECT 41 + 1") == 42
        await conn.close()
        pg_pid = embedded.postgres_pid
    assert pg_pid is not None and _gone(pg_pid)


def test_second_instance_shares_and_stops_nothing(servers: EmbeddedServers) -> None:
    urls = servers.start()
    other = EmbeddedServers(servers.data_dir)
    assert other.start() == urls
    assert not other.owner and other.nats_pid is None
    other.stop()
    assert not _gone(servers.nats_pid or 0)
    assert not _gone(servers.postgres_pid or 0)


def test_servers_of_a_killed_owner_are_cleaned_up(tmp_path: Path) -> None:
    data_dir = tmp_path / "kaiku"
    src = Path(__file__).resolve().parents[1] / "src"
    script = textwrap.dedent(
        f"""
        import sys
        from kaiku_dev.embedded import EmbeddedServers
        s = EmbeddedServers({str(data_dir)!r})
        s.start()
        print(s.nats_pid, s.postgres_pid, flush=True)
        sys.stdin.read()
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    ) as owner:
        assert owner.stdout is not None
        old_nats, old_pg = map(int, owner.stdout.readline().split())
        owner.send_signal(signal.SIGKILL)  # no atexit, no stop(): both servers orphaned
    assert not _gone(old_nats) and not _gone(old_pg)

    with EmbeddedServers(data_dir) as embedded:
        assert embedded.owner
        assert _gone(old_nats)  # the orphaned NATS was stopped ...
        assert embedded.postgres_pid == old_pg  # ... the orphaned postgres adopted
    assert _gone(old_pg)
