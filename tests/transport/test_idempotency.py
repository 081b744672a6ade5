"""Idempotency-Key over HTTP: concurrent retries buy once and all get the same bytes."""

from __future__ import annotations

import asyncio
from collections import Counter

from flashsale import LimitsConfig, SkuConfig
from flashsale.transport import ENGINE
from tests.ids import plain

from .conftest import MakeClient, stored_orders


async def test_concurrent_retries_buy_once_with_identical_answers(make_client: MakeClient) -> None:
    """Fifty identical keyed requests at once: one order, and every answer has the same status and body bytes."""
    client = await make_client(SkuConfig("moutai-53", stock=100, per_user_limit=2))
    body = {"sku": "moutai-53", "user": "alice", "qty": 2}

    async def post() -> tuple[int, bytes]:
        resp = await client.post("/v1/purchase", json=body, headers={"Idempotency-Key": "k-7f3c"})
        return resp.status, await resp.read()

    answers = await asyncio.gather(*(post() for _ in range(50)))
    assert len(set(answers)) == 1
    status, raw = answers[0]
    assert status == 200
    assert b'"order_id":"moutai-53-1-' in raw
    assert list(map(plain, stored_orders(client))) == ["moutai-53-1"]
    assert await post() == (status, raw)  # a later retry: still the same bytes
    other = await client.post("/v1/purchase", json={**body, "qty": 1}, headers={"Idempotency-Key": "k-7f3c"})
    assert other.status == 422
    assert (await other.json())["error"] == "idempotency_key_reused"
    assert list(map(plain, stored_orders(client))) == ["moutai-53-1"]


async def test_refusal_is_decided_again(make_client: MakeClient) -> None:
    """A keyed request refused as sold out is forgotten: after a restock, concurrent retries buy exactly once."""
    client = await make_client(SkuConfig("rare", stock=1))
    assert (await client.post("/v1/purchase", json={"sku": "rare", "user": "a"})).status == 200

    async def post() -> tuple[int, bytes]:
        resp = await client.post("/v1/purchase", json={"sku": "rare", "user": "b"}, headers={"Idempotency-Key": "k1"})
        return resp.status, await resp.read()

    first = await post()
    assert first[0] == 409
    assert b'"error":"sold_out"' in first[1]
    assert await post() == first  # still sold out: decided again, the same answer
    await client.app[ENGINE].restock("rare", 1)  # type: ignore[index]
    retries = await asyncio.gather(post(), post(), post())
    assert [status for status, _ in retries] == [200] * 3
    assert len(set(retries)) == 1  # one purchase: the duplicates in flight share its answer


async def test_concurrent_requests_of_one_user_count_units(make_client: MakeClient) -> None:
    """Thirty concurrent unkeyed requests from one buyer with a limit of 3 units reserve exactly 3 units."""
    client = await make_client(SkuConfig("moutai-53", stock=100, per_user_limit=3))
    qtys = [1, 2] * 15
    resps = await asyncio.gather(
        *(client.post("/v1/purchase", json={"sku": "moutai-53", "user": "bob", "qty": q}) for q in qtys)
    )
    statuses = [r.status for r in resps]
    assert set(statuses) <= {200, 409}
    units = sum(row[3] for row in stored_orders(client).values())
    assert units == 3
    assert statuses.count(200) == len(stored_orders(client))


async def test_key_flood_over_http_locks_no_one_out(make_client: MakeClient) -> None:
    """Fresh keys with invented buyers from ten addresses fill the key table; buyers elsewhere still buy with keys."""
    limits = LimitsConfig(max_idempotency_keys=500, max_idempotency_keys_per_ip=100)
    client = await make_client(SkuConfig("tshirt", stock=100_000), limits=limits, trusted_proxies=("127.0.0.1",))

    async def buy(user: str, key: str, ip: str) -> int:
        resp = await client.post(
            "/v1/purchase",
            json={"sku": "tshirt", "user": user},
            headers={"Idempotency-Key": key, "X-Forwarded-For": ip},
        )
        await resp.read()
        return resp.status

    flood = [buy(f"bot-{i}", f"k{i}", f"203.0.113.{i % 10}") for i in range(1_500)]
    statuses = Counter(await asyncio.gather(*flood))
    assert statuses[200] == 500
    assert statuses[429] == 1_000
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["idempotency_keys"] == {"live": 500, "max": 500}
    buyers = await asyncio.gather(*(buy(f"buyer-{i}", "checkout", f"198.51.100.{i}") for i in range(100)))
    assert buyers == [200] * 100
