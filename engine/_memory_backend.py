"""The memory backend: the four-stage pipeline of one process over an :class:`OrderStore`.

``backend = "memory"`` (the default). Stages, each a pykka thread::

    LimiterActor (optional) -> DedupActor (where needed) -> InventoryActor[sku] -> OrderWriterActor -> OrderStore

State lives in the actors and is recovered from the store at start; the
store (SQLite by default) is written only by the order writer. A purchase
is confirmed when the writer has committed it (``durability = "commit"``)
or when the inventory actor has reserved it (``"async"``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pykka

from flashsale.actors import (
    DedupActor,
    Flush,
    InventoryActor,
    KeyGauges,
    OrderStore,
    OrderWriterActor,
    Result,
    RoomLedger,
    SkuStock,
    StoreError,
    Tick,
    WriterGauges,
)

from ._backend import StartContext, ask, shards, start_limiter
from ._errors import Unavailable
from .config import Config
from .stores import SQLiteOrderStore


class MemoryBackend:
    """Decides in this process's actors; keeps orders in ``store`` (``config.store``'s SQLite file by default)."""

    name = "memory"

    def __init__(self, config: Config, store: OrderStore | None = None) -> None:
        self.store = store or SQLiteOrderStore(config.store.path, synchronous=config.store.synchronous)
        self.actors: list[pykka.ActorRef[Any]] = []
        self._ctx: StartContext | None = None
        self._gauges = WriterGauges()
        self.key_gauges = KeyGauges(config.limits.max_idempotency_keys)  # the dedup table's fill, for /metrics
        self._max_inflight = config.limits.max_inflight
        self._max_backlog = config.limits.max_writer_backlog

    async def start(self, ctx: StartContext) -> None:
        self._ctx = ctx
        self._gauges = ctx.gauges
        cfg = ctx.config
        lim = cfg.limits
        try:
            # In async mode up to this many orders can be confirmed and not yet
            # written (the gateway refuses beyond it); the next start skips them.
            async_bound = self._max_backlog + self._max_inflight if cfg.store.durability == "async" else 0
            recovered = await asyncio.to_thread(self.store.open, [s.id for s in cfg.skus], async_bound)
        except StoreError as exc:
            raise Unavailable(str(exc)) from exc
        pipeline, bridge = ctx.pipeline, ctx.bridge
        pipeline.writer = OrderWriterActor.start(pipeline, bridge, store=self.store, gauges=ctx.gauges)
        durable = cfg.store.durability == "commit"
        inventories: list[pykka.ActorRef[Any]] = []
        for shard in shards(cfg):
            stocks = [
                SkuStock(
                    s.id,
                    s.stock,
                    totals=recovered.skus.get(s.id),
                    starts_at=s.starts_at,
                    ends_at=s.ends_at,
                    hold_us=round(s.payment_timeout * 1_000_000),
                    limit=s.per_user_limit,
                    held={user: n for (user, sku), n in recovered.per_user.items() if sku == s.id},
                )
                for s in (cfg.sku(sku) for sku in shard)
            ]
            ref = InventoryActor.start(
                pipeline, bridge, skus=stocks, views=ctx.views, durable=durable, ids=ctx.order_ids
            )
            inventories.append(ref)
            for sku in shard:
                pipeline.inventory_of[sku] = ref
        pipeline.dedup = DedupActor.start(
            pipeline,
            bridge,
            recovered=recovered,
            key_ttl_us=round(lim.idempotency_ttl * 1_000_000),
            max_keys=lim.max_idempotency_keys,
            max_keys_per_buyer=lim.max_idempotency_keys_per_buyer,
            max_keys_per_ip=lim.max_idempotency_keys_per_ip,
            key_gauges=self.key_gauges,
        )
        pipeline.ordered_skus = frozenset(s.id for s in cfg.skus if s.per_user_limit is not None)
        front = start_limiter(ctx, lim.global_bucket, lim.per_sku, lim.per_user, lim.per_ip)
        # Stop order matters: each stage is stopped after everything upstream.
        self.actors = [*front, *inventories, pipeline.writer, pipeline.dedup]

    def refusal(self, at: int) -> tuple[Result, str] | None:
        if self._gauges.backlog >= self._max_backlog:
            return "overloaded", "too many purchases in flight; retry shortly"
        return None

    def order_owner(self, order_id: str) -> pykka.ActorRef[Any] | None:
        return self._started.pipeline.writer

    async def expire(self, at: int) -> int:
        ctx = self._started
        expired: int = await ask(ctx.loop, ctx.pipeline.writer, lambda fut: Tick(at, fut))
        return expired

    async def settle(self) -> None:
        await self.flush(0)

    async def flush(self, grace: float) -> None:
        ctx = self._started
        await ask(ctx.loop, ctx.pipeline.writer, Flush)

    def close(self, grace: float) -> None:
        for ref in self.actors:
            ref.stop(block=True)
        self.actors = []

    def readiness(self) -> dict[str, bool]:
        return {
            "store_ok": self._gauges.store_ok,
            "writer_keeping_up": self._gauges.backlog < self._max_backlog,
        }

    def room_ledger(self, config: Config) -> RoomLedger | None:
        """None: the room is this process's :class:`actors.RoomActor`."""
        return None

    @property
    def _started(self) -> StartContext:
        if self._ctx is None:
            raise RuntimeError("the backend has not been started")
        return self._ctx
