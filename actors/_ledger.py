"""Stages on a shared :class:`StockLedger` (``backend = "redis"``).

:class:`LedgerInventoryActor` takes the place of the inventory actor, the
dedup actor and the order writer: the ledger decides window, idempotency,
per-user limit and stock in one atomic call per SKU and records the order in
the same call, so a purchase is confirmed when that call returns. Each
process keeps a fixed number of these actors and gives each SKU to one of
them, as in memory mode; an actor sends one ledger call per SKU per batch,
all of a batch's SKUs in one round trip. Purchases reach it through its
:class:`PurchaseQueue`: while a ledger call is in flight, the batches of
several loop ticks pile up there, and the next call takes them all (up to
:data:`MAX_MERGED`), so under load a round trip carries more purchases
instead of the queue growing by one round trip per tick.

:class:`SharedLimiterActor` asks the ledger for the shared per-user and
per-IP buckets, one call per queue drain in the same way. The global and
per-SKU scopes stay in each process's own :class:`LimiterActor`, in front
of it: they protect that process.

Both consult one :class:`Breaker` before every call, so while the ledger is
down or slow buyers get ``unavailable`` at once. A reserve whose answer was
lost is answered ``unavailable`` too: its units may have been taken (the
order then exists, and expires unpaid unless the buyer retries with the same
``Idempotency-Key`` and gets it back). A restock or an order lookup whose
call failed fails its reply with the :class:`LedgerError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias, TypeVar, assert_never

from ._breaker import Breaker
from ._bridge import LoopBridge
from ._control import SetSale
from ._errors import LedgerError, LedgerRefused
from ._messages import (
    ChangeOrder,
    ChangeResult,
    GetOrder,
    Outcome,
    Purchase,
    PurchasesWaiting,
    Restock,
    SkuView,
    Tick,
)
from ._pipeline import Pipeline, PurchaseQueue, Stage
from ._ports import StockLedger

T = TypeVar("T")

LedgerMessage: TypeAlias = PurchasesWaiting | Restock | ChangeOrder | GetOrder | Tick | SetSale

MAX_EXPIRED_PER_TICK = 1000
"""Reservations one ledger call expires per SKU (a Lua script blocks Redis while it runs); a tick makes
as many calls as it takes."""

MAX_MERGED = 2000
"""Most purchases one ledger call decides: a Lua script blocks Redis while it runs."""

_DOWN = "the order ledger is unavailable; retry shortly"
_UNKNOWN = "the order ledger did not answer; if you sent an Idempotency-Key, retry with it to learn the outcome"


def guarded_call(breaker: Breaker, at: int | None, call: Callable[[], T]) -> T:
    """Run one ledger call under ``breaker``; raises :class:`LedgerRefused` or the call's :class:`LedgerError`.

    Reads (``at`` None) neither wait for nor move the breaker: a buyer may
    look up an order whenever the ledger answers. Any exception counts as a
    failure, so a probe that breaks never leaves the breaker waiting for it.
    """
    if at is not None and not breaker.allow(at):
        raise LedgerRefused(_DOWN)
    try:
        result = call()
    except Exception:
        if at is not None:
            breaker.failed(at)
        raise
    if at is not None:
        breaker.succeeded()
    return result


class LedgerInventoryActor(Stage):
    """Owns a fixed set of SKUs in this process; decides their purchases on the ledger."""

    def __init__(
        self,
        pipeline: Pipeline,
        bridge: LoopBridge,
        *,
        ledger: StockLedger,
        skus: Sequence[str],
        views: dict[str, SkuView],
        breaker: Breaker,
    ) -> None:
        super().__init__(pipeline, bridge)
        self._ledger = ledger
        self._skus = tuple(skus)
        self._views = views
        self._breaker = breaker
        self._queue = pipeline.queues[self.actor_ref] = PurchaseQueue()

    def handle(self, message: LedgerMessage) -> None:
        match message:
            case PurchasesWaiting():
                items = self.take_queued(self._queue, MAX_MERGED)
                if items:
                    self._reserve(items)
            case Restock(sku, qty, at, reply):
                try:
                    view = self._publish(guarded_call(self._breaker, at, lambda: self._ledger.restock(sku, qty, at)))
                except LedgerError as exc:
                    self._bridge.fail(reply, exc)
                    return
                self._bridge.resolve([(reply, view)])
            case SetSale(sku, action, at, reply):
                try:
                    view = self._publish(guarded_call(self._breaker, at, lambda: self._ledger.control(sku, action, at)))
                except LedgerError as exc:
                    self._bridge.fail(reply, exc)
                    return
                self._bridge.resolve([(reply, view)])
            case ChangeOrder(order_id, status, at, reply):
                try:
                    change, changed = guarded_call(self._breaker, at, lambda: self._ledger.change(order_id, status, at))
                except LedgerError:
                    self._bridge.resolve([(reply, ChangeResult(None, "unavailable"))])
                    return
                if changed is not None:
                    self._publish(changed)
                self._bridge.resolve([(reply, change)])
            case GetOrder(order_id, reply):
                try:
                    found = guarded_call(self._breaker, None, lambda: self._ledger.get(order_id))
                except LedgerError as exc:
                    self._bridge.fail(reply, exc)
                    return
                self._bridge.resolve([(reply, found)])
            case Tick(at, reply):
                self._bridge.resolve([(reply, self._expire(at))])
            case _:
                assert_never(message)

    def _expire(self, at: int) -> int:
        """Expire every reservation due by ``at``, in calls of bounded work; a failed call ends the tick."""
        expired = 0
        while True:
            try:
                n, views = guarded_call(
                    self._breaker, at, lambda: self._ledger.expire(self._skus, at, MAX_EXPIRED_PER_TICK)
                )
            except LedgerError:
                return expired  # the rest expire on the next tick
            for view in views:
                self._publish(view)
            expired += n
            if n < MAX_EXPIRED_PER_TICK:  # no SKU reached the per-call bound: nothing due is left
                return expired

    def _publish(self, view: SkuView) -> SkuView:
        self._views[view.sku] = view
        return view

    def _reserve(self, items: tuple[Purchase, ...]) -> None:
        at = items[-1].at
        by_sku: dict[str, list[Purchase]] = {}
        for p in items:
            by_sku.setdefault(p.sku, []).append(p)
        batches = list(by_sku.values())
        replies: list[tuple[Any, Outcome]] = []
        try:
            result = guarded_call(self._breaker, at, lambda: self._ledger.reserve(batches))
        except LedgerError as exc:
            detail = _DOWN if isinstance(exc, LedgerRefused) else _UNKNOWN
            replies = [(p.reply, Outcome("unavailable", p.sku, p.qty, detail=detail)) for p in items]
        else:
            for batch, (outcomes, view) in zip(batches, result, strict=True):
                self._publish(view)
                replies.extend((p.reply, o) for p, o in zip(batch, outcomes, strict=True))
        self._bridge.resolve(replies)


class SharedLimiterActor(Stage):
    """Per-user and per-IP buckets on the ledger, shared by every process: one call per batch.

    It comes after the process's own limiter (global and per-SKU scopes)
    and sends what passes straight to the SKUs' owners.
    """

    def __init__(self, pipeline: Pipeline, bridge: LoopBridge, *, ledger: StockLedger, breaker: Breaker) -> None:
        super().__init__(pipeline, bridge)
        self._ledger = ledger
        self._breaker = breaker
        self._queue = pipeline.queues[self.actor_ref] = PurchaseQueue()

    def handle(self, message: PurchasesWaiting) -> None:
        items = self.take_queued(self._queue, MAX_MERGED)
        if not items:
            return
        replies: list[tuple[Any, Outcome]] = []
        passed = self._shared_check(list(items), replies)
        if passed:
            self._pipeline.to_inventory(passed)
        self._bridge.resolve(replies)

    def _shared_check(self, items: list[Purchase], replies: list[tuple[Any, Outcome]]) -> list[Purchase]:
        try:
            waits = guarded_call(self._breaker, items[-1].at, lambda: self._ledger.throttle(items))
        except LedgerError:
            replies.extend((p.reply, Outcome("unavailable", p.sku, p.qty, detail=_DOWN)) for p in items)
            return []
        passed: list[Purchase] = []
        for p, wait in zip(items, waits, strict=True):
            if wait > 0:
                replies.append((p.reply, _limited(p, wait, "too many requests from this buyer")))
            else:
                passed.append(p)
        return passed


def _limited(p: Purchase, wait: float, detail: str) -> Outcome:
    return Outcome("rate_limited", p.sku, p.qty, retry_after=wait, detail=detail)
