"""Which address a request came from, for the sign-in throttle.

``X-Forwarded-For`` is honoured only as far as the operator says there are
trusted proxies in front of the service (``trusted_hops``; 0 = none): each
trusted proxy appends the address it saw, so the client is the entry that many
places from the right. Anything further left was written by the client and could
be anything.
"""

from __future__ import annotations

import ipaddress

MAX_ADDRESS_LENGTH = 100


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


def client_address(peer: str | None, forwarded_for: list[str], trusted_hops: int) -> str:
    """The client's address from the connection's peer and the X-Forwarded-For
    header values (in the order received)."""
    if trusted_hops > 0:
        hops = [entry.strip() for value in forwarded_for for entry in value.split(",")]
        hops = [entry for entry in hops if entry]
        if hops:
            # Shorter than the trusted chain: every entry came from a trusted proxy.
            return normalised(hops[-trusted_hops] if len(hops) >= trusted_hops else hops[0])
    return normalised(peer or "unknown")
