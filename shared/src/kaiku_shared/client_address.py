"""Which address a request came from, for the sign-in limits.

``X-Forwarded-For`` is believed only as far as it was written by a trusted proxy
(``KAIKU_TRUSTED_PROXIES``: the networks of the web and of the operator's reverse
proxy). Walking from the connection's peer leftwards, each hop that is a trusted
proxy vouches for the entry before it; the first hop that is not trusted is the
client. A client that talks to an api directly cannot make itself look like
anyone else, whatever it writes in the header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_ADDRESS_LENGTH = 100
MAX_HOPS = 20


def parse_networks(text: str) -> tuple[Network, ...]:
    """``10.0.0.0/8, 127.0.0.1`` → networks; raises ValueError naming a bad one."""
    networks = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"{part!r} is not an address or network") from None
    return tuple(networks)


def normalised(address: str) -> str:
    """One spelling per address; IPv6 by its /64, as one line or host usually
    holds a whole /64 and could otherwise guess from each of its addresses."""
    text = address.strip()[:MAX_ADDRESS_LENGTH]
    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        return text.lower() or "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(parsed) >> 64 << 64, 64)))
    return str(parsed)


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return any(parsed in network for network in networks)


def client_address(peer: str | None, forwarded_for: list[str],
                   trusted: Sequence[Network]) -> str:
    """The client's address from the connection's peer and the X-Forwarded-For
    header values (in the order received)."""
    hop = (peer or "unknown").strip()
    entries = [e.strip() for value in forwarded_for for e in value.split(",") if e.strip()]
    for entry in reversed(entries[-MAX_HOPS:]):
        if not _trusted(hop, trusted):
            break
        hop = entry
    return normalised(hop)
