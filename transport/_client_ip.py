"""Which address a request comes from, for the per-IP rate limit.

By default, the socket's peer: nothing a client writes can change it.
``X-Forwarded-For`` is read only when the peer is one of
``server.trusted_proxies``. Then the chain is walked from the right (the hop
nearest to us) past every trusted proxy, and the first address that is not
one is the client. Everything left of it was written by the client or by
proxies we do not know, so a client cannot choose its own address by
sending the header: a trusted proxy appends the address it saw, and that is
the one found. An entry that is not an address stops the walk at the last
trusted hop, so garbage never becomes a limiter key of its own.

An IPv6 client is limited by its /64 network (``2001:db8:1:2::/64``), the
block one subscriber line or host usually gets: a client that can pick any
of its 2^64 addresses must not get a fresh bucket with each.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


IPV6_PREFIX = 64
"""IPv6 clients are told apart by this many leading bits."""


def _key(ip: Address) -> str:
    """The per-IP limiter key of ``ip``: the address itself, or its /64 for IPv6."""
    if ip.version == 4:
        return str(ip)
    return str(ipaddress.IPv6Network((int(ip) >> (128 - IPV6_PREFIX) << (128 - IPV6_PREFIX), IPV6_PREFIX)))


@lru_cache(maxsize=4096)
def _peer_key(peer: str) -> str:
    """The key of a socket peer written by the kernel (IPv6 or IPv4-mapped only; cached: peers repeat)."""
    ip = _address(peer)
    return peer if ip is None else _key(ip)


def _address(text: str) -> Address | None:
    """``text`` as an address (IPv4-mapped IPv6 unwrapped), or ``None`` if it is not one."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class ClientIp:
    """Resolves a request's client address; built once from ``trusted_proxies``."""

    __slots__ = ("_is_trusted", "_networks")

    def __init__(self, trusted_proxies: tuple[str, ...] = ()) -> None:
        self._networks: tuple[Network, ...] = tuple(ipaddress.ip_network(n) for n in trusted_proxies)
        # Peers repeat (a few proxies, many keep-alive requests): remember the verdicts, boundedly.
        self._is_trusted = lru_cache(maxsize=4096)(self._trusted)

    def _trusted(self, ip: Address) -> bool:
        return any(ip.version == n.version and ip in n for n in self._networks)

    def __call__(self, request: web.Request) -> str | None:
        """The client's address as a canonical string (an IPv6 client's /64), or ``None`` (no socket peer)."""
        peer = request.remote
        if not peer:
            return None
        if not self._networks:
            return _peer_key(peer) if ":" in peer else peer
        peer_ip = _address(peer)
        if peer_ip is None:
            return peer
        if not self._is_trusted(peer_ip):
            return _key(peer_ip)
        found = peer_ip
        hops = [h for header in request.headers.getall("X-Forwarded-For", ()) for h in header.split(",")]
        for hop in reversed(hops):
            ip = _address(hop)
            if ip is None:
                break
            found = ip
            if not self._is_trusted(ip):
                break
        return _key(found)
