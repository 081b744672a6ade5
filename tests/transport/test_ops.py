"""Health, readiness, metrics, request ids and logs."""

from __future__ import annotations

from structlog.testing import capture_logs

from flashsale import LimitsConfig, SkuConfig
from flashsale.transport import ENGINE

from .conftest import MakeClient


async def test_healthz_and_readyz(make_client: MakeClient) -> None:
    """/healthz is 200 while up; /readyz is 200 with every check passing on a running sale."""
    client = await make_client()
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200
    assert body == {
        "ready": True,
        "checks": {
            "running": True,
            "actors_alive": True,
            "store_ok": True,
            "writer_keeping_up": True,
            "below_inflight_limit": True,
        },
        "idempotency_keys": {"live": 0, "max": 200_000},
    }


async def test_readyz_is_503_when_the_engine_has_stopped(make_client: MakeClient) -> None:
    """A stopped engine is not ready, and purchases answer 503 unavailable."""
    client = await make_client()
    await client.app[ENGINE].stop()  # type: ignore[index]
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["checks"]["running"] is False
    resp = await client.post("/v1/purchase", json={"sku": "moutai-53", "user": "a"})
    assert (resp.status, (await resp.json())["error"]) == (503, "unavailable")


async def test_metrics_count_results(make_client: MakeClient) -> None:
    """/metrics is Prometheus text with purchases by result and remaining stock per SKU."""
    client = await make_client(SkuConfig("rare", stock=1))
    for user in ("a", "b", "c"):
        await client.post("/v1/purchase", json={"sku": "rare", "user": user})
    await client.post("/v1/purchase", data=b"nope")
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    assert 'flashsale_purchases_total{result="reserved"} 1' in text
    assert 'flashsale_purchases_total{result="sold_out"} 2' in text
    assert 'flashsale_request_errors_total{error="invalid_request"} 1' in text
    assert 'flashsale_sku_remaining{sku="rare"} 0' in text
    assert "flashsale_orders_committed_total 1" in text
    assert 'flashsale_ready_check{check="store_ok"} 1' in text
    assert "flashsale_sink_" not in text  # the order sink exists only with backend = "redis"


async def test_request_id_is_echoed_or_made(make_client: MakeClient) -> None:
    """A caller's X-Request-Id comes back; without one the server makes a fresh id per request."""
    client = await make_client()
    resp = await client.post("/v1/purchase", json={"sku": "moutai-53", "user": "a"}, headers={"X-Request-Id": "req-77"})
    assert resp.headers["X-Request-Id"] == "req-77"
    ids = {(await client.get("/healthz")).headers["X-Request-Id"] for _ in range(3)}
    assert len(ids) == 3


async def test_refusals_are_logged_with_the_request_id(make_client: MakeClient) -> None:
    """A refused request logs one structured event carrying its request id and error code."""
    client = await make_client()
    with capture_logs() as logs:
        await client.post("/v1/purchase", data=b"{", headers={"X-Request-Id": "req-bad"})
    refused = [e for e in logs if e["event"] == "request refused"]
    assert len(refused) == 1
    assert refused[0]["request_id"] == "req-bad"
    assert refused[0]["error"] == "invalid_request"
    assert refused[0]["log_level"] == "debug"


async def test_key_table_fill_is_reported(make_client: MakeClient) -> None:
    """/readyz and /metrics show how many idempotency keys are live, of how many, and who was refused."""
    client = await make_client(SkuConfig("a", stock=10), limits=LimitsConfig(max_idempotency_keys_per_buyer=1))
    for key in ("k1", "k2"):
        await client.post("/v1/purchase", json={"sku": "a", "user": "u"}, headers={"Idempotency-Key": key})
    body = await (await client.get("/readyz")).json()
    assert body["idempotency_keys"] == {"live": 1, "max": 200_000}
    text = await (await client.get("/metrics")).text()
    assert "flashsale_idempotency_keys 1.0\n" in text
    assert 'flashsale_idempotency_keys_refused_total{bound="buyer"} 1.0\n' in text
