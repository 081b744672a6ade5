"""Thousands of concurrent buyers through a real server: exactly the stock is sold."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from flashsale import SkuConfig
from flashsale.transport import ENGINE

from .conftest import MakeClient, stored_orders

BUYERS = 5000


async def _hammer(client: TestClient[Any, Any], bodies: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    url = client.make_url("/v1/purchase")
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            async with session.post(url, json=body) as resp:
                return resp.status, await resp.json()

        return await asyncio.gather(*(one(b) for b in bodies))


@pytest.mark.parametrize("durability", ["commit", "async"])
async def test_hot_sku_sells_exactly_its_stock(make_client: MakeClient, durability: str) -> None:
    """5,000 concurrent buyers, 100 units: 100 reserved, 4,900 sold out, every 200 stored, no 5xx."""
    client = await make_client(SkuConfig("moutai-53", stock=100, per_user_limit=1), durability=durability)
    answers = await _hammer(client, [{"sku": "moutai-53", "user": f"buyer-{i}"} for i in range(BUYERS)])
    statuses = Counter(status for status, _ in answers)
    assert statuses == {200: 100, 409: BUYERS - 100}
    assert {body["error"] for status, body in answers if status == 409} == {"sold_out"}
    await client.app[ENGINE].flush()  # type: ignore[index]
    stored = stored_orders(client)
    won = {body["order_id"]: body for status, body in answers if status == 200}
    assert set(won) == set(stored)
    assert len({stored[o][2] for o in won}) == 100  # 100 different winners
    status = await (await client.get("/v1/skus/moutai-53")).json()
    assert (status["remaining"], status["reserved"], status["state"]) == (0, 100, "sold_out")


async def test_greedy_buyers_never_pass_their_limit(make_client: MakeClient) -> None:
    """50 buyers each firing 40 concurrent requests for 1-3 units never hold more than their limit of 3."""
    client = await make_client(SkuConfig("moutai-53", stock=1000, per_user_limit=3))
    bodies = [{"sku": "moutai-53", "user": f"greedy-{i % 50}", "qty": 1 + i % 3} for i in range(2000)]
    answers = await _hammer(client, bodies)
    assert not [s for s, _ in answers if s >= 500]
    held: Counter[str] = Counter()
    for _, _sku, user, qty, _status in stored_orders(client).values():
        held[user] += qty
    assert len(held) == 50
    assert max(held.values()) <= 3
    won = sum(body["qty"] for status, body in answers if status == 200)
    assert won == sum(held.values())
