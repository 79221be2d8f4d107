"""The client's address behind trusted proxies (KAIKU_TRUSTED_PROXIES)."""

from __future__ import annotations

import pytest

from kaiku_shared.client_address import client_address, parse_networks
from kaiku_shared.settings import KaikuSettings

WEB = parse_networks("10.0.0.0/24")
WEB_AND_EDGE = parse_networks("10.0.0.0/24, 192.0.2.10")


@pytest.mark.parametrize("peer,forwarded,trusted,expected", [
    ("10.0.0.9", ["203.0.113.7"], (), "10.0.0.9"),  # no trusted proxy: header ignored
    ("198.51.100.5", ["203.0.113.7"], WEB, "198.51.100.5"),  # not from a proxy: ignored
    ("10.0.0.9", ["198.51.100.1, 203.0.113.7"], WEB, "203.0.113.7"),
    ("10.0.0.9", ["198.51.100.1", "203.0.113.7"], WEB, "203.0.113.7"),  # repeated header
    # the web, behind the operator's edge proxy: both vouch, the browser is the client
    ("10.0.0.9", ["spoofed, 203.0.113.7, 192.0.2.10"], WEB_AND_EDGE, "203.0.113.7"),
    ("10.0.0.9", ["10.0.0.8"], WEB, "10.0.0.8"),  # nothing further left: the last proxy
    ("10.0.0.9", [], WEB, "10.0.0.9"),
    ("10.0.0.9", [" , "], WEB, "10.0.0.9"),
    (None, [], (), "unknown"),
    ("2001:db8:1:2:3:4:5:6", [], (), "2001:db8:1:2::/64"),  # an IPv6 host's whole /64
    ("::ffff:192.0.2.1", [], (), "192.0.2.1"),
    ("::ffff:10.0.0.9", ["203.0.113.7"], WEB, "203.0.113.7"),  # a mapped proxy address
    ("10.0.0.9", ["not-an-address"], WEB, "not-an-address"),
    ("10.0.0.9", ["x" * 5000], WEB, "x" * 100),
])
def test_the_client_address(peer, forwarded, trusted, expected) -> None:
    assert client_address(peer, forwarded, trusted) == expected


def test_a_client_talking_to_the_api_directly_cannot_pose_as_anyone() -> None:
    for claimed in ("203.0.113.1", "10.0.0.9, 203.0.113.1", "203.0.113.1, 10.0.0.9"):
        assert client_address("198.51.100.5", [claimed], WEB) == "198.51.100.5"


def test_the_setting_is_checked_at_start() -> None:
    assert KaikuSettings(trusted_proxies="10.0.0.0/8, ::1").trusted_proxy_networks
    assert KaikuSettings().trusted_proxy_networks == ()
    with pytest.raises(ValueError, match="not an address or network"):
        KaikuSettings(trusted_proxies="10.0.0.0/8, the web")
