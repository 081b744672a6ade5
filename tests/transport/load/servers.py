"""Small aiohttp servers that speak the v1 contract, each wrong (or slow) in one chosen way.

They exist to prove that ``flashsale load`` catches what it promises to catch:
a server that sells more than its stock while its counters look right, one
that answers ``200`` without storing the order, one that stalls for a second.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import Any

from aiohttp import web


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)


class BrokenSale:
    """One SKU of ``stock`` units. ``oversell``: every purchase gets a 200 (the SKU counters still add up);
    ``forget``: 200s are not stored (``GET /v1/orders/{id}`` answers 404)."""

    def __init__(self, stock: int, *, oversell: bool = False, forget: bool = False) -> None:
        self.stock = stock
        self.oversell = oversell
        self.forget = forget
        self.sold = 0
        self.orders: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(1)
        self.requests: Counter[str] = Counter()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/purchase", self.purchase)
        app.router.add_get("/v1/skus/{sku}", self.sku)
        app.router.add_get("/v1/orders/{order_id}", self.order)
        return app

    async def purchase(self, request: web.Request) -> web.Response:
        self.requests["purchase"] += 1
        body = await request.json()
        if self.sold >= self.stock and not self.oversell:
            return _json(409, {"error": "sold_out", "detail": "sold out"})
        self.sold += 1
        order_id = f"o-{next(self.ids)}"
        order = {"order_id": order_id, "sku": body["sku"], "user": body["user"], "qty": body["qty"]}
        order["status"] = "reserved"
        if not self.forget:
            self.orders[order_id] = order
        return _json(200, {"result": "reserved", "order_id": order_id, "sku": body["sku"], "qty": body["qty"]})

    async def sku(self, request: web.Request) -> web.Response:
        self.requests["sku"] += 1
        held = min(self.sold, self.stock)  # the counters never admit the oversell
        state = "sold_out" if held >= self.stock else "on_sale"
        view = {"sku": request.match_info["sku"], "stock": self.stock, "remaining": self.stock - held}
        return _json(200, {**view, "reserved": held, "paid": 0, "state": state})

    async def order(self, request: web.Request) -> web.Response:
        self.requests["order"] += 1
        order = self.orders.get(request.match_info["order_id"])
        if order is None:
            return _json(404, {"error": "unknown_order", "detail": "no such order"})
        return _json(200, order)


class SoldOut:
    """Every purchase is ``409 sold_out`` at once; counts what it is sent. ``stall_after``: the first purchase
    at or after that many seconds from the first one starts a stall of ``stall_for`` seconds, during which
    every purchase waits for the stall to end."""

    def __init__(self, *, stall_after: float | None = None, stall_for: float = 1.0) -> None:
        self.requests: Counter[str] = Counter()
        self.stall_after = stall_after
        self.stall_for = stall_for
        self.first: float | None = None
        self.released: asyncio.Event | None = None
        self.stalled = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/purchase", self.purchase)
        app.router.add_get("/v1/skus/{sku}", self.sku)
        return app

    async def purchase(self, request: web.Request) -> web.Response:
        self.requests["purchase"] += 1
        await request.read()
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self.first is None:
            self.first = now
        if self.stall_after is not None and self.released is None and now - self.first >= self.stall_after:
            self.released = asyncio.Event()
            loop.call_later(self.stall_for, self.released.set)  # the server's own behaviour under test
        if self.released is not None and not self.released.is_set():
            self.stalled += 1
            await self.released.wait()
        return _json(409, {"error": "sold_out", "detail": "sold out"})

    async def sku(self, request: web.Request) -> web.Response:
        self.requests["sku"] += 1
        view = {"sku": request.match_info["sku"], "stock": 0, "remaining": 0, "reserved": 0, "paid": 0}
        return _json(200, {**view, "state": "sold_out"})
