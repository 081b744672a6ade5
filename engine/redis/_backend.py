"""The redis backend: one sale shared by many processes through Redis and PostgreSQL.

``backend = "redis"``. Stages, each a pykka thread::

    LimiterActor (global, per-SKU; optional) -> SharedLimiterActor (per user, per IP in Redis; optional)
        -> LedgerInventoryActor[sku] -> RedisLedger (one Lua call per SKU per batch)

The Lua call decides and records a purchase (window, idempotency record,
per-user limit, stock; then the order row onto the orders stream), so a
purchase is confirmed when it returns. The :class:`OrderSink` moves the
stream into PostgreSQL in its own threads. Without a sink (``sink=None``:
scenario replays) orders stay in Redis and are read from the ledger.

Every ledger call is guarded by one :class:`Breaker`: while it is open, or
the sink cannot reach PostgreSQL, purchases are refused ``unavailable`` on
the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

import psycopg
import pykka

from flashsale._backend import StartContext, ask, shards, start_limiter
from flashsale._errors import Unavailable
from flashsale.actors import (
    Breaker,
    BucketSpec,
    LedgerError,
    LedgerInventoryActor,
    LedgerSku,
    Order,
    Result,
    RoomLedger,
    Scope,
    SharedLimiterActor,
    Tick,
    order_sku,
)
from flashsale.config import Config

from ._archive import OrderArchive
from ._ledger import RedisLedger
from ._rebuild import RebuildError, SaleRebuilder
from ._room import RedisRoomLedger
from ._room_seed import RoomSeeds
from ._schema import sale_key
from ._sink import OrderSink
from ._sink_gauges import SinkGauges

log = logging.getLogger("flashsale.engine")

_DOWN = "the order ledger or database is down; retry shortly"
ARCHIVE_LOOKUPS = 4
"""Order lookups in PostgreSQL in flight at once (orders Redis does not have)."""
SINK_FIRST_ANSWER = 10.0
"""Seconds a starting worker waits for PostgreSQL's first answer to its order sink (it has checked the server
already); after them it serves, and purchases say ``unavailable`` until the sink is connected."""


class RedisBackend:
    """Decides on a :class:`RedisLedger`; moves orders to PostgreSQL with an :class:`OrderSink`.

    ``sink=False`` runs without PostgreSQL (scenario replays): orders stay
    in Redis, where lookups, pay and cancel read them anyway. ``scratch``
    deletes every key under ``[redis] prefix`` when the engine stops: for a
    prefix made for one run, never a sale's.
    """

    name = "redis"

    def __init__(self, *, sink: bool = True, scratch: bool = False) -> None:
        self.actors: list[pykka.ActorRef[Any]] = []
        self._with_sink = sink
        self._scratch = scratch
        self._ctx: StartContext | None = None
        self._ledger: RedisLedger | None = None
        self._breaker = Breaker(1, 1)  # replaced at start by the configured one
        self._sink: OrderSink | None = None
        self._archive: OrderArchive | None = None  # orders Redis does not have, from PostgreSQL
        self._archive_slots: asyncio.Semaphore | None = None

    @property
    def sink_gauges(self) -> SinkGauges | None:
        return None if self._sink is None else self._sink.gauges

    async def start(self, ctx: StartContext) -> None:
        self._ctx = ctx
        cfg = ctx.config
        limits = cfg.limits
        redis_cfg = cfg.redis
        ledger = self._ledger = RedisLedger(
            redis_cfg,
            skus=[s.id for s in cfg.skus],
            idempotency_ttl=limits.idempotency_ttl,
            keys_per_buyer=limits.max_idempotency_keys_per_buyer,
            keys_per_ip=limits.max_idempotency_keys_per_ip,
            per_user=limits.per_user,
            per_ip=limits.per_ip,
            ids=ctx.order_ids,
        )
        skus = [
            LedgerSku(s.id, s.stock, s.per_user_limit, s.starts_at, s.ends_at, round(s.payment_timeout * 1_000_000))
            for s in cfg.skus
        ]
        try:
            if self._with_sink:  # a Redis that lost the sale gets it back from PostgreSQL before INIT starts it over
                await asyncio.to_thread(SaleRebuilder(redis_cfg, cfg.postgres, limits.idempotency_ttl).run, skus)
            views = await asyncio.to_thread(ledger.open, skus)
        except (LedgerError, RebuildError) as exc:
            ledger.close()
            raise Unavailable(str(exc)) from exc
        if self._with_sink:
            self._archive = OrderArchive(cfg.postgres.url, sale_key(cfg.postgres, redis_cfg))
            self._archive_slots = asyncio.Semaphore(ARCHIVE_LOOKUPS)
        for view in views:
            ctx.views[view.sku] = view
        breaker = self._breaker = Breaker(cfg.redis.breaker_failures, round(cfg.redis.breaker_reset * 1_000_000))
        pipeline, bridge = ctx.pipeline, ctx.bridge
        pipeline.ledger = True
        inventories: list[pykka.ActorRef[Any]] = []
        for shard in shards(cfg):
            ref = LedgerInventoryActor.start(
                pipeline, bridge, ledger=ledger, skus=shard, views=ctx.views, breaker=breaker
            )
            inventories.append(ref)
            for sku in shard:
                pipeline.inventory_of[sku] = ref
        # The global and per-SKU scopes are kept in each process; per-user and per-IP buckets are shared in Redis.
        front = start_limiter(ctx, limits.global_bucket, limits.per_sku)
        if limits.per_user is not None or limits.per_ip is not None:
            pipeline.shared_limiter = SharedLimiterActor.start(pipeline, bridge, ledger=ledger, breaker=breaker)
            front.append(pipeline.shared_limiter)
        self.actors = [*front, *inventories]
        if self._with_sink:
            self._sink = OrderSink(
                redis_cfg, cfg.postgres, f"{socket.gethostname()}:{os.getpid()}", [s.id for s in cfg.skus]
            )
            self._sink.start()
            # Purchases are refused (503) until PostgreSQL has answered the sink: a worker serves after it has,
            # so that one started beside a ready one never turns its first buyers away.
            await asyncio.to_thread(self._sink.answered.wait, SINK_FIRST_ANSWER)

    def refusal(self, at: int) -> tuple[Result, str] | None:
        if self._breaker.rejects(at) or (self._sink is not None and not self._sink.gauges.ok):
            return "unavailable", _DOWN
        return None

    def order_owner(self, order_id: str) -> pykka.ActorRef[Any] | None:
        # An order id is "<sku>-<n>-<tag>": the SKU's owner answers for it.
        return self._started.pipeline.inventory_of.get(order_sku(order_id))

    async def expire(self, at: int) -> int:
        ctx = self._started
        owners = set(ctx.pipeline.inventory_of.values())
        # An owner whose ledger call failed expires nothing now; the next tick tries again.
        counts = await asyncio.gather(
            *(ask(ctx.loop, ref, lambda fut: Tick(at, fut)) for ref in owners),
            return_exceptions=True,
        )
        return sum(c for c in counts if isinstance(c, int))

    async def settle(self) -> None:
        """Nothing to do: an answered purchase is already recorded in Redis."""

    # -- live limits (the admin API): stored in Redis for every process --------

    async def share_limits(self, changes: list[tuple[Scope, BucketSpec]]) -> None:
        ledger = self._ledger
        assert ledger is not None
        try:
            await asyncio.to_thread(ledger.set_limits, changes)
        except LedgerError as exc:
            raise Unavailable(str(exc)) from exc

    async def shared_limits(self) -> dict[str, tuple[float, int]]:
        """The live limits stored in Redis; none while Redis does not answer (the next tick asks again)."""
        ledger = self._ledger
        if ledger is None:
            return {}
        try:
            return await asyncio.to_thread(ledger.live_limits)
        except LedgerError:
            return {}

    async def flush(self, grace: float) -> None:
        """Wait (up to ``grace`` seconds) until the order sink has every order in PostgreSQL."""
        if self._sink is not None and not await asyncio.to_thread(self._sink.drain, grace):
            raise Unavailable(f"the orders stream did not reach PostgreSQL within {grace} s")

    def close(self, grace: float) -> None:
        for ref in self.actors:
            ref.stop(block=True)
        self.actors = []
        if self._sink is not None:
            self._sink.stop(grace)  # what it read is written and acknowledged; the rest stays pending in Redis
        if self._ledger is not None:
            if self._scratch:
                try:
                    self._ledger.delete_all()
                except LedgerError as exc:  # the run's answers stand; only its keys are left behind
                    log.warning("scratch keys not deleted", extra={"reason": str(exc)})
            self._ledger.close()
        if self._archive is not None:
            self._archive.close()

    async def archived(self, order_id: str) -> Order | None:
        """The order as PostgreSQL has it, for an order Redis does not know (it lost its data); else ``None``.

        At most :data:`ARCHIVE_LOOKUPS` at once: beyond that ``Unavailable``
        at once, so made-up ids cannot queue work up on PostgreSQL.
        """
        archive, slots = self._archive, self._archive_slots
        if archive is None or slots is None:
            return None
        if slots.locked():
            raise Unavailable("too many order lookups in PostgreSQL at once; retry shortly")
        async with slots:
            try:
                return await asyncio.to_thread(archive.get, order_id)
            except psycopg.Error as exc:
                raise Unavailable(f"postgresql: {exc}") from exc

    def readiness(self) -> dict[str, bool]:
        return {"redis_ok": self._breaker.closed, "postgres_ok": self._sink is None or self._sink.gauges.ok}

    def room_ledger(self, config: Config) -> RoomLedger | None:
        """The waiting room in Redis, under ``[redis] prefix``: one queue and one draw for every worker.

        With the order sink its seed is kept in PostgreSQL too (:class:`RoomSeeds`).
        """
        seeds = RoomSeeds(config.postgres, sale_key(config.postgres, config.redis)) if self._with_sink else None
        return RedisRoomLedger(config.redis, seeds=seeds)

    @property
    def _started(self) -> StartContext:
        if self._ctx is None:
            raise RuntimeError("the backend has not been started")
        return self._ctx
