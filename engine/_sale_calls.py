"""A sale's calls beyond its purchases, on :class:`flashsale.SaleEngine`: orders, time and the operator's actions.

A mixin, as :class:`room.RoomCalls` is: :mod:`._engine` keeps the life
cycle and the purchase path; these calls reach the backend, the actors and
the order desk through the attributes the engine sets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from flashsale.actors import BucketSpec, LimiterTick, Order, Pipeline, Restock, SaleAction, Scope, SkuView

from ._backend import Backend, ask
from ._clock import Clock
from ._errors import EngineClosed
from ._operator import Operator
from ._orders import OrderDesk
from ._types import QueueReport, TickReport
from ._validate import check_restock

if TYPE_CHECKING:
    from .scenario import ScenarioRecorder


class SaleCalls:
    """order, pay, cancel, restock; expire_due, tick, release_queued, flush; control, limits, set_limits."""

    clock: Clock
    _running: bool
    _loop: asyncio.AbstractEventLoop | None
    _backend: Backend
    _pipeline: Pipeline
    _orders: OrderDesk
    _operator: Operator
    _recorder: ScenarioRecorder | None
    view: Callable[[str], SkuView]
    _send_batch: Callable[[], None]

    # -- orders and stock -----------------------------------------------------

    async def order(self, order_id: str, *, user: str) -> Order:
        """``user``'s order with this id, committed or about to be; :class:`UnknownOrder` for anyone else."""
        return await self._orders.get(order_id, user)

    async def restock(self, sku: str, qty: int) -> SkuView:
        """Add ``qty`` units to ``sku``; returns the view once the restock is stored."""
        if not self._running:
            raise EngineClosed("the sale engine is not running")
        self.view(sku)
        check_restock(qty)
        at = self.clock()
        assert self._loop is not None
        view = await ask(self._loop, self._pipeline.inventory_of[sku], lambda fut: Restock(sku, qty, at, fut))
        assert isinstance(view, SkuView)
        if self._recorder is not None:
            self._recorder.operation(at, "restock", sku=sku, qty=qty)
        return view

    async def pay(self, order_id: str, *, user: str) -> Order:
        """Mark ``user``'s reserved order paid; returns the paid order.

        Raises :class:`UnknownOrder` (no such order, or not ``user``'s),
        :class:`TransitionRefused` (not reserved, or its payment time ran
        out) or :class:`Unavailable`.
        """
        return await self._orders.change(order_id, "paid", user)

    async def cancel(self, order_id: str, *, user: str) -> Order:
        """Cancel ``user``'s reserved order: its units go back on sale and back to the buyer's allowance."""
        return await self._orders.change(order_id, "cancelled", user)

    # -- time ------------------------------------------------------------------

    async def expire_due(self) -> int:
        """Expire every reservation whose payment time has run out by now; returns how many.

        :meth:`tick` calls this (the engine ticks every ``tick_interval``
        seconds); with ``tick_interval = 0`` (virtual time, replays) the
        caller does.
        """
        if not self._running:
            raise EngineClosed("the sale engine is not running")
        at = self.clock()
        expired = await self._backend.expire(at)
        if expired and self._recorder is not None:
            self._recorder.operation(at, "expire")  # a tick that expired nothing changed nothing
        return expired

    async def tick(self) -> TickReport:
        """Bring the actors up to now: expire overdue reservations and release queued purchases.

        The engine calls this every ``tick_interval`` seconds. On virtual time
        (``tick_interval = 0``) a replay moves its clock and calls this once:
        every release due by then is sent on, and ``queued`` says how many
        purchases are still waiting their turn (not lost).
        """
        if not self._running or self._loop is None:
            raise EngineClosed("the sale engine is not running")
        released = await self.release_queued()
        return TickReport(await self.expire_due(), released.released, released.queued)

    async def release_queued(self) -> QueueReport:
        """Tell the limiter the time: queued purchases whose turn has come are sent on to be decided.

        Every purchase of this loop tick is sent first, so the limiter has
        seen them. With no limiter, nothing is ever queued.
        """
        if not self._running or self._loop is None:
            raise EngineClosed("the sale engine is not running")
        if self._pipeline.limiter is None:
            return QueueReport(0, 0, None)
        fut: asyncio.Future[tuple[int, int, int | None]] = self._loop.create_future()
        self._tell_limiter_tick(fut)
        return QueueReport(*await fut)

    def _tell_limiter_tick(self, reply: asyncio.Future[tuple[int, int, int | None]] | None) -> None:
        """Send the limiter the time, behind any purchases of this loop tick not yet sent."""
        limiter = self._pipeline.limiter
        if limiter is None or not self._running:
            return
        self._send_batch()
        limiter.tell(LimiterTick(self.clock(), reply))

    async def flush(self, grace: float = 10.0) -> None:
        """Wait until everything answered so far is committed.

        On a ledger an answer is already confirmed in Redis; this waits (up
        to ``grace`` seconds) until the order sink has it in PostgreSQL.
        """
        if not self._running:
            raise EngineClosed("the sale engine is not running")
        await self._backend.flush(grace)

    # -- operator actions (the admin API; see engine/_operator.py) -------------

    async def control(self, sku: str, action: SaleAction) -> tuple[SkuView, SkuView]:
        """Pause, resume or end ``sku`` now, for every process of the sale; its views before and after.

        A paused SKU answers purchases ``sale_paused``; an ended one
        ``sale_not_open``. Recorded, so a replay does the same at the same instant.
        """
        return await self._operator.control(sku, action)

    @property
    def limits(self) -> dict[Scope, BucketSpec]:
        """The rate-limit scopes in force, with their live shapes."""
        return dict(self._operator.limits)

    async def set_limits(self, changes: dict[Scope, BucketSpec]) -> dict[Scope, BucketSpec]:
        """Give configured scopes a new rate and burst now, for every process; their shapes before.

        Only rate and burst change (a scope keeps its algorithm and queue); a
        scope the config does not have cannot be added live.
        """
        return await self._operator.set_limits(changes)
