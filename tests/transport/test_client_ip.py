"""The per-IP limit over HTTP: the socket peer by default, X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

from itertools import count
from typing import Any

from aiohttp.test_utils import TestClient

from flashsale import LimitsConfig, ManualClock, SkuConfig
from flashsale.actors import BucketSpec
from flashsale.transport._client_ip import _peer_key

from .conftest import MakeClient

PER_IP = LimitsConfig(per_ip=BucketSpec(rate=1.0, burst=1))
_users = count()


async def buy(client: TestClient[Any, Any], *forwarded: str) -> int:
    """POST one purchase (a new user each time) with the given X-Forwarded-For headers; return the status."""
    headers = [("X-Forwarded-For", value) for value in forwarded]
    resp = await client.post("/v1/purchase", json={"sku": "tshirt", "user": f"u{next(_users)}"}, headers=headers)
    return resp.status


async def test_socket_peer_by_default_and_spoofing_does_not_help(make_client: MakeClient) -> None:
    """With no trusted proxies, every request from one socket address shares its bucket, whatever it claims."""
    client = await make_client(SkuConfig("tshirt", 1000), clock=ManualClock(), limits=PER_IP)
    assert await buy(client) == 200
    resp = await client.post(
        "/v1/purchase", json={"sku": "tshirt", "user": "x"}, headers={"X-Forwarded-For": "203.0.113.5"}
    )
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "1"
    assert await resp.json() == {
        "error": "rate_limited",
        "detail": "too many requests from this address",
        "retry_after": 1.0,
    }
    for spoof in ["198.51.100.1", "198.51.100.2, 198.51.100.3", "::1", "10.0.0.1"]:
        assert await buy(client, spoof) == 429


async def test_untrusted_peer_header_is_ignored(make_client: MakeClient) -> None:
    """Trusted proxies configured, but the peer is not one of them: its X-Forwarded-For is ignored."""
    client = await make_client(
        SkuConfig("tshirt", 1000), clock=ManualClock(), limits=PER_IP, trusted_proxies=("10.0.0.0/8", "fd00::/8")
    )
    assert await buy(client, "198.51.100.1") == 200
    assert await buy(client, "198.51.100.2") == 429  # both were 127.0.0.1


async def test_trusted_proxy_chain_gives_the_rightmost_untrusted_address(make_client: MakeClient) -> None:
    """From a trusted proxy, the chain is walked from the right past trusted hops; what clients prepend is ignored."""
    client = await make_client(
        SkuConfig("tshirt", 1000), clock=ManualClock(), limits=PER_IP, trusted_proxies=("127.0.0.1", "10.0.0.0/8")
    )
    assert await buy(client, "203.0.113.9, 198.51.100.7") == 200  # the client claimed 203.0.113.9: not believed
    assert await buy(client, "198.51.100.7") == 429
    assert await buy(client, "203.0.113.9") == 200  # a fresh address: the first request did not use it
    assert await buy(client, "192.0.2.99, 10.1.2.3, 10.9.9.9") == 200  # past two trusted inner proxies
    assert await buy(client, "192.0.2.99") == 429
    assert await buy(client, "192.0.2.50", "10.0.0.7") == 200  # several headers form one chain
    assert await buy(client, "192.0.2.50") == 429
    assert await buy(client, "::ffff:192.0.2.50") == 429  # an IPv4-mapped address is the same address
    assert await buy(client, "10.0.0.1, 10.0.0.2") == 200  # every hop trusted: the first one
    assert await buy(client, "10.0.0.1") == 429
    assert await buy(client) == 200  # no header: the proxy itself
    assert await buy(client, "2001:db8::5") == 200
    assert await buy(client, "2001:db8:0:0::5") == 429  # the same address, spelled differently
    assert await buy(client, "2001:db8::ffff:1234:5678:9abc") == 429  # another address of the same /64
    assert await buy(client, "2001:db8:0:1::5") == 200  # the next /64: another client


async def test_malformed_forwarded_values_fall_back_to_the_last_trusted_hop(make_client: MakeClient) -> None:
    """A hop that is not an address stops the walk at the trusted proxy: garbage never gets a bucket of its own."""
    client = await make_client(
        SkuConfig("tshirt", 1000), clock=ManualClock(), limits=PER_IP, trusted_proxies=("127.0.0.1",)
    )
    assert await buy(client, "not-an-ip") == 200  # counted against 127.0.0.1
    for junk in ["", " , ", "garbage", "192.0.2.1, garbage", "1.2.3.4:8080", "999.1.1.1", "unknown", "1.2.3.4 5.6.7.8"]:
        assert await buy(client, junk) == 429, junk
    assert await buy(client, "garbage, 192.0.2.77") == 200  # the proxy's own entry is valid: that is the client
    assert await buy(client, " 192.0.2.77 ") == 429


async def test_an_ipv6_socket_peer_is_limited_by_its_64(make_client: MakeClient) -> None:
    """From an IPv6 socket peer (no proxies), the key is the peer's /64, so rotating addresses does not help."""
    client = await make_client(SkuConfig("tshirt", 1000), clock=ManualClock(), limits=PER_IP, host="::1")
    assert await buy(client) == 200
    assert await buy(client, "198.51.100.1") == 429  # ::1's bucket, whatever the header says
    assert _peer_key("::1") == "::/64"
    assert _peer_key("2001:db8:1:2:aaaa::1") == _peer_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert _peer_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert _peer_key("::ffff:192.0.2.1") == "192.0.2.1"  # IPv4 on a dual-stack socket: the IPv4 address
