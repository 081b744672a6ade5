"""SaleEngine with ``backend = "redis"`` behind the real aiohttp app, on real Redis and PostgreSQL servers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient

from flashsale import Config, LimitsConfig, ManualClock, PostgresConfig, RedisConfig, SaleEngine, SkuConfig
from flashsale.actors import BucketSpec
from flashsale.transport import ENGINE, create_app
from tests.distributed.conftest import RedisServer, wait_until
from tests.ids import plain

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def make_client(aiohttp_client: Any, redis_config: RedisConfig, pg_url: str, clock: ManualClock) -> MakeClient:
    """A flashsale app in redis mode on this test's prefix and database; ready (sink connected) when returned."""

    async def make(*skus: SkuConfig, limits: LimitsConfig | None = None) -> TestClient[Any, Any]:
        config = Config(
            skus=skus or (SkuConfig("moutai-53", stock=5, per_user_limit=2),),
            limits=limits or LimitsConfig(),
            tick_interval=0,
            backend="redis",
            redis=redis_config,
            postgres=PostgresConfig(url=pg_url, batch=50, claim_idle=1.0),
        )
        client: TestClient[Any, Any] = await aiohttp_client(create_app(config, engine=SaleEngine(config, clock=clock)))
        engine = client.app[ENGINE]  # type: ignore[index]
        await asyncio.to_thread(wait_until, lambda: engine.readiness()["postgres_ok"], 20.0, "the order sink")
        return client

    return make


async def purchase(client: TestClient[Any, Any], user: str, qty: int = 1, key: str | None = None) -> tuple[int, Any]:
    headers = {"Idempotency-Key": key} if key else {}
    resp = await client.post("/v1/purchase", json={"sku": "moutai-53", "user": user, "qty": qty}, headers=headers)
    return resp.status, await resp.json()


async def test_purchase_pay_cancel_and_postgres(make_client: MakeClient, pg_url: str) -> None:
    """Reserve, 409s, 422, pay and cancel over HTTP; after flush PostgreSQL holds every order's final row."""
    client = await make_client()
    answers = [await purchase(client, f"u{i}", 2) for i in range(3)]
    assert [s for s, _ in answers] == [200, 200, 409]
    assert answers[2][1]["error"] == "sold_out"
    assert answers[2][1]["detail"] == "only 1 left"
    assert (await purchase(client, "u0", 1))[1]["error"] == "limit_reached"
    status, first = await purchase(client, "u9", 1, key="k")
    assert (status, plain(first["order_id"])) == (200, "moutai-53-3")
    one, two, three = answers[0][1]["order_id"], answers[1][1]["order_id"], first["order_id"]
    assert await purchase(client, "u9", 1, key="k") == (200, first)
    status, reused = await purchase(client, "u9", 2, key="k")
    assert (status, reused["error"]) == (422, "idempotency_key_reused")
    paid = await client.post(f"/v1/orders/{one}/pay", json={"user": "u0"})
    assert (paid.status, (await paid.json())["status"]) == (200, "paid")
    again = await client.post(f"/v1/orders/{one}/cancel", json={"user": "u0"})
    assert (again.status, (await again.json())["error"]) == (409, "invalid_transition")
    cancelled = await client.post(f"/v1/orders/{two}/cancel", json={"user": "u1"})
    assert (await cancelled.json())["status"] == "cancelled"
    assert (await client.get(f"/v1/orders/{three}", params={"user": "u0"})).status == 404  # not u0's
    got = await client.get(f"/v1/orders/{three}", params={"user": "u9"})
    assert (await got.json())["user"] == "u9"
    assert (await client.get("/v1/orders/moutai-53-99", params={"user": "u9"})).status == 404
    assert (await client.get("/v1/orders/other-1", params={"user": "u9"})).status == 404
    sku = await (await client.get("/v1/skus/moutai-53")).json()
    assert (sku["stock"], sku["remaining"], sku["reserved"], sku["paid"]) == (5, 2, 1, 2)
    metrics = await client.get("/metrics")
    assert metrics.status == 200
    text = await metrics.text()
    assert 'result="idempotency_key_reused"} 1' in text
    assert 'flashsale_ready_check{check="postgres_ok"} 1' in text
    await client.app[ENGINE].flush()  # type: ignore[index]
    text = await (await client.get("/metrics")).text()
    assert "flashsale_sink_pending 0.0" in text
    committed = int(re.search(r"^flashsale_sink_committed_total (\d+)\.0$", text, re.M).group(1))  # type: ignore[union-attr]
    assert committed >= 5  # three reservations, a payment and a cancellation (a redelivery counts again)
    with psycopg.connect(pg_url) as db:
        rows = db.execute("SELECT order_id, user_id, qty, status FROM orders ORDER BY order_id").fetchall()
    assert [(plain(r[0]), *r[1:]) for r in rows] == [
        ("moutai-53-1", "u0", 2, "paid"),
        ("moutai-53-2", "u1", 2, "cancelled"),
        ("moutai-53-3", "u9", 1, "reserved"),
    ]


async def test_expiry_on_tick(make_client: MakeClient, clock: ManualClock) -> None:
    """A reservation unpaid after payment_timeout expires on the next tick; its units are back on sale."""
    client = await make_client(SkuConfig("moutai-53", stock=1, payment_timeout=60))
    status, first = await purchase(client, "u1")
    assert status == 200
    assert (await purchase(client, "u2"))[1]["error"] == "sold_out"
    engine = client.app[ENGINE]  # type: ignore[index]
    assert await engine.expire_due() == 0
    clock.advance(60)
    assert await engine.expire_due() == 1
    got = await client.get(f"/v1/orders/{first['order_id']}", params={"user": "u1"})
    assert (await got.json())["status"] == "expired"
    assert (await purchase(client, "u2"))[0] == 200


async def test_shared_per_user_rate_limit(make_client: MakeClient) -> None:
    """limits.per_user is a token bucket in Redis: the third request of a burst of 2 gets 429 with Retry-After."""
    client = await make_client(
        SkuConfig("moutai-53", stock=100), limits=LimitsConfig(per_user=BucketSpec(rate=0.5, burst=2))
    )
    statuses = [(await purchase(client, "u1"))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    resp = await client.post("/v1/purchase", json={"sku": "moutai-53", "user": "u1"})
    assert resp.headers["Retry-After"] == "2"
    assert (await purchase(client, "u2"))[0] == 200


async def test_redis_down_fails_fast_and_recovers(
    make_client: MakeClient, redis_server: RedisServer, clock: ManualClock
) -> None:
    """Redis stopped: 503 unavailable, the breaker opens (readyz says so); Redis back: one probe closes it."""
    client = await make_client(SkuConfig("moutai-53", stock=10))
    engine = client.app[ENGINE]  # type: ignore[index]
    assert (await purchase(client, "u1"))[0] == 200
    redis_server.stop()
    try:
        for _ in range(3):  # breaker_failures = 3 calls that fail
            status, body = await purchase(client, "u2")
            assert (status, body["error"]) == (503, "unavailable")
        assert engine.readiness()["redis_ok"] is False
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["checks"]["redis_ok"] is False
        # open: answered on the loop, no ledger call
        status, body = await purchase(client, "u2")
        assert "down" in body["detail"]
    finally:
        redis_server.start()
    clock.advance(0.2)  # breaker_reset in the test config
    assert (await purchase(client, "u2"))[0] == 200
    assert engine.readiness()["redis_ok"] is True
    sku = await (await client.get("/v1/skus/moutai-53")).json()
    assert (sku["remaining"], sku["reserved"]) == (8, 2)


async def test_key_table_fill_in_redis(make_client: MakeClient) -> None:
    """/readyz and /metrics count the live idempotency keys Redis holds; a paid order's key is no longer live."""
    client = await make_client(SkuConfig("moutai-53", stock=5))
    first = await purchase(client, "u1", 1, key="k1")
    await purchase(client, "u2", 1, key="k2")
    assert (await purchase(client, "u3", 9, key="k3"))[0] == 409  # refused (sold out): never recorded

    async def live() -> int:
        return int((await (await client.get("/readyz")).json())["idempotency_keys"]["live"])

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(wait_until, lambda: asyncio.run_coroutine_threadsafe(live(), loop).result() == 2, 10.0, "2")
    assert (await client.post(f"/v1/orders/{first[1]['order_id']}/pay", json={"user": "u1"})).status == 200
    await asyncio.to_thread(wait_until, lambda: asyncio.run_coroutine_threadsafe(live(), loop).result() == 1, 10.0, "1")
    assert "flashsale_idempotency_keys 1.0\n" in await (await client.get("/metrics")).text()


async def test_a_started_worker_sells_at_once(redis_config: RedisConfig, pg_url: str, clock: ManualClock) -> None:
    """``start()`` returns once PostgreSQL has answered the order sink: the first purchase is reserved, not a 503.

    Before, a worker beside a ready one (``--workers``) could take a buyer's
    connection while its sink was still connecting, and answer ``unavailable``.
    """
    config = Config(
        skus=(SkuConfig("moutai-53", stock=5),),
        tick_interval=0,
        backend="redis",
        redis=redis_config,
        postgres=PostgresConfig(url=pg_url),
    )
    engine = SaleEngine(config, clock=clock)
    await engine.start()
    try:
        assert engine.readiness()["postgres_ok"]
        assert (await engine.purchase("moutai-53", "the first buyer")).result == "reserved"
    finally:
        await engine.stop()
