"""``[auth] mode = "trusted"`` through a real server: the gateway names the buyer; orders act only for it."""

from __future__ import annotations

import secrets

import aiohttp

from tests.ids import plain
from tests.scenarios.conftest import StartServer, start_server  # noqa: F401 - the fixture
from tests.transport.authkit import SKU, call, refusals, sale_toml, sku_state

TRUSTED = sale_toml('mode = "trusted"')


async def test_each_order_route_acts_only_for_its_buyer(start_server: StartServer) -> None:  # noqa: F811
    """GET, pay and cancel as another buyer answer exactly what a missing id answers; nothing changes."""
    server = await start_server(TRUSTED)
    base = server.url
    async with aiohttp.ClientSession() as s:
        status, bought, _ = await call(s, "POST", f"{base}/v1/purchase", json_body={"sku": SKU, "user": "alice"})
        assert status == 200
        order_id = bought["order_id"]
        before = await sku_state(s, base)
        missing = order_id[:-1] + ("0" if order_id[-1] != "0" else "1")  # the same shape, no such order
        for method, path, body in (
            ("GET", "?user=mallory", None),
            ("POST", "/pay", {"user": "mallory"}),
            ("POST", "/cancel", {"user": "mallory"}),
        ):
            theirs = await call(s, method, f"{base}/v1/orders/{order_id}{path}", json_body=body)
            nothing = await call(s, method, f"{base}/v1/orders/{missing}{path}", json_body=body)
            assert theirs[0] == nothing[0] == 404
            assert theirs[1] == {"error": "unknown_order", "detail": f"there is no order {order_id!r}"}
            assert nothing[1] == {"error": "unknown_order", "detail": f"there is no order {missing!r}"}
        assert await sku_state(s, base) == before
        status, mine, _ = await call(s, "GET", f"{base}/v1/orders/{order_id}?user=alice")
        assert (status, mine["user"], mine["status"]) == (200, "alice", "reserved")
        status, paid, _ = await call(s, "POST", f"{base}/v1/orders/{order_id}/pay", json_body={"user": "alice"})
        assert (status, paid["status"]) == (200, "paid")
        status, other, _ = await call(s, "POST", f"{base}/v1/purchase", json_body={"sku": SKU, "user": "bob"})
        status, cancelled, _ = await call(
            s, "POST", f"{base}/v1/orders/{other['order_id']}/cancel", json_body={"user": "bob"}
        )
        assert (status, cancelled["status"]) == (200, "cancelled")
    await server.stop()


async def test_a_walk_of_a_thousand_guessed_ids_finds_nothing(start_server: StartServer) -> None:  # noqa: F811
    """Ids are <sku>-<n>-<64-bit tag>: 1,000 guesses (right numbers, made-up tags) all answer 404, on every route."""
    server = await start_server(TRUSTED)
    base = server.url
    async with aiohttp.ClientSession() as s:
        real = []
        for i in range(20):
            _, body, _ = await call(s, "POST", f"{base}/v1/purchase", json_body={"sku": SKU, "user": f"u{i}"})
            real.append(body["order_id"])
        assert sorted(plain(o) for o in real) == sorted(f"{SKU}-{n}" for n in range(1, 21))
        before = await sku_state(s, base)
        found = 0
        for k in range(1000):
            n = 1 + k % 25
            guess = f"{SKU}-{n}-{secrets.token_hex(8)}" if k % 10 else f"{SKU}-{n}"
            user = f"u{n - 1}"  # even the buyer of order n cannot reach it without its tag
            route = k % 3
            if route == 0:
                status, _, _ = await call(s, "GET", f"{base}/v1/orders/{guess}?user={user}")
            else:
                action = "pay" if route == 1 else "cancel"
                status, _, _ = await call(s, "POST", f"{base}/v1/orders/{guess}/{action}", json_body={"user": user})
            found += status != 404
        assert found == 0
        assert await sku_state(s, base) == before
    await server.stop()


async def test_the_buyer_must_be_named_on_every_route(start_server: StartServer) -> None:  # noqa: F811
    """Trusted mode: no ?user= / body user is 400 invalid_request, and bad bodies are JSON 400s; nothing moves."""
    server = await start_server(TRUSTED)
    base = server.url
    async with aiohttp.ClientSession() as s:
        _, bought, _ = await call(s, "POST", f"{base}/v1/purchase", json_body={"sku": SKU, "user": "alice"})
        order_id = bought["order_id"]
        before = await sku_state(s, base)
        cases = [
            ("GET", f"/v1/orders/{order_id}", None, None, "'user' (the ?user= query parameter) is required"),
            ("GET", f"/v1/orders/{order_id}?user=", None, None, "'user' (the ?user= query parameter) is required"),
            ("GET", f"/v1/orders/{order_id}?user=alice&user=bob", None, None, "name the buyer once"),
            ("POST", f"/v1/orders/{order_id}/pay", None, None, "'user' is required"),
            ("POST", f"/v1/orders/{order_id}/pay", {}, None, "'user' is required"),
            ("POST", f"/v1/orders/{order_id}/cancel", {"user": 5}, None, "'user' is required"),
            ("POST", f"/v1/orders/{order_id}/cancel", {"user": "alice", "x": 1}, None, "the body must be"),
            ("POST", f"/v1/orders/{order_id}/cancel", [1], None, "the body must be"),
            ("POST", f"/v1/orders/{order_id}/pay", None, b"{nope", "the body is not valid JSON"),
            ("POST", f"/v1/orders/{order_id}/pay", {"user": "x" * 129}, None, "'user' must be a non-empty string"),
            ("POST", "/v1/purchase", {"sku": SKU}, None, "'user' is required"),
            ("POST", "/v1/purchase", {"sku": SKU, "user": ""}, None, "'user' is required"),
        ]
        for method, path, body, raw, detail in cases:
            status, answer, _ = await call(s, method, f"{base}{path}", json_body=body, data=raw)
            assert (status, answer["error"]) == (400, "invalid_request"), (path, body, answer)
            assert answer["detail"].startswith(detail), (path, body, answer)
        assert await sku_state(s, base) == before
        _, mine, _ = await call(s, "GET", f"{base}/v1/orders/{order_id}?user=alice")
        assert mine["status"] == "reserved"
        async with s.get(f"{base}/metrics") as resp:
            assert refusals(await resp.text())["invalid_request"] == len(cases)
    await server.stop()
