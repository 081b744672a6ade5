"""The backend: everything below the gateway that differs between ``memory`` and ``redis``.

:class:`SaleEngine` validates, stamps, answers what it can from the
published views and batches the rest per loop tick; then it hands the batch
to its backend's :class:`~flashsale.actors.Pipeline` and awaits the answers.
Which stages decide, where orders live and what "ready" means is the
backend's business, chosen once when the engine is made (``config.backend``
or an explicit ``backend=``), never asked again::

    SaleEngine (loop) --admit(batch)--> Backend's pipeline
      |                                   memory: LimiterActor -> DedupActor -> InventoryActor -> OrderWriterActor
      |                                   redis:  LimiterActor -> SharedLimiterActor -> LedgerInventoryActor (Lua)
      '-- refusal, order_owner, expire, settle, flush, readiness, close, room_ledger

A new backend is a class with the members of :class:`Backend`; it starts
its stages in :meth:`Backend.start` (filling the pipeline's refs and the
engine's views) and is passed as ``SaleEngine(config, backend=...)``.
:func:`start_limiter`, :func:`shards` and :func:`ask` are the pieces every
backend shares.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pykka

from flashsale.actors import (
    BucketSpec,
    LimiterActor,
    LimiterGauges,
    LoopBridge,
    OrderIds,
    Pipeline,
    Reply,
    Result,
    RoomLedger,
    SkuView,
    WriterGauges,
)
from flashsale.config import Config

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StartContext:
    """What the engine hands its backend at start; everything is the engine's and lives as long as it.

    ``views`` is the dict of published :class:`~flashsale.actors.SkuView`
    the gateway reads without a message: the backend's inventory stages
    write it. ``wake`` is the gateway's timer for queued releases (``None``
    on virtual time). ``gauges`` and ``limiter_gauges`` are the engine's
    public metrics objects. ``order_ids`` mints order ids (the key is the
    engine's: random, or a replay's seed); stages never draw randomness.
    """

    config: Config
    loop: asyncio.AbstractEventLoop
    bridge: LoopBridge
    pipeline: Pipeline
    views: dict[str, SkuView]
    wake: Reply | None
    gauges: WriterGauges
    limiter_gauges: LimiterGauges
    order_ids: OrderIds


class Backend(Protocol):
    """Where purchases are decided and orders kept, behind :class:`SaleEngine`.

    Every method is called on the engine's loop unless it says otherwise;
    none blocks it.
    """

    name: str
    """``memory``, ``redis``, …: what /readyz and the start-up log call it."""

    actors: list[pykka.ActorRef[Any]]
    """Every actor started, in stop order: each after everything upstream of it."""

    async def start(self, ctx: StartContext) -> None:
        """Open the store or ledger, recover, start the stages and fill ``ctx.pipeline`` and ``ctx.views``.

        Raises :class:`Unavailable` when the store or ledger cannot be opened.
        """
        ...

    def refusal(self, at: int) -> tuple[Result, str] | None:
        """Why a purchase arriving at ``at`` must not be queued now (result and detail), or ``None``.

        Called once per purchase that reaches the actors, on the loop: keep it cheap.
        """
        ...

    def order_owner(self, order_id: str) -> pykka.ActorRef[Any] | None:
        """The actor that answers for ``order_id`` (lookups, pay, cancel), or ``None`` if none can exist."""
        ...

    async def expire(self, at: int) -> int:
        """Expire the reservations whose payment time ran out by ``at``; return how many."""
        ...

    async def settle(self) -> None:
        """In :meth:`SaleEngine.stop`, after the last answer: make what was answered durable."""
        ...

    async def flush(self, grace: float) -> None:
        """Wait until everything answered so far is in the order store (at most ``grace`` s where it waits)."""
        ...

    def close(self, grace: float) -> None:
        """Stop the actors and release connections. Runs in a worker thread, never on the loop."""
        ...

    def readiness(self) -> dict[str, bool]:
        """Each readiness check and whether it passes (/readyz)."""
        ...

    def room_ledger(self, config: Config) -> RoomLedger | None:
        """Where the waiting room lives when processes share it; ``None``: in this process's room actor.

        Called once when the room starts (before :meth:`start`); the room closes it.
        """
        ...


def shards(config: Config) -> list[list[str]]:
    """SKU ids per inventory actor; crc32, not hash(): the same SKU lands on the same owner in every process."""
    out: list[list[str]] = [[] for _ in range(min(config.inventory_actors, len(config.skus)))]
    for s in config.skus:
        out[zlib.crc32(s.id.encode()) % len(out)].append(s.id)
    return [shard for shard in out if shard]


def start_limiter(
    ctx: StartContext,
    global_bucket: BucketSpec | None,
    per_sku: BucketSpec | None,
    per_user: BucketSpec | None = None,
    per_ip: BucketSpec | None = None,
) -> list[pykka.ActorRef[Any]]:
    """Start the front limiter for the scopes this process keeps, if any is configured."""
    if all(b is None for b in (global_bucket, per_sku, per_user, per_ip)):
        return []
    ref = ctx.pipeline.limiter = LimiterActor.start(
        ctx.pipeline,
        ctx.bridge,
        global_bucket=global_bucket,
        per_sku=per_sku,
        per_user=per_user,
        per_ip=per_ip,
        max_tracked_users=ctx.config.limits.max_tracked_users,
        wake=ctx.wake,
        gauges=ctx.limiter_gauges,
    )
    return [ref]


async def ask(
    loop: asyncio.AbstractEventLoop, ref: pykka.ActorRef[Any], make: Callable[[asyncio.Future[Any]], object]
) -> Any:
    """Tell ``ref`` the message ``make(reply)`` builds and await the reply; never blocks the loop.

    A stage, store or ledger failure raises from here as the actor failed
    the reply: a :class:`flashsale.actors.Unavailable`.
    """
    fut: asyncio.Future[Any] = loop.create_future()
    ref.tell(make(fut))
    return await fut
