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
import itertools
import socket

import orjson
import structlog
from aiohttp import web

from flashsale import SaleEngine, SkuStatus, SkuView
from flashsale.config import FeedConfig

from ._fanout import Fanout, LoopFanout, available
from ._handlers import ENGINE, METRICS, REQUEST_ID, guarded, refuse
from ._render import sku_json

log = structlog.get_logger("flashsale.feed")


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
    """Every feed of this process, the loop task that watches the views for them, and who writes to them."""

    def __init__(self, engine: SaleEngine, config: FeedConfig) -> None:
        self._engine = engine
        self._skus = tuple(s.id for s in engine.config.skus)
        self.config = config
        self._feeds: dict[int, _Listener] = {}
        self._ids = itertools.count(1)
        self._out: Fanout | LoopFanout = (
            Fanout(config.max_buffer, 1.0 / config.max_rate, self._gone, self._lost)
            if available()
            else LoopFanout(config.max_buffer, 1.0 / config.max_rate, self._gone)
        )
        self._sent: dict[str, tuple[SkuView, str]] = {}  # per SKU: the view and state last sent
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.joining = 0
        self.dropped = 0
        self.events = 0

    @property
    def listeners(self) -> int:
        return len(self._feeds)

    @property
    def last_write(self) -> float:
        """Seconds the last round of writes to every listener took."""
        return self._out.last_round

    def reserve_place(self) -> None:
        """Count one more feed being opened, or raise :class:`FeedFull`."""
        if self._closed or self.listeners + self.joining >= self.config.max_listeners:
            raise FeedFull
        self.joining += 1

    def snapshot(self, sku: str | None) -> bytes:
        """The first events of a new feed: each SKU (or just ``sku``) as it is now."""
        at = self._engine.clock()
        return b"".join(event(status_of(self._engine.view(s), at)) for s in (self._skus if sku is None else (sku,)))

    def join(self, transport: asyncio.Transport, sku: str | None) -> tuple[int, _Listener] | None:
        """Add a listener whose headers were sent: its snapshot, then every change. ``None``: no room for it.

        The snapshot goes the listener's way ahead of any event, and nothing
        here awaits: no change can fall between the two.
        """
        self.joining -= 1
        if self._closed:
            return None
        if self._task is None:
            self._start_watching()
        ident = next(self._ids)
        if not self._out.add(ident, transport, sku, chunk(self.snapshot(sku))):
            return None
        listener = self._feeds[ident] = _Listener(transport, asyncio.get_running_loop().create_future())
        return ident, listener

    def leave(self, ident: int) -> None:
        """The feed's handler ended: forget it (the writer lets its socket go)."""
        listener = self._feeds.pop(ident, None)
        if listener is not None:
            self._out.remove(ident)
            if not listener.done.done():
                listener.done.set_result(None)

    def _gone(self, ident: int, slow: bool, buffered: int) -> None:
        """The writer let go of feed ``ident``: its client went away, or it fell ``max_buffer`` behind."""
        listener = self._feeds.pop(ident, None)
        if listener is None:
            return
        if slow:
            self.dropped += 1
            log.info("feed listener dropped", reason="too far behind", buffered=buffered)
        listener.transport.abort()  # mid-stream: the connection ends here, and what it buffered is freed at once
        if not listener.done.done():
            listener.done.set_result(None)

    def _lost(self) -> None:
        """The writer process ended on its own: every feed it wrote ends (clients reconnect to a new one)."""
        for ident in list(self._feeds):
            self._gone(ident, False, 0)

    def _start_watching(self) -> None:
        # The views as they are now are what new listeners got in their snapshot.
        at = self._engine.clock()
        for sku in self._skus:
            view = self._engine.view(sku)
            self._sent.setdefault(sku, (view, view.state(at)))
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="flashsale-feed")

    async def _watch(self) -> None:
        """Poll the views at ``max_rate``; ping every ``ping_interval``; stop when nobody listens."""
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.config.max_rate
        next_ping = loop.time() + self.config.ping_interval
        try:
            while self.listeners or self.joining:
                await asyncio.sleep(interval)
                self.poll()
                if loop.time() >= next_ping:
                    next_ping = loop.time() + self.config.ping_interval
                    self._out.ping()
        finally:
            self._task = None
            self._sent.clear()

    def poll(self) -> int:
        """Send one event per SKU whose view or state changed since the last; returns how many."""
        engine = self._engine
        at = engine.clock()
        changed: dict[str, tuple[SkuView, str]] = {}
        frames: dict[str, bytes] = {}
        for sku in self._skus:
            view = engine.view(sku)
            state = view.state(at)  # moves with time too, at the window's edges
            last = self._sent.get(sku)
            if last is not None and last[1] == state and (last[0] is view or last[0] == view):
                continue
            changed[sku] = (view, state)
            frames[sku] = chunk(event(status_of(view, at)))
        if not frames or not self._out.round(frames):
            return 0  # nothing new, or the writer is busy: these changes go with the next poll
        self._sent.update(changed)
        self.events += len(frames)
        return len(frames)

    async def close(self) -> None:
        """End every feed (the server is stopping): the writer stops, then each stream ends with its last chunk."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
        await self._out.stop()
        feeds, self._feeds = self._feeds, {}
        for listener in feeds.values():
            if not listener.done.done():
                listener.done.set_result(None)  # the handler returns: aiohttp ends the chunked stream


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
        if transport.get_write_buffer_size():  # rare: a fresh connection takes the headers at once
            # The writer must not start on the socket before the transport is done with it: paused while
            # anything waits to be sent, the protocol lets drain() return only once all of it left.
            transport.set_write_buffer_limits(high=0)
            async with asyncio.timeout(hub.config.ping_interval):
                await request.writer.drain()
            transport.set_write_buffer_limits()
    except TimeoutError:  # a client that does not read its headers holds no place
        hub.joining -= 1
        if request.transport is not None:
            request.transport.abort()
        return response
    except BaseException:
        hub.joining -= 1
        raise
    joined = hub.join(transport, sku)
    if joined is None:
        transport.abort()
        return response
    ident, listener = joined
    try:
        await listener.done
    finally:
        hub.leave(ident)
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
    await app[FEED].close()
