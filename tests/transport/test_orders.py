"""Paying and cancelling orders over HTTP."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from flashsale import SkuConfig

from .conftest import MakeClient


async def _reserve(client: TestClient[Any, Any], user: str, qty: int = 1) -> str:
    resp = await client.post("/v1/purchase", json={"sku": "tshirt", "user": user, "qty": qty})
    assert resp.status == 200
    return str((await resp.json())["order_id"])


async def test_pay_answers_the_paid_order(make_client: MakeClient) -> None:
    """POST /v1/orders/{id}/pay answers 200 with the order, now paid; the SKU counts it as paid."""
    client = await make_client(SkuConfig("tshirt", stock=10))
    order_id = await _reserve(client, "a", 2)
    resp = await client.post(f"/v1/orders/{order_id}/pay", json={"user": "a"})
    assert resp.status == 200
    body = await resp.json()
    assert (body["order_id"], body["status"], body["qty"]) == (order_id, "paid", 2)
    sku = await (await client.get("/v1/skus/tshirt")).json()
    assert (sku["remaining"], sku["reserved"], sku["paid"]) == (8, 0, 2)


async def test_cancel_puts_units_back(make_client: MakeClient) -> None:
    """POST /v1/orders/{id}/cancel answers the cancelled order and the units are on sale again."""
    client = await make_client(SkuConfig("tshirt", stock=1))
    order_id = await _reserve(client, "a")
    assert (await client.post("/v1/purchase", json={"sku": "tshirt", "user": "b"})).status == 409
    resp = await client.post(f"/v1/orders/{order_id}/cancel", json={"user": "a"})
    assert (resp.status, (await resp.json())["status"]) == (200, "cancelled")
    assert (await client.post("/v1/purchase", json={"sku": "tshirt", "user": "b"})).status == 200


async def test_changes_a_status_does_not_allow_are_409(make_client: MakeClient) -> None:
    """Paying a cancelled order or cancelling a paid one is 409 invalid_transition, with the order as it is."""
    client = await make_client(SkuConfig("tshirt", stock=10))
    paid = await _reserve(client, "a")
    assert (await client.post(f"/v1/orders/{paid}/pay", json={"user": "a"})).status == 200
    resp = await client.post(f"/v1/orders/{paid}/cancel", json={"user": "a"})
    assert resp.status == 409
    body = await resp.json()
    assert body["error"] == "invalid_transition"
    assert "paid" in body["detail"]
    assert body["order"]["status"] == "paid"
    cancelled = await _reserve(client, "b")
    assert (await client.post(f"/v1/orders/{cancelled}/cancel", json={"user": "b"})).status == 200
    resp = await client.post(f"/v1/orders/{cancelled}/pay", json={"user": "b"})
    assert (resp.status, (await resp.json())["order"]["status"]) == (409, "cancelled")


async def test_unknown_order_is_404(make_client: MakeClient) -> None:
    """Paying or cancelling an order that does not exist is 404 unknown_order."""
    client = await make_client()
    for action in ("pay", "cancel"):
        resp = await client.post(f"/v1/orders/moutai-53-77/{action}", json={"user": "alice"})
        assert (resp.status, (await resp.json())["error"]) == (404, "unknown_order")
    resp = await client.post("/v1/orders/moutai-53-1/refund")
    assert (resp.status, (await resp.json())["error"]) == (404, "not_found")
