"""SaleEngine: the one entry point to a running sale, a facade over its backend.

Per purchase the engine does the cheap things on the loop — validate
(:mod:`._validate`), stamp the arrival time from the injected clock, answer
from the published :class:`SkuView` when the sale is closed or sold out —
and otherwise adds it to the current loop tick's batch (:mod:`._batcher`),
which goes to the backend's pipeline as one message; answers come back one
loop wake-up per batch. Where purchases are decided is the backend's
(:mod:`._backend`), chosen once at start; nothing here asks which one runs.
Nothing here blocks the loop, and no pykka future is ever waited on. The
sale's other calls (orders, time, the operator's) are in :mod:`._sale_calls`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Self

from flashsale.actors import (
    DrainQueue,
    LimiterGauges,
    LoopBridge,
    OrderIds,
    OrderStore,
    Outcome,
    Pipeline,
    Purchase,
    SkuView,
    WriterGauges,
    fast_new,
)
from flashsale.actors.rules import shortcut

from ._backend import Backend, StartContext
from ._backends import backend_for
from ._batcher import Gathered, Slot, TickBatcher
from ._clock import Clock, wall_clock
from ._errors import EngineClosed, InvalidRequest, UnknownSku
from ._operator import Operator
from ._orders import OrderDesk
from ._sale_calls import SaleCalls
from ._types import PurchaseRequest, SkuStatus
from ._validate import check_purchase
from ._waker import Waker, tick_every
from .config import Config
from .room import Room, RoomCalls, make_room

if TYPE_CHECKING:
    from flashsale.actors import KeyGauges

    from .redis import SinkGauges
    from .scenario import ScenarioRecorder

log = logging.getLogger("flashsale.engine")


class SaleEngine(SaleCalls, RoomCalls):
    """A running sale: purchases in, decisions out.

    Use as ``async with SaleEngine(config) as engine: ...`` or call
    :meth:`start` and :meth:`stop`. Pass ``store`` to use another
    :class:`flashsale.actors.OrderStore` (memory backend), ``clock`` for
    virtual time, ``recorder`` to write the traffic it sees as a replayable
    scenario, and ``backend`` to run on a backend of your own (see
    :class:`flashsale._backend.Backend`) instead of the one ``config.backend``
    names. ``order_ids`` mints order ids with a known key (replays); by
    default a fresh random key: ids nobody can guess.

    Orders act only for their buyer: :meth:`order`, :meth:`pay` and
    :meth:`cancel` take the authenticated ``user`` and answer
    :class:`UnknownOrder` to anyone else, exactly as for a missing id.
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
        backend: Backend | None = None,
        order_ids: OrderIds | None = None,
        room_seed: bytes | None = None,
    ) -> None:
        self.config = config
        self._order_ids = order_ids or OrderIds.random()
        self.clock: Clock = clock or wall_clock
        self._recorder = recorder
        self._backend: Backend = backend or backend_for(config, store)
        self._views: dict[str, SkuView] = {}
        self._inflight = 0
        self._running = False
        self._idle: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pipeline = Pipeline()
        self._batcher: TickBatcher | None = None
        self.gauges = WriterGauges()
        self.limiter_gauges = LimiterGauges()
        self._sold_out: dict[tuple[str, int], Outcome] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._waker: Waker | None = None
        self._orders = OrderDesk(self._backend, self.clock, lambda: self._loop if self._running else None, recorder)
        limits = config.limits
        self._max_qty = limits.max_qty
        self._max_inflight = limits.max_inflight
        self.waiting_room: Room | None = make_room(
            config.waiting_room, self._views, self.clock, room_seed, lambda: self._backend.room_ledger(config)
        )
        if self.waiting_room is not None:
            self.waiting_room.recorder = recorder  # joins, polls and the room's ticks
        self._operator = Operator(self)

    # -- life cycle -----------------------------------------------------------

    async def start(self) -> None:
        """Open the store or ledger, recover, and start the actors."""
        if self._running:
            return
        loop = self._loop = asyncio.get_running_loop()
        bridge = LoopBridge(loop)
        if self.waiting_room is not None:  # first: a missing pass key stops the start before anything runs
            await self.waiting_room.start(loop, bridge, real_time=self.config.tick_interval > 0)
        cfg = self.config
        if cfg.tick_interval > 0:
            # On virtual time (no ticker) queued purchases are released by release_queued(); in real time, by a timer.
            self._waker = Waker(loop, self.clock, lambda: self._tell_limiter_tick(None), lambda: self._running)
        ctx = StartContext(
            cfg,
            loop,
            bridge,
            self._pipeline,
            self._views,
            self._waker,
            self.gauges,
            self.limiter_gauges,
            order_ids=self._order_ids,
        )
        await self._backend.start(ctx)
        self._batcher = TickBatcher(loop, self._pipeline.admit)
        self._idle = asyncio.Event()
        self._running = True
        if cfg.tick_interval > 0:
            ticking = tick_every(cfg.tick_interval, self._operator.tick(self.tick), lambda: self._running)
            self._ticker = loop.create_task(ticking, name="flashsale-ticker")
        started: dict[str, object] = {
            "skus": len(cfg.skus),
            "inventory_actors": len(set(self._pipeline.inventory_of.values())),
            "backend": self._backend.name,
        }
        if self._backend.name == "memory":  # the store's setting; with redis, orders are confirmed in Redis
            started["durability"] = cfg.store.durability
        log.info("sale started", extra=started)

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
            await asyncio.wait_for(self._backend.settle(), grace)
        except TimeoutError:
            log.error(
                "stopped with work unfinished", extra={"inflight": self._inflight, "backlog": self.gauges.backlog}
            )
        await asyncio.to_thread(self._backend.close, grace)  # stops actors: a worker thread, never the loop
        # The order writer's count; with redis the order sink moves the orders and logs its own lines.
        committed = {"orders_committed": self.gauges.orders_committed} if self._backend.name == "memory" else {}
        log.info("sale stopped", extra=committed)

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

        Returns an :class:`flashsale.actors.Outcome`; raises only for calls
        that cannot be answered: :class:`InvalidRequest`, :class:`UnknownSku`,
        :class:`EngineClosed`.
        """
        at = self._check(sku, user, qty, idempotency_key, request_id)
        if self._recorder is not None:
            self._recorder.purchase(at, sku, user, qty, idempotency_key, client_ip)
        early = self._early_answer(sku, qty, at, idempotency_key, 1)
        if early is not None:
            return early
        assert self._loop is not None
        assert self._batcher is not None
        reply: asyncio.Future[Outcome] = self._loop.create_future()
        self._batcher.add(fast_new(Purchase, (request_id, sku, user, qty, at, idempotency_key, client_ip, reply)))
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
        assert self._batcher is not None
        gathered = Gathered(len(stamped), self._loop.create_future())
        results = gathered.results
        sent = 0
        for i, (r, at) in enumerate(zip(requests, stamped, strict=True)):
            early = self._early_answer(r.sku, r.qty, at, r.idempotency_key, sent + 1)
            if early is not None:
                results[i] = early
                gathered.left -= 1
                continue
            sent += 1
            self._batcher.add(
                fast_new(
                    Purchase,
                    (r.request_id, r.sku, r.user, r.qty, at, r.idempotency_key, r.client_ip, Slot(gathered, i)),
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
        check_purchase(user, qty, idempotency_key, request_id, self._max_qty)
        if not self._running:
            raise EngineClosed("the sale engine is not running")
        return self.clock()

    def _early_answer(self, sku: str, qty: int, at: int, idempotency_key: str | None, adding: int) -> Outcome | None:
        """The answer that needs no actor, if there is one.

        Sold out and off-sale are read from the published view, in the order
        of :mod:`flashsale.actors.rules`. Keyed requests skip that: a retry
        must get its first answer back, which only the deciding stage knows.
        """
        view = self._views[sku]
        if idempotency_key is None:
            # On a ledger Lua decides a pause: a resume on another process counts at once.
            paused = view.paused and not self._pipeline.ledger
            refused = shortcut(view.starts_at, view.ends_at, view.remaining, at, paused=paused)
            if refused is not None:
                if refused[0] == "sold_out":  # the common answer: one value per (sku, qty), made once
                    return self._sold_out.get((sku, qty)) or self._sold_out.setdefault(
                        (sku, qty), Outcome("sold_out", sku, qty, detail=refused[1])
                    )
                return Outcome(refused[0], sku, qty, detail=refused[1])
        if self._inflight + adding > self._max_inflight:
            return Outcome("overloaded", sku, qty, detail="too many purchases in flight; retry shortly")
        down = self._backend.refusal(at)
        if down is not None:
            return Outcome(down[0], sku, qty, detail=down[1])
        return None

    def _done(self, n: int) -> None:
        self._inflight -= n
        if not self._inflight and not self._running:
            assert self._idle is not None
            self._idle.set()

    def _send_batch(self) -> None:
        if self._batcher is not None:
            self._batcher.send()

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

    def readiness(self) -> dict[str, bool]:
        """What /readyz reports: each check and whether it passes."""
        return {
            "running": self._running,
            "actors_alive": bool(self._backend.actors) and all(ref.is_alive() for ref in self._backend.actors),
            **self._backend.readiness(),
            # With durability "commit" a slow store shows here: answers wait on commits.
            "below_inflight_limit": self._inflight < self._max_inflight,
        }

    @property
    def key_gauges(self) -> KeyGauges | None:
        """The idempotency key table's fill (memory backend: the dedup actor's table); ``None`` on a ledger."""
        gauges: KeyGauges | None = getattr(self._backend, "key_gauges", None)
        return gauges

    @property
    def sink_gauges(self) -> SinkGauges | None:
        """The order sink's gauges (``backend = "redis"``); ``None`` in memory mode."""
        gauges: SinkGauges | None = getattr(self._backend, "sink_gauges", None)
        return gauges

    @property
    def inflight(self) -> int:
        return self._inflight
