"""``[auth] mode = "header"`` through a real server: the buyer is a header believed only from trusted proxies.

The server trusts 127.0.0.1; a client bound to 127.0.0.2 is a peer that is not a proxy.
"""

from __future__ import annotations

import aiohttp

from tests.scenarios.conftest import StartServer, start_server  # noqa: F401 - the fixture
from tests.transport.authkit import SKU, call, refusals, sale_toml, sku_state

HEADER = sale_toml(
    'mode = "header"\nheader = "X-Buyer"',
    server='trusted_proxies = ["127.0.0.1"]',
    limits="per_ip = { rate = 0.001, burst = 1 }",
)


async def test_the_header_names_the_buyer_only_from_a_trusted_proxy(start_server: StartServer) -> None:  # noqa: F811
    """From the proxy, X-Buyer is the buyer; from any other peer it is 401 with WWW-Authenticate: Bearer."""
    server = await start_server(HEADER)
    base = server.url
    outsider = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession() as proxy, aiohttp.ClientSession(connector=outsider) as direct:
        status, body, headers = await call(
            direct, "POST", f"{base}/v1/purchase", headers={"X-Buyer": "alice"}, json_body={"sku": SKU}
        )
        assert (status, body["error"]) == (401, "unauthenticated")
        assert body["detail"] == "X-Buyer is believed only from a trusted proxy, and this peer is not one"
        assert headers["WWW-Authenticate"].startswith("Bearer ")
        status, bought, _ = await call(
            proxy, "POST", f"{base}/v1/purchase", headers={"X-Buyer": "alice"}, json_body={"sku": SKU}
        )
        assert status == 200
        order_id = bought["order_id"]
        status, order, _ = await call(proxy, "GET", f"{base}/v1/orders/{order_id}", headers={"X-Buyer": "alice"})
        assert (status, order["user"]) == (200, "alice")
        for method, path in (("GET", ""), ("POST", "/pay"), ("POST", "/cancel")):
            status, answer, _ = await call(
                proxy, method, f"{base}/v1/orders/{order_id}{path}", headers={"X-Buyer": "mallory"}
            )
            assert (status, answer["error"]) == (404, "unknown_order")
            status, answer, _ = await call(
                direct, method, f"{base}/v1/orders/{order_id}{path}", headers={"X-Buyer": "alice"}
            )
            assert (status, answer["error"]) == (401, "unauthenticated")
        status, paid, _ = await call(proxy, "POST", f"{base}/v1/orders/{order_id}/pay", headers={"X-Buyer": "alice"})
        assert (status, paid["status"]) == (200, "paid")
    await server.stop()


async def test_every_refusal_is_a_json_4xx_and_changes_nothing(start_server: StartServer) -> None:  # noqa: F811
    """Missing, repeated, oversized header or a body naming someone else: 401/403, no stock moved, no token spent.

    The per-IP bucket holds one token (refilling once in 1,000 s): had any
    refused request spent it, the last purchase would be rate limited.
    """
    server = await start_server(HEADER)
    base = server.url
    async with aiohttp.ClientSession() as s:
        before = await sku_state(s, base)
        cases: list[tuple[dict[str, str], dict[str, object], int, str]] = [
            ({}, {"sku": SKU}, 401, "the trusted proxy must send X-Buyer exactly once (got 0)"),
            ({"X-Buyer": ""}, {"sku": SKU}, 401, "X-Buyer must be 1 to 128 printable characters"),
            ({"X-Buyer": "x" * 129}, {"sku": SKU}, 401, "X-Buyer must be 1 to 128 printable characters"),
            ({"X-Buyer": "alice"}, {"sku": SKU, "user": "bob"}, 403, "'user' names another buyer"),
            ({"X-Buyer": "alice"}, {"sku": SKU, "user": 7}, 400, "'user' is required and must be"),
        ]
        for headers, body, want, detail in cases:
            status, answer, got = await call(s, "POST", f"{base}/v1/purchase", headers=headers, json_body=body)
            assert status == want, answer
            assert answer["detail"].startswith(detail), answer
            assert ("WWW-Authenticate" in got) == (want == 401)
        async with s.post(
            f"{base}/v1/purchase", json={"sku": SKU}, headers=[("X-Buyer", "alice"), ("X-Buyer", "bob")]
        ) as resp:
            assert (resp.status, (await resp.json())["detail"]) == (
                401,
                "the trusted proxy must send X-Buyer exactly once (got 2)",
            )
        assert await sku_state(s, base) == before
        status, _, _ = await call(
            s, "POST", f"{base}/v1/purchase", headers={"X-Buyer": "alice"}, json_body={"sku": SKU, "user": "alice"}
        )
        assert status == 200  # the body may name the buyer, if it is the same one
        async with s.get(f"{base}/metrics") as resp:
            counted = refusals(await resp.text())
        assert (counted["unauthenticated"], counted["forbidden"]) == (4, 1)
    await server.stop()
