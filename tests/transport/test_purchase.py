"""The purchase contract over HTTP: every answer's status and body."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from flashsale import LimitsConfig, ManualClock, SkuConfig, from_datetime
from flashsale.actors import BucketSpec
from flashsale.transport import ENGINE
from tests.ids import plain

from .conftest import MakeClient, stored_orders


async def test_reserved_answer_has_the_order(make_client: MakeClient) -> None:
    """A winning purchase answers 200 with order id, sku, qty and an ISO expiry."""
    client = await make_client()
    resp = await client.post("/v1/purchase", json={"sku": "moutai-53", "user": "alice"})
    assert resp.status == 200
    body = await resp.json()
    assert body["result"] == "reserved"
    assert body["sku"] == "moutai-53"
    assert body["qty"] == 1
    assert plain(body["order_id"]) == "moutai-53-1"
    assert body["expires_at"].endswith("Z")
    assert body["order_id"] in stored_orders(client)


async def test_sold_out_is_409(make_client: MakeClient) -> None:
    """Once the stock is gone, buyers get 409 sold_out in the error shape."""
    client = await make_client(SkuConfig("rare", stock=1))
    assert (await client.post("/v1/purchase", json={"sku": "rare", "user": "a"})).status == 200
    resp = await client.post("/v1/purchase", json={"sku": "rare", "user": "b"})
    assert resp.status == 409
    assert (await resp.json())["error"] == "sold_out"


async def test_per_user_limit_is_409_limit_reached(make_client: MakeClient) -> None:
    """A buyer past their limit gets 409 limit_reached and nothing is stored."""
    client = await make_client(SkuConfig("moutai-53", stock=10, per_user_limit=2))
    assert (await client.post("/v1/purchase", json={"sku": "moutai-53", "user": "a", "qty": 2})).status == 200
    resp = await client.post("/v1/purchase", json={"sku": "moutai-53", "user": "a"})
    assert resp.status == 409
    assert (await resp.json())["error"] == "limit_reached"
    assert len(stored_orders(client)) == 1


async def test_sale_not_open_carries_the_window(make_client: MakeClient) -> None:
    """Before the start, 409 sale_not_open names the window; at the start it sells."""
    start = from_datetime(datetime(2026, 11, 11, tzinfo=UTC))
    clock = ManualClock(start - 1)
    client = await make_client(SkuConfig("moutai-53", stock=5, starts_at=start), clock=clock)
    resp = await client.post("/v1/purchase", json={"sku": "moutai-53", "user": "a"})
    assert resp.status == 409
    body = await resp.json()
    assert body["error"] == "sale_not_open"
    assert body["starts_at"] == "2026-11-11T00:00:00.000000Z"
    assert body["ends_at"] is None
    assert (await (await client.get("/v1/skus/moutai-53")).json())["state"] == "scheduled"
    clock.set(start)
    assert (await client.post("/v1/purchase", json={"sku": "moutai-53", "user": "a"})).status == 200


async def test_rate_limited_is_429_with_retry_after(make_client: MakeClient) -> None:
    """Past the per-user bucket, 429 rate_limited with a Retry-After in whole seconds."""
    clock = ManualClock()
    client = await make_client(
        SkuConfig("tshirt", stock=100), clock=clock, limits=LimitsConfig(per_user=BucketSpec(rate=0.5, burst=1))
    )
    assert (await client.post("/v1/purchase", json={"sku": "tshirt", "user": "a"})).status == 200
    resp = await client.post("/v1/purchase", json={"sku": "tshirt", "user": "a"})
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "2"
    assert (await resp.json())["error"] == "rate_limited"
    clock.advance(2)
    assert (await client.post("/v1/purchase", json={"sku": "tshirt", "user": "a"})).status == 200


async def test_idempotency_key_replays_and_refuses_other_bodies(make_client: MakeClient) -> None:
    """Same key + body gets the identical answer; same key + other body gets 422."""
    client = await make_client(SkuConfig("tshirt", stock=100))
    headers = {"Idempotency-Key": "order-42"}
    first = await client.post("/v1/purchase", json={"sku": "tshirt", "user": "a"}, headers=headers)
    again = await client.post("/v1/purchase", json={"sku": "tshirt", "user": "a"}, headers=headers)
    assert (first.status, await first.read()) == (again.status, await again.read())
    other = await client.post("/v1/purchase", json={"sku": "tshirt", "user": "a", "qty": 2}, headers=headers)
    assert other.status == 422
    assert (await other.json())["error"] == "idempotency_key_reused"
    assert len(stored_orders(client)) == 1


async def test_get_sku_and_order(make_client: MakeClient) -> None:
    """GET /v1/skus/{sku} shows the counters; GET /v1/orders/{id} shows the order."""
    client = await make_client(SkuConfig("tshirt", stock=10))
    order_id = (await (await client.post("/v1/purchase", json={"sku": "tshirt", "user": "a", "qty": 3})).json())[
        "order_id"
    ]
    sku = await (await client.get("/v1/skus/tshirt")).json()
    assert {k: sku[k] for k in ("sku", "stock", "remaining", "reserved", "paid", "state")} == {
        "sku": "tshirt",
        "stock": 10,
        "remaining": 7,
        "reserved": 3,
        "paid": 0,
        "state": "on_sale",
    }
    order = await (await client.get(f"/v1/orders/{order_id}", params={"user": "a"})).json()
    assert {k: order[k] for k in ("order_id", "sku", "user", "qty", "status")} == {
        "order_id": order_id,
        "sku": "tshirt",
        "user": "a",
        "qty": 3,
        "status": "reserved",
    }
    assert order["created_at"] < order["expires_at"]


async def test_unknown_sku_and_order_are_404(make_client: MakeClient) -> None:
    """Unknown SKUs and orders answer 404 with their own error codes."""
    client = await make_client()
    resp = await client.get("/v1/skus/nope")
    assert (resp.status, (await resp.json())["error"]) == (404, "unknown_sku")
    resp = await client.get("/v1/orders/nope-1?user=alice")
    assert (resp.status, (await resp.json())["error"]) == (404, "unknown_order")


async def test_async_durability_answers_before_commit_and_still_stores(make_client: MakeClient) -> None:
    """With durability = "async" a reserved order is answered and, after a flush, stored."""
    client = await make_client(SkuConfig("tshirt", stock=5), durability="async")
    body = await (await client.post("/v1/purchase", json={"sku": "tshirt", "user": "a"})).json()
    await client.app[ENGINE].flush()  # type: ignore[index]
    assert body["order_id"] in stored_orders(client)


async def test_window_edges_to_the_microsecond(make_client: MakeClient) -> None:
    """starts_at - 1 µs: 409 scheduled; starts_at: sells; ends_at - 1 µs: sells; ends_at: 409 ended."""
    start = from_datetime(datetime(2026, 11, 11, tzinfo=UTC))
    end = start + 600_000_000
    clock = ManualClock()
    client = await make_client(SkuConfig("moutai-53", stock=5, starts_at=start, ends_at=end), clock=clock)
    window = {"starts_at": "2026-11-11T00:00:00.000000Z", "ends_at": "2026-11-11T00:10:00.000000Z"}

    async def at(instant: int, user: str) -> tuple[int, dict[str, object], str]:
        clock.set(instant)
        resp = await client.post("/v1/purchase", json={"sku": "moutai-53", "user": user})
        state = (await (await client.get("/v1/skus/moutai-53")).json())["state"]
        return resp.status, await resp.json(), state

    status, body, state = await at(start - 1, "a")
    assert (status, state) == (409, "scheduled")
    assert body == {"error": "sale_not_open", "detail": "the sale has not started yet", "sku": "moutai-53", **window}
    assert (await at(start, "b"))[0::2] == (200, "on_sale")
    assert (await at(end - 1, "c"))[0::2] == (200, "on_sale")
    status, body, state = await at(end, "d")
    assert (status, state) == (409, "ended")
    assert body == {"error": "sale_not_open", "detail": "the sale has ended", "sku": "moutai-53", **window}


async def test_full_queue_is_503_at_once(make_client: MakeClient) -> None:
    """With a leaky bucket's queue full, a purchase is answered 503 overloaded without waiting."""
    clock = ManualClock()
    limits = LimitsConfig(per_sku=BucketSpec(rate=1.0, burst=1, algorithm="leaky", queue=1))
    client = await make_client(SkuConfig("tshirt", stock=100), clock=clock, limits=limits, tick_interval=0)
    engine = client.app[ENGINE]  # type: ignore[index]
    assert (await client.post("/v1/purchase", json={"sku": "tshirt", "user": "a"})).status == 200
    waiting = asyncio.create_task(engine.purchase("tshirt", "b"))
    assert (await asyncio.create_task(engine.tick())).queued == 1
    resp = await client.post("/v1/purchase", json={"sku": "tshirt", "user": "c"})
    assert resp.status == 503
    assert (await resp.json())["error"] == "overloaded"
    assert not waiting.done()
    assert "flashsale_limiter_queued 1.0\n" in await (await client.get("/metrics")).text()
    clock.advance(1)
    assert (await engine.tick()).released == 1
    assert (await waiting).result == "reserved"
    assert "flashsale_limiter_queued 0.0\n" in await (await client.get("/metrics")).text()
