"""Live stock feeds: ``GET /v1/events`` (every SKU) and ``GET /v1/skus/{sku}/events`` as Server-Sent Events.

One :class:`FeedHub` per process watches the engine's published views on
the loop (no actor message, no thread hop): every ``1 / [feed] max_rate``
seconds it compares each SKU's latest :class:`flashsale.actors.SkuView`
with the one it last sent, so changes in between are coalesced into one
event per SKU. A change is serialized once (``event: sku``, ``data:`` the
``GET /v1/skus/{sku}`` JSON, framed as an HTTP/1.1 chunk) and the same bytes
are written to every listener's transport. A comment line every
``ping_interval`` seconds keeps proxies from closing idle streams and finds
the listeners that went away.

Bounded: at most ``max_listeners`` open feeds per process (one more gets
``503 overloaded``); a listener with more than ``max_buffer`` bytes not yet
sent is dropped, its connection aborted, so a reader that stalls costs at
most its socket buffer plus ``max_buffer``. The hub polls only while someone
listens.

Why not aiohttp-sse: its ``EventSourceResponse.send`` formats each event per
listener, and it runs a ping task per listener; 10,000 listeners would mean
10,000 serializations of every change and 10,000 timers. The wire format is
three lines; the hub writes it once.

With ``--workers N`` each process feeds its own listeners from its own
views; on ``backend = "redis"`` those refresh from Redis on every ledger
call the process makes and at least once per ``[engine] tick_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import orjson
import structlog
from aiohttp import web

from flashsale import SaleEngine, SkuStatus, SkuView
from flashsale.config import FeedConfig

from ._handlers import ENGINE, METRICS, REQUEST_ID, guarded, refuse
from ._render import sku_json

log = structlog.get_logger("flashsale.feed")

_PING = b": ping\n\n"
SHARE = 0.25
"""The most of the loop's time the feed's writes may take; beyond it events come less often (see _watch)."""


def chunk(payload: bytes) -> bytes:
    """``payload`` as one HTTP/1.1 chunk, the framing of a streamed response."""
    return b"%x\r\n%b\r\n" % (len(payload), payload)


def event(status: SkuStatus) -> bytes:
    """One ``sku`` event: the SKU's ``GET /v1/skus/{sku}`` JSON."""
    return b"event: sku\ndata: " + orjson.dumps(sku_json(status)) + b"\n\n"


def status_of(view: SkuView, at: int) -> SkuStatus:
    """What ``GET /v1/skus/{sku}`` answers for ``view`` at ``at``."""
    v = view
    return SkuStatus(v.sku, v.stock, v.remaining, v.reserved, v.paid, v.state(at), v.starts_at, v.ends_at)


class FeedFull(Exception):
    """The process already serves ``max_listeners`` feeds."""


class _Listener:
    """One open feed: its transport, and the future its handler waits on until it ends."""

    __slots__ = ("done", "transport")

    def __init__(self, transport: asyncio.Transport, done: asyncio.Future[None]) -> None:
        self.transport = transport
        self.done = done


class FeedHub:
    """Every feed of this process, and the one loop task that watches the views for them."""

    def __init__(self, engine: SaleEngine, config: FeedConfig) -> None:
        self._engine = engine
        self._skus = tuple(s.id for s in engine.config.skus)
        self.config = config
        self._all: set[_Listener] = set()
        self._by_sku: dict[str, set[_Listener]] = {}
        self._sent: dict[str, tuple[SkuView, str]] = {}  # per SKU: the view and state last sent
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.joining = 0
        self.dropped = 0
        self.events = 0
        self.last_write = 0.0  # seconds the last poll that sent anything spent writing

    @property
    def listeners(self) -> int:
        return len(self._all) + sum(len(s) for s in self._by_sku.values())

    def reserve_place(self) -> None:
        """Count one more feed being opened, or raise :class:`FeedFull`."""
        if self._closed or self.listeners + self.joining >= self.config.max_listeners:
            raise FeedFull
        self.joining += 1

    def snapshot(self, sku: str | None) -> bytes:
        """The first events of a new feed: each SKU (or just ``sku``) as it is now."""
        at = self._engine.clock()
        return b"".join(event(status_of(self._engine.view(s), at)) for s in (self._skus if sku is None else (sku,)))

    def join(self, transport: asyncio.Transport, sku: str | None) -> _Listener:
        """Add a listener whose snapshot was sent; it gets every change from now on."""
        self.joining -= 1
        listener = _Listener(transport, asyncio.get_running_loop().create_future())
        if self._closed:
            listener.done.set_result(None)
            return listener
        (self._all if sku is None else self._by_sku.setdefault(sku, set())).add(listener)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch(), name="flashsale-feed")
        return listener

    def leave(self, listener: _Listener, sku: str | None) -> None:
        group = self._all if sku is None else self._by_sku.get(sku, set())
        group.discard(listener)
        if not listener.done.done():
            listener.done.set_result(None)

    async def _watch(self) -> None:
        """Poll the views at ``max_rate``; ping every ``ping_interval``; stop when nobody listens.

        Writing one change to 10,000 sockets is 10,000 ``send`` calls (0.1 to
        0.4 s on a busy 2-core machine); at 10 per second that would be the
        whole loop. So after a poll that wrote for ``spent`` seconds the next
        write waits until ``spent / SHARE`` after it began: writing takes at
        most :data:`SHARE` of the loop's time. A change after a quiet spell
        goes out at the next poll; with many listeners and a stock that
        changes all the time, events come less often than ``max_rate`` (each
        carries the latest state) and purchases keep the rest of the loop.
        """
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.config.max_rate
        next_ping = loop.time() + self.config.ping_interval
        next_write = 0.0
        # The views as they are now are what new listeners got in their snapshot.
        at = self._engine.clock()
        for sku in self._skus:
            view = self._engine.view(sku)
            self._sent.setdefault(sku, (view, view.state(at)))
        try:
            while self.listeners:
                await asyncio.sleep(interval)
                began = loop.time()
                if began >= next_write and self.poll():
                    spent = loop.time() - began
                    self.last_write = spent
                    next_write = began + spent / SHARE
                if loop.time() >= next_ping:
                    next_ping = loop.time() + self.config.ping_interval
                    self._write(self._all, chunk(_PING))
                    for group in list(self._by_sku.values()):
                        self._write(group, chunk(_PING))
        finally:
            self._task = None
            self._sent.clear()

    def poll(self) -> int:
        """Send one event per SKU whose view or state changed since the last; returns how many."""
        engine = self._engine
        at = engine.clock()
        sent = 0
        for sku in self._skus:
            view = engine.view(sku)
            state = view.state(at)  # moves with time too, at the window's edges
            last = self._sent.get(sku)
            if last is not None and last[1] == state and (last[0] is view or last[0] == view):
                continue
            self._sent[sku] = (view, state)
            frame = chunk(event(status_of(view, at)))
            self._write(self._all, frame)
            group = self._by_sku.get(sku)
            if group:
                self._write(group, frame)
            sent += 1
        self.events += sent
        return sent

    def _write(self, group: set[_Listener], frame: bytes) -> None:
        """Write ``frame`` to every listener of ``group``; drop the ones gone or too far behind."""
        limit = self.config.max_buffer
        gone: list[_Listener] = []
        for listener in group:
            t = listener.transport
            if t.is_closing() or t.get_write_buffer_size() > limit:
                gone.append(listener)
            else:
                t.write(frame)
        for listener in gone:
            group.discard(listener)
            if not listener.transport.is_closing():
                self.dropped += 1
                buffered = listener.transport.get_write_buffer_size()
                log.info("feed listener dropped", reason="too far behind", buffered=buffered)
            listener.transport.abort()  # frees what is buffered for it at once
            if not listener.done.done():
                listener.done.set_result(None)

    def close(self) -> None:
        """End every feed (the server is stopping)."""
        self._closed = True
        for group in (self._all, *self._by_sku.values()):
            for listener in group:
                listener.transport.close()
                if not listener.done.done():
                    listener.done.set_result(None)
            group.clear()
        if self._task is not None:
            self._task.cancel()


FEED = web.AppKey("feed", FeedHub)
routes = web.RouteTableDef()


@routes.get("/v1/events")
@guarded
async def all_events(request: web.Request) -> web.StreamResponse:
    return await _stream(request, None)


@routes.get("/v1/skus/{sku}/events")
@guarded
async def sku_events(request: web.Request) -> web.StreamResponse:
    sku = request.match_info["sku"]
    request.app[ENGINE].view(sku)  # UnknownSku: 404 before anything is streamed
    return await _stream(request, sku)


async def _stream(request: web.Request, sku: str | None) -> web.StreamResponse:
    hub = request.app[FEED]
    if request.version < (1, 1):
        return refuse(request, "the feed is a streamed response: it needs HTTP/1.1")
    try:
        hub.reserve_place()
    except FeedFull:
        request.app[METRICS].errors["overloaded"] += 1
        return refuse(
            request, f"this process already serves {hub.config.max_listeners:,} feeds; retry shortly",
            "overloaded", 503,
        )  # fmt: skip
    try:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # nginx: pass events through as they come
                "X-Request-Id": request[REQUEST_ID],
            }
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        transport = request.transport
        if transport is None or transport.is_closing():
            hub.joining -= 1
            return response
        _bound_send_buffer(transport, hub.config.max_buffer)
        await response.write(hub.snapshot(sku))
    except BaseException:
        hub.joining -= 1
        raise
    listener = hub.join(transport, sku)
    try:
        await listener.done
    finally:
        hub.leave(listener, sku)
    return response


def _bound_send_buffer(transport: asyncio.BaseTransport, size: int) -> None:
    """Keep the kernel's share of a listener's backlog small too (the rest is bounded by ``max_buffer``)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def install_feed(app: web.Application, engine: SaleEngine, config: FeedConfig) -> None:
    """Add the feed routes and their hub to ``app`` (before its catch-all route)."""
    app[FEED] = FeedHub(engine, config)
    app.add_routes(routes)
    app.on_shutdown.append(_close_feeds)


async def _close_feeds(app: web.Application) -> None:
    app[FEED].close()
