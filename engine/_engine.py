"""SaleEngine: the one entry point to a running sale.

The engine is the asyncio-side gateway to the actors. Per purchase it does
the cheap things on the loop — validate, stamp the arrival time from the
injected clock, answer from the published :class:`SkuView` when the SKU is
sold out or off sale — and otherwise appends the purchase to the batch of the
current loop tick. The batch is sent to the limiter as one message when the
tick's callbacks run (``loop.call_soon``), and every answer comes back
through the :class:`actors.LoopBridge`, one loop wake-up per batch.

Nothing here blocks the loop: the store is opened in a worker thread, actors
are stopped from one, and no pykka future is ever waited on.

With ``backend = "redis"`` the same gateway drives other stages: per SKU a
:class:`actors.LedgerInventoryActor` on a :class:`RedisLedger` (which decides
and records each purchase in one Lua call), an optional
:class:`actors.SharedLimiterActor`, and an :class:`OrderSink` moving the
orders stream into PostgreSQL. While the ledger's breaker is open or the sink
cannot reach PostgreSQL, purchases are answered ``unavailable`` on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Self

import pykka

from flashsale.actors import (
    Breaker,
    BucketSpec,
    ChangeOrder,
    ChangeResult,
    DedupActor,
    DrainQueue,
    Flush,
    GetOrder,
    InventoryActor,
    LedgerError,
    LedgerInventoryActor,
    LedgerSku,
    LimiterActor,
    LimiterGauges,
    LimiterTick,
    LoopBridge,
    Order,
    OrderStore,
    OrderWriterActor,
    Outcome,
    Pipeline,
    Purchase,
    Restock,
    SharedLimiterActor,
    SkuState,
    SkuStock,
    SkuView,
    StoreError,
    Tick,
    WriterGauges,
    fast_new,
)

from ._clock import Clock, wall_clock
from ._errors import EngineClosed, InvalidRequest, TransitionRefused, Unavailable, UnknownOrder, UnknownSku
from .config import Config
from .room import Room, RoomCalls, make_room
from .stores import SQLiteOrderStore

if TYPE_CHECKING:
    from .redis import OrderSink, RedisLedger, SinkGauges
    from .scenario import ScenarioRecorder

log = logging.getLogger("flashsale.engine")

MAX_USER_LEN = 128
MAX_KEY_LEN = 255
MAX_RESTOCK = 1_000_000_000


def _storable(text: str) -> bool:
    """True unless ``text`` holds lone surrogates, which no store can encode.

    A string the store cannot write fails the whole group commit it lands
    in, so it is refused here, before it can fail other buyers' orders.
    """
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _tick_for(ref: pykka.ActorRef[Any], at: int) -> Callable[[asyncio.Future[Any]], tuple[pykka.ActorRef[Any], object]]:
    return lambda fut: (ref, Tick(at, fut))


class PurchaseRequest(NamedTuple):
    """One purchase for :meth:`SaleEngine.purchase_many`."""

    sku: str
    user: str
    qty: int = 1
    idempotency_key: str | None = None
    client_ip: str | None = None
    request_id: str = ""


class _Gathered:
    """The answers of one :meth:`SaleEngine.purchase_many` call."""

    __slots__ = ("future", "left", "results")

    def __init__(self, n: int, future: asyncio.Future[list[Outcome]]) -> None:
        self.results: list[Outcome | None] = [None] * n
        self.left = n
        self.future = future


class _Slot:
    """One purchase's place in a :class:`_Gathered`; a :class:`actors.Reply`."""

    __slots__ = ("_done", "_gathered", "_index")

    def __init__(self, gathered: _Gathered, index: int) -> None:
        self._gathered = gathered
        self._index = index
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, outcome: Outcome, /) -> None:
        self._done = True
        g = self._gathered
        g.results[self._index] = outcome
        g.left -= 1
        if not g.left and not g.future.done():
            g.future.set_result(g.results)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one :meth:`SaleEngine.tick` did.

    ``expired``: reservations whose payment time ran out; ``released``:
    queued purchases whose turn came (sent on to be decided); ``queued``:
    purchases still waiting their turn in a leaky bucket's queue.
    """

    expired: int
    released: int
    queued: int


class _Waker:
    """The limiter's ``wake`` reply: one loop timer for the next queued release.

    The limiter says when its earliest queued purchase is due; this keeps a
    single timer for the earliest instant it has heard of and, when it
    fires, sends the limiter a tick. Only ever called on the loop.
    """

    __slots__ = ("_due", "_engine", "_timer")

    def __init__(self, engine: SaleEngine) -> None:
        self._engine = engine
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0

    def done(self) -> bool:
        return False

    def set_result(self, due: int, /) -> None:
        if self._timer is not None:
            if due >= self._due:
                return
            self._timer.cancel()
        engine = self._engine
        if not engine.running or engine._loop is None:
            return
        self._due = due
        self._timer = engine._loop.call_later(max(0, due - engine.clock()) / 1_000_000, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._engine._tell_limiter_tick(None)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


@dataclass(frozen=True, slots=True)
class SkuStatus:
    """A SKU as a buyer sees it now."""

    sku: str
    stock: int
    remaining: int
    reserved: int
    paid: int
    state: SkuState
    starts_at: int | None
    ends_at: int | None


class SaleEngine(RoomCalls):
    """A running sale: purchases in, decisions out.

    Use as ``async with SaleEngine(config) as engine: ...`` or call
    :meth:`start` and :meth:`stop`. Pass ``store`` to use another
    :class:`actors.OrderStore`, ``clock`` for virtual time, and
    ``recorder`` to write the traffic it sees as a replayable scenario.
    With ``[waiting_room]`` the room's calls are here too (:class:`room.RoomCalls`);
    ``room_seed`` fixes its draw (replays), else it comes from a CSPRNG.
    """

    def __init__(
        self,
        config: Config,
        *,
        store: OrderStore | None = None,
        clock: Clock | None = None,
        recorder: ScenarioRecorder | None = None,
        room_seed: bytes | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or wall_clock
        self._recorder = recorder
        self._store: OrderStore = store or SQLiteOrderStore(config.store.path, synchronous=config.store.synchronous)
        self._views: dict[str, SkuView] = {}
        self._pending: list[Purchase] = []
        self._inflight = 0
        self._running = False
        self._idle: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bridge: LoopBridge | None = None
        self._pipeline = Pipeline()
        self._actors: list[pykka.ActorRef[Any]] = []
        self.gauges = WriterGauges()
        self.limiter_gauges = LimiterGauges()
        self._sold_out: dict[tuple[str, int], Outcome] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._waker: _Waker | None = None
        self._ledger: RedisLedger | None = None
        self._breaker: Breaker | None = None
        self._sink: OrderSink | None = None
        limits = config.limits
        self._max_qty = limits.max_qty
        self._max_inflight = limits.max_inflight
        self._max_backlog = limits.max_writer_backlog
        self.waiting_room: Room | None = make_room(config.waiting_room, self._views, self.clock, room_seed)

    # -- life cycle -----------------------------------------------------------

    async def start(self) -> None:
        """Recover from the store and start the actors."""
        if self._running:
            return
        loop = self._loop = asyncio.get_running_loop()
        bridge = self._bridge = LoopBridge(loop)
        if self.waiting_room is not None:  # first: a missing pass key stops the start before anything runs
            await self.waiting_room.start(loop, bridge, real_time=self.config.tick_interval > 0)
        if self.config.backend == "redis":
            await self._start_on_ledger(bridge)
            self._started(loop, len(self._actors))
            return
        try:
            # In async mode up to this many orders can be confirmed and not yet
            # written (the gateway refuses beyond it); the next start skips them.
            async_bound = self._max_backlog + self._max_inflight if self.config.store.durability == "async" else 0
            recovered = await asyncio.to_thread(self._store.open, [s.id for s in self.config.skus], async_bound)
        except StoreError as exc:
            raise Unavailable(str(exc)) from exc
        cfg = self.config
        pipeline = self._pipeline
        pipeline.writer = OrderWriterActor.start(pipeline, bridge, store=self._store, gauges=self.gauges)
        durable = cfg.store.durability == "commit"
        inventories: list[pykka.ActorRef[Any]] = []
        for shard in self._shards():
            stocks = [
                SkuStock(
                    s.id,
                    s.stock,
                    totals=recovered.skus.get(s.id),
                    starts_at=s.starts_at,
                    ends_at=s.ends_at,
                    hold_us=round(s.payment_timeout * 1_000_000),
                )
                for s in (cfg.sku(sku) for sku in shard)
            ]
            ref = InventoryActor.start(pipeline, bridge, skus=stocks, views=self._views, durable=durable)
            inventories.append(ref)
            for sku in shard:
                pipeline.inventory_of[sku] = ref
        pipeline.dedup = DedupActor.start(
            pipeline,
            bridge,
            per_user_limit={s.id: s.per_user_limit for s in cfg.skus},
            recovered=recovered,
            key_ttl_us=round(cfg.limits.idempotency_ttl * 1_000_000),
            max_keys=cfg.limits.max_idempotency_keys,
        )
        pipeline.dedup_skus = frozenset(s.id for s in cfg.skus if s.per_user_limit is not None)
        lim = cfg.limits
        front = self._start_limiter(bridge, lim.global_bucket, lim.per_sku, lim.per_user, lim.per_ip)
        # Stop order matters: each stage is stopped after everything upstream.
        self._actors = [*front, *inventories, pipeline.writer, pipeline.dedup]
        self._started(loop, len(inventories))

    def _started(self, loop: asyncio.AbstractEventLoop, inventories: int) -> None:
        cfg = self.config
        self._idle = asyncio.Event()
        self._running = True
        if cfg.tick_interval > 0:
            self._ticker = loop.create_task(self._tick_forever(cfg.tick_interval), name="flashsale-ticker")
        log.info(
            "sale started",
            extra={
                "skus": len(cfg.skus),
                "inventory_actors": inventories,
                "backend": cfg.backend,
                "durability": cfg.store.durability,
            },
        )

    def _shards(self) -> list[list[str]]:
        """SKU ids per inventory actor; crc32, not hash(): the same SKU lands on the same owner in every process."""
        shards: list[list[str]] = [[] for _ in range(min(self.config.inventory_actors, len(self.config.skus)))]
        for s in self.config.skus:
            shards[zlib.crc32(s.id.encode()) % len(shards)].append(s.id)
        return [shard for shard in shards if shard]

    def _start_limiter(
        self,
        bridge: LoopBridge,
        global_bucket: BucketSpec | None,
        per_sku: BucketSpec | None,
        per_user: BucketSpec | None = None,
        per_ip: BucketSpec | None = None,
    ) -> list[pykka.ActorRef[Any]]:
        """Start the limiter for the scopes kept in this process, if any are configured."""
        if all(b is None for b in (global_bucket, per_sku, per_user, per_ip)):
            return []
        # On virtual time (no ticker) queued purchases are released by tick(); in real time, by a timer.
        self._waker = _Waker(self) if self.config.tick_interval > 0 else None
        self._pipeline.limiter = LimiterActor.start(
            self._pipeline,
            bridge,
            global_bucket=global_bucket,
            per_sku=per_sku,
            per_user=per_user,
            per_ip=per_ip,
            max_tracked_users=self.config.limits.max_tracked_users,
            wake=self._waker,
            gauges=self.limiter_gauges,
        )
        return [self._pipeline.limiter]

    async def _start_on_ledger(self, bridge: LoopBridge) -> None:
        """Open the Redis ledger, start the ledger stages and the order sink (``backend = "redis"``)."""
        from .redis import OrderSink, RedisLedger  # noqa: PLC0415 - only this backend needs redis and psycopg

        cfg = self.config
        limits = cfg.limits
        ledger = self._ledger = RedisLedger(
            cfg.redis,
            skus=[s.id for s in cfg.skus],
            idempotency_ttl=limits.idempotency_ttl,
            per_user=limits.per_user,
            per_ip=limits.per_ip,
        )
        skus = [
            LedgerSku(s.id, s.stock, s.per_user_limit, s.starts_at, s.ends_at, round(s.payment_timeout * 1_000_000))
            for s in cfg.skus
        ]
        try:
            views = await asyncio.to_thread(ledger.open, skus)
        except LedgerError as exc:
            ledger.close()
            raise Unavailable(str(exc)) from exc
        for view in views:
            self._views[view.sku] = view
        breaker = self._breaker = Breaker(cfg.redis.breaker_failures, round(cfg.redis.breaker_reset * 1_000_000))
        pipeline = self._pipeline
        pipeline.ledger = True
        inventories: list[pykka.ActorRef[Any]] = []
        for shard in self._shards():
            ref = LedgerInventoryActor.start(
                pipeline, bridge, ledger=ledger, skus=shard, views=self._views, breaker=breaker
            )
            inventories.append(ref)
            for sku in shard:
                pipeline.inventory_of[sku] = ref
        # The global and per-SKU scopes are kept in each process; per-user and per-IP buckets are shared in Redis.
        front = self._start_limiter(bridge, limits.global_bucket, limits.per_sku)
        if limits.per_user is not None or limits.per_ip is not None:
            pipeline.shared_limiter = SharedLimiterActor.start(pipeline, bridge, ledger=ledger, breaker=breaker)
            front.append(pipeline.shared_limiter)
        self._actors = [*front, *inventories]
        self._sink = OrderSink(
            cfg.redis, cfg.postgres, f"{socket.gethostname()}:{os.getpid()}", [s.id for s in cfg.skus]
        )
        self._sink.start()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking purchases, answer those in flight, flush, stop the actors.

        ``grace`` bounds each wait (in-flight answers, then the final flush).
        """
        if not self._running:
            return
        self._running = False
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._waker is not None:
            self._waker.cancel()
        if self.waiting_room is not None:
            await self.waiting_room.stop()
        assert self._idle is not None
        assert self._loop is not None
        try:
            if self._pipeline.limiter is not None:
                # Purchases waiting in a leaky bucket's queue are answered now, not left hanging.
                self._send_batch()
                drained: asyncio.Future[int] = self._loop.create_future()
                self._pipeline.limiter.tell(DrainQueue(drained))
                await asyncio.wait_for(drained, grace)
            if self._inflight:
                await asyncio.wait_for(self._idle.wait(), grace)
            if self._ledger is None:
                await asyncio.wait_for(self._ask_writer_flush(), grace)
        except TimeoutError:
            log.error(
                "stopped with work unfinished", extra={"inflight": self._inflight, "backlog": self.gauges.backlog}
            )
        await asyncio.to_thread(self._stop_actors, grace)
        log.info("sale stopped", extra={"orders_committed": self.gauges.orders_committed})

    def _stop_actors(self, grace: float) -> None:
        for ref in self._actors:
            ref.stop(block=True)  # runs in a worker thread, never on the loop
        self._actors = []
        if self._sink is not None:
            self._sink.stop(grace)  # what it read is written and acknowledged; the rest stays pending in Redis
        if self._ledger is not None:
            self._ledger.close()

    async def _ask_writer_flush(self) -> None:
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        self._pipeline.writer.tell(Flush(fut))
        await fut

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._running

    # -- purchases ------------------------------------------------------------

    async def purchase(
        self,
        sku: str,
        user: str,
        qty: int = 1,
        *,
        idempotency_key: str | None = None,
        client_ip: str | None = None,
        request_id: str = "",
    ) -> Outcome:
        """Try to buy ``qty`` units of ``sku`` for ``user``.

        Returns an :class:`actors.Outcome`; raises only for calls that cannot
        be answered: :class:`InvalidRequest`, :class:`UnknownSku`,
        :class:`EngineClosed`.
        """
        at = self._check(sku, user, qty, idempotency_key, request_id)
        if self._recorder is not None:
            self._recorder.purchase(at, sku, user, qty, idempotency_key, client_ip)
        early = self._early_answer(sku, qty, at, idempotency_key, 1)
        if early is not None:
            return early
        assert self._loop is not None
        reply: asyncio.Future[Outcome] = self._loop.create_future()
        self._enqueue(fast_new(Purchase, (request_id, sku, user, qty, at, idempotency_key, client_ip, reply)))
        self._inflight += 1
        try:
            return await reply
        finally:
            self._done(1)

    async def purchase_many(self, requests: Sequence[PurchaseRequest]) -> list[Outcome]:
        """Decide a whole batch of purchases; outcomes in the order given.

        For services that already hold a batch (a queue consumer, say): one
        awaitable for the batch instead of one per purchase. Every request is
        validated before any is submitted, so an :class:`InvalidRequest`
        means nothing of the batch was tried.
        """
        stamped = [self._check(r.sku, r.user, r.qty, r.idempotency_key, r.request_id) for r in requests]
        if not stamped:
            return []
        if self._recorder is not None:
            for r, at in zip(requests, stamped, strict=True):
                self._recorder.purchase(at, r.sku, r.user, r.qty, r.idempotency_key, r.client_ip)
        assert self._loop is not None
        gathered = _Gathered(len(stamped), self._loop.create_future())
        results = gathered.results
        sent = 0
        for i, (r, at) in enumerate(zip(requests, stamped, strict=True)):
            early = self._early_answer(r.sku, r.qty, at, r.idempotency_key, sent + 1)
            if early is not None:
                results[i] = early
                gathered.left -= 1
                continue
            sent += 1
            self._enqueue(
                fast_new(
                    Purchase,
                    (r.request_id, r.sku, r.user, r.qty, at, r.idempotency_key, r.client_ip, _Slot(gathered, i)),
                )
            )
        if not gathered.left:
            return results  # type: ignore[return-value]
        self._inflight += sent
        try:
            return await gathered.future
        finally:
            self._done(sent)

    def _check(self, sku: str, user: str, qty: int, idempotency_key: str | None, request_id: str) -> int:
        """Validate one purchase; return its arrival time."""
        if type(sku) is not str:
            raise InvalidRequest("sku", "must be a string")
        if sku not in self._views:
            if not self._running:
                raise EngineClosed("the sale engine is not running")
            raise UnknownSku(sku)
        if type(qty) is not int or not 0 < qty <= self._max_qty:
            raise InvalidRequest("qty", f"must be a whole number from 1 to {self._max_qty}")
        if type(user) is not str or not 0 < len(user) <= MAX_USER_LEN or not _storable(user):
            raise InvalidRequest("user", f"must be a non-empty string of at most {MAX_USER_LEN} characters")
        if idempotency_key is not None and (
            type(idempotency_key) is not str
            or not 0 < len(idempotency_key) <= MAX_KEY_LEN
            or not _storable(idempotency_key)
        ):
            raise InvalidRequest("idempotency_key", f"must be 1 to {MAX_KEY_LEN} characters")
        if type(request_id) is not str or not _storable(request_id):
            raise InvalidRequest("request_id", "must be a string")
        if not self._running:
            raise EngineClosed("the sale engine is not running")
        return self.clock()

    def _early_answer(self, sku: str, qty: int, at: int, idempotency_key: str | None, adding: int) -> Outcome | None:
        """The answer that needs no actor, if there is one.

        Sold out and off-sale are read from the published view. Keyed
        requests skip that: a retry must get its first answer back, which
        only the dedup actor knows.
        """
        view = self._views[sku]
        if idempotency_key is None:
            # The window before stock, in the inventory actor's order: the
            # shortcut must give the answer the SKU's owner would give.
            if (view.starts_at is not None and at < view.starts_at) or (
                view.ends_at is not None and at >= view.ends_at
            ):
                ended = view.state(at) == "ended"
                return Outcome(
                    "sale_not_open", sku, qty, detail="the sale has ended" if ended else "the sale has not started yet"
                )
            if view.remaining <= 0:
                return self._sold_out.get((sku, qty)) or self._sold_out.setdefault(
                    (sku, qty), Outcome("sold_out", sku, qty, detail="sold out")
                )
        if self._inflight + adding > self._max_inflight or self.gauges.backlog >= self._max_backlog:
            return Outcome("overloaded", sku, qty, detail="too many purchases in flight; retry shortly")
        if self._breaker is not None and (self._breaker.rejects(at) or not self._sink_ok()):
            return Outcome("unavailable", sku, qty, detail="the order ledger or database is down; retry shortly")
        return None

    def _sink_ok(self) -> bool:
        return self._sink is None or self._sink.gauges.ok

    def _enqueue(self, purchase: Purchase) -> None:
        pending = self._pending
        if not pending:
            assert self._loop is not None
            self._loop.call_soon(self._send_batch)
        pending.append(purchase)

    def _done(self, n: int) -> None:
        self._inflight -= n
        if not self._inflight and not self._running:
            assert self._idle is not None
            self._idle.set()

    def _send_batch(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            self._pipeline.admit(tuple(batch))

    # -- queries and admin ----------------------------------------------------

    def view(self, sku: str) -> SkuView:
        """The latest published view of ``sku`` (no message, no wait)."""
        view = self._views.get(sku)
        if view is None:
            raise UnknownSku(sku)
        return view

    async def sku_status(self, sku: str) -> SkuStatus:
        """Stock counters and sale state of ``sku`` now."""
        v = self.view(sku)
        return SkuStatus(v.sku, v.stock, v.remaining, v.reserved, v.paid, v.state(self.clock()), v.starts_at, v.ends_at)

    async def order(self, order_id: str) -> Order:
        """The order with this id, committed or about to be."""
        if type(order_id) is not str or not _storable(order_id):
            raise InvalidRequest("order_id", "must be a string")
        found = await self._ask(lambda fut: (self._order_owner(order_id), GetOrder(order_id, fut)))
        if found is None:
            raise UnknownOrder(order_id)
        assert isinstance(found, Order)
        return found

    async def restock(self, sku: str, qty: int) -> SkuView:
        """Add ``qty`` units to ``sku``; returns the view once the restock is stored."""
        if not self._running:
            raise EngineClosed("the sale engine is not running")
        self.view(sku)
        if type(qty) is not int or not 0 < qty <= MAX_RESTOCK:
            # Bounded: a quantity the store cannot write would be retried ahead of every later commit.
            raise InvalidRequest("qty", f"must be a whole number from 1 to {MAX_RESTOCK}")
        at = self.clock()
        view = await self._ask(lambda fut: (self._pipeline.inventory_of[sku], Restock(sku, qty, at, fut)))
        assert isinstance(view, SkuView)
        if self._recorder is not None:
            self._recorder.operation(at, "restock", sku=sku, qty=qty)
        return view

    async def pay(self, order_id: str) -> Order:
        """Mark a reserved order paid; returns the paid order.

        Raises :class:`UnknownOrder`, :class:`TransitionRefused` (not
        reserved, or its payment time ran out) or :class:`Unavailable`.
        """
        return await self._change(order_id, "paid")

    async def cancel(self, order_id: str) -> Order:
        """Cancel a reserved order: its units go back on sale and back to the buyer's allowance."""
        return await self._change(order_id, "cancelled")

    async def _change(self, order_id: str, status: Literal["paid", "cancelled"]) -> Order:
        if type(order_id) is not str or not _storable(order_id):
            raise InvalidRequest("order_id", "must be a string")
        at = self.clock()
        result = await self._ask(lambda fut: (self._order_owner(order_id), ChangeOrder(order_id, status, at, fut)))
        assert isinstance(result, ChangeResult)
        if self._recorder is not None:
            self._recorder.operation(at, "pay" if status == "paid" else "cancel", order=order_id)
        if result.refused == "unknown_order":
            raise UnknownOrder(order_id)
        if result.refused == "unavailable":
            raise Unavailable("the order store could not record the change")
        assert result.order is not None
        if result.refused:
            raise TransitionRefused(result.order, result.refused)
        return result.order

    async def expire_due(self) -> int:
        """Expire every reservation whose payment time has run out by now; returns how many.

        :meth:`tick` calls this (the engine ticks every ``tick_interval``
        seconds); with ``tick_interval = 0`` (virtual time, replays) the
        caller does.
        """
        at = self.clock()
        if self._ledger is None:
            expired = await self._ask(lambda fut: (self._pipeline.writer, Tick(at, fut)))
            assert isinstance(expired, int)
        else:
            owners = set(self._pipeline.inventory_of.values())
            # An owner whose ledger call failed expires nothing now; the next tick tries again.
            counts = await asyncio.gather(*(self._ask(_tick_for(ref, at)) for ref in owners), return_exceptions=True)
            expired = sum(c for c in counts if isinstance(c, int))
        if expired and self._recorder is not None:
            self._recorder.operation(at, "expire")  # a tick that expired nothing changed nothing
        return expired

    def _order_owner(self, order_id: str) -> pykka.ActorRef[Any]:
        """Who answers for an order: the writer, or (on a ledger) the owner of the SKU its id names."""
        if self._ledger is None:
            return self._pipeline.writer
        owner = self._pipeline.inventory_of.get(order_id.rpartition("-")[0])
        if owner is None:
            raise UnknownOrder(order_id)
        return owner

    async def tick(self) -> TickReport:
        """Bring the actors up to now: expire overdue reservations and release queued purchases.

        The engine calls this every ``tick_interval`` seconds. On virtual time
        (``tick_interval = 0``) a replay moves its clock and calls this once:
        every release due by then is sent on, and ``queued`` says how many
        purchases are still waiting their turn (not lost).
        """
        if not self._running or self._loop is None:
            raise EngineClosed("the sale engine is not running")
        released, queued, _ = await self._release_queued()
        return TickReport(await self.expire_due(), released, queued)

    async def _release_queued(self) -> tuple[int, int, int | None]:
        """Deliver the time to the limiter: (released, still queued, when the next release is due)."""
        if self._pipeline.limiter is None or self._loop is None:
            return 0, 0, None
        fut: asyncio.Future[tuple[int, int, int | None]] = self._loop.create_future()
        self._tell_limiter_tick(fut)
        result = await fut
        if isinstance(result, Exception):
            raise Unavailable(str(result))
        return result

    def _tell_limiter_tick(self, reply: asyncio.Future[tuple[int, int, int | None]] | None) -> None:
        """Send the limiter the time, behind any purchases of this loop tick not yet sent."""
        limiter = self._pipeline.limiter
        if limiter is None or not self._running:
            return
        self._send_batch()
        limiter.tell(LimiterTick(self.clock(), reply))

    async def _tick_forever(self, interval: float) -> None:
        """Tick every ``interval`` seconds: time enters the actors as data."""
        while self._running:
            await asyncio.sleep(interval)
            try:
                report = await self.tick()
            except EngineClosed:
                return
            except Unavailable as exc:  # the store or an actor failed this tick; the next one tries again
                log.warning("tick failed", extra={"reason": str(exc)})
                continue
            if report.expired:
                log.info("reservations expired", extra={"count": report.expired})

    async def flush(self, grace: float = 10.0) -> None:
        """Wait until everything answered so far is committed.

        On a ledger an answer is already confirmed in Redis; this waits (up
        to ``grace`` seconds) until the order sink has it in PostgreSQL.
        """
        if self._sink is None:
            await self._ask(lambda fut: (self._pipeline.writer, Flush(fut)))
            return
        if not self._running:
            raise EngineClosed("the sale engine is not running")
        if not await asyncio.to_thread(self._sink.drain, grace):
            raise Unavailable(f"the orders stream did not reach PostgreSQL within {grace} s")

    async def _ask(self, make: Callable[[asyncio.Future[Any]], tuple[pykka.ActorRef[Any], object]]) -> object:
        if not self._running or self._loop is None:
            raise EngineClosed("the sale engine is not running")
        fut: asyncio.Future[Any] = self._loop.create_future()
        ref, message = make(fut)
        ref.tell(message)
        result = await fut
        if isinstance(result, Exception):  # the store's error, or the actor failed on this request
            raise Unavailable(str(result))
        return result

    def readiness(self) -> dict[str, bool]:
        """What /readyz reports: each check and whether it passes."""
        if self._breaker is not None:
            return {
                "running": self._running,
                "actors_alive": bool(self._actors) and all(ref.is_alive() for ref in self._actors),
                "redis_ok": self._breaker.closed,
                "postgres_ok": self._sink_ok(),
                "below_inflight_limit": self._inflight < self._max_inflight,
            }
        return {
            "running": self._running,
            "actors_alive": bool(self._actors) and all(ref.is_alive() for ref in self._actors),
            "store_ok": self.gauges.store_ok,
            "writer_keeping_up": self.gauges.backlog < self._max_backlog,
            # With durability "commit" a slow store shows here: answers wait on commits.
            "below_inflight_limit": self._inflight < self._max_inflight,
        }

    @property
    def sink_gauges(self) -> SinkGauges | None:
        """The order sink's gauges (``backend = "redis"``); ``None`` in memory mode."""
        return None if self._sink is None else self._sink.gauges

    @property
    def inflight(self) -> int:
        return self._inflight
