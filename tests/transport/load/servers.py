"""Small aiohttp servers that speak the v1 contract, each wrong (or slow) in one chosen way.

They exist to prove that ``flashsale load`` catches what it promises to catch:
a server that sells more than its stock while its counters look right, one
that answers ``200`` without storing the order, one that stalls for a second.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import secrets
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


class ContractSale:
    """A correct little sale that speaks the feed and waiting-room contracts (issues 12 and 13) as written,
    for the client flows until the real server has them: ``GET /v1/events`` (``event: sku`` snapshots, then
    changes) and, with ``room_bits`` set, a room that hands out challenges, checks proofs and passes."""

    def __init__(self, stock: int, *, room_bits: int | None = None) -> None:
        self.stock = stock
        self.sold = 0
        self.room_bits = room_bits
        self.orders: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(1)
        self.requests: Counter[str] = Counter()
        self.listeners: list[web.StreamResponse] = []
        self.done = asyncio.Event()
        self.tickets: dict[str, dict[str, Any]] = {}
        self.challenges: set[str] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/purchase", self.purchase)
        app.router.add_get("/v1/skus/{sku}", self.sku)
        app.router.add_get("/v1/orders/{order_id}", self.order)
        app.router.add_get("/v1/events", self.events)
        if self.room_bits is not None:
            app.router.add_get("/v1/room", self.room)
            app.router.add_get("/v1/room/challenge", self.challenge)
            app.router.add_post("/v1/room/join", self.join)
            app.router.add_get("/v1/room/tickets/{ticket}", self.ticket)
            app.router.add_get("/v1/room/tickets/{ticket}/events", self.ticket_events)

        async def stop_streams(_: web.Application) -> None:
            self.done.set()

        app.on_shutdown.append(stop_streams)
        return app

    def view(self) -> dict[str, Any]:
        state = "sold_out" if self.sold >= self.stock else "on_sale"
        return {"sku": "hot", "stock": self.stock, "remaining": self.stock - self.sold, "reserved": self.sold,
                "paid": 0, "state": state}  # fmt: skip

    @staticmethod
    def pass_of(user: str) -> str:
        return hashlib.sha256(f"pass:{user}".encode()).hexdigest()

    async def purchase(self, request: web.Request) -> web.Response:
        self.requests["purchase"] += 1
        body = await request.json()
        if self.room_bits is not None and request.headers.get("Admission-Pass") != self.pass_of(body["user"]):
            self.requests["refused"] += 1
            return _json(403, {"error": "invalid_pass", "detail": "no valid pass"})
        if self.sold >= self.stock:
            return _json(409, {"error": "sold_out", "detail": "sold out"})
        self.sold += 1
        order_id = f"o-{next(self.ids)}"
        self.orders[order_id] = {"order_id": order_id, "sku": "hot", "user": body["user"], "qty": body["qty"],
                                 "status": "reserved"}  # fmt: skip
        data = f"event: sku\ndata: {json.dumps(self.view())}\n\n".encode()
        for listener in self.listeners:
            await listener.write(data)
        return _json(200, {"result": "reserved", "order_id": order_id, "sku": "hot", "qty": body["qty"]})

    async def sku(self, request: web.Request) -> web.Response:
        return _json(200, self.view())

    async def order(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.match_info["order_id"])
        if order is None or request.query.get("user") != order["user"]:
            return _json(404, {"error": "unknown_order", "detail": "no such order"})
        return _json(200, order)

    async def _stream(self, request: web.Request, first: bytes) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(first)
        return resp

    async def events(self, request: web.Request) -> web.StreamResponse:
        self.requests["events"] += 1
        resp = await self._stream(request, f": hello\n\nevent: sku\ndata: {json.dumps(self.view())}\n\n".encode())
        self.listeners.append(resp)
        await self.done.wait()
        return resp

    async def room(self, request: web.Request) -> web.Response:
        return _json(200, {"state": "admitting", "waiting": len(self.tickets), "seed": None})

    async def challenge(self, request: web.Request) -> web.Response:
        self.requests["challenge"] += 1
        if not self.room_bits:
            return _json(404, {"error": "not_found", "detail": "no proof of work"})
        c = secrets.token_hex(8)
        self.challenges.add(c)
        return _json(200, {"challenge": c, "bits": self.room_bits, "expires_at": "2099-01-01T00:00:00Z"})

    async def join(self, request: web.Request) -> web.Response:
        self.requests["join"] += 1
        body = await request.json()
        if self.room_bits:
            c, nonce = body.get("challenge"), body.get("nonce")
            digest = hashlib.sha256(f"{c}:{nonce}".encode()).digest()
            if c not in self.challenges or int.from_bytes(digest, "big") >> (256 - self.room_bits):
                return _json(400, {"error": "invalid_proof", "detail": "bad proof"})
            self.challenges.discard(c)  # each challenge is good for one join
        ticket = secrets.token_hex(8)
        self.tickets[ticket] = {"user": body["user"], "polls": 0}
        return _json(201, {"ticket": ticket, "state": "waiting", "position": len(self.tickets), "eta_seconds": 1,
                           "poll_after": 0.05})  # fmt: skip

    def _ticket_view(self, ticket: str, admitted: bool) -> dict[str, Any]:
        user = self.tickets[ticket]["user"]
        view = {"ticket": ticket, "state": "admitted" if admitted else "waiting", "position": 0 if admitted else 1}
        return {**view, "pass": self.pass_of(user) if admitted else None, "remaining_units": self.stock - self.sold}

    async def ticket(self, request: web.Request) -> web.Response:
        self.requests["poll"] += 1
        t = self.tickets.get(request.match_info["ticket"])
        if t is None or request.query.get("user") != t["user"]:
            return _json(404, {"error": "unknown_ticket", "detail": "no such ticket"})
        t["polls"] += 1
        return _json(200, self._ticket_view(request.match_info["ticket"], t["polls"] >= 2))

    async def ticket_events(self, request: web.Request) -> web.StreamResponse:
        self.requests["ticket_events"] += 1
        name = request.match_info["ticket"]
        t = self.tickets.get(name)
        if t is None or request.query.get("user") != t["user"]:
            return _json(404, {"error": "unknown_ticket", "detail": "no such ticket"})
        waiting = f"data: {json.dumps(self._ticket_view(name, False))}\n\n"
        admitted = f"data: {json.dumps(self._ticket_view(name, True))}\n\n"
        resp = await self._stream(request, (waiting + admitted).encode())
        await resp.write_eof()
        return resp
