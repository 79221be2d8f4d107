"""Ports for processes to listen on are picked outside the kernel's ephemeral range."""

import socket

from kaiku_dev.ports import ephemeral_range, free_port, port_free


def test_a_free_block_lies_below_the_ephemeral_range_and_can_be_listened_on():
    low, _ = ephemeral_range()
    for _ in range(20):
        start = free_port(block=4)
        assert 10_000 <= start and start + 3 < low
        assert all(port_free(start + offset) for offset in range(4))


def test_a_port_someone_listens_on_is_not_free():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen()
        assert not port_free(sock.getsockname()[1])
