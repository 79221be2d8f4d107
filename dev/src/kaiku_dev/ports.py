"""Picking a free TCP port on 127.0.0.1 for a process that will listen on it."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same flag servers set before listening, so TIME_WAIT leftovers of our own
        # previous run do not count as "taken".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port(block: int = 1) -> int:
    """A port free to listen on, and the ``block - 1`` after it too.

    Taken below the kernel's ephemeral range: a port from inside it (what binding
    port 0 gives) can be taken, before the process that is to listen on it
    starts, by an outgoing connection as its source port (the system's own
    connections to NATS and PostgreSQL), which then holds it for as long as it
    lives."""
    low, _ = ephemeral_range()
    for _ in range(200):
        start = random.randrange(10_000, max(10_001, low - block))
        if all(port_free(start + offset) for offset in range(block)):
            return start
    with socket.socket() as sock:  # no room below the range: let the kernel choose
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
