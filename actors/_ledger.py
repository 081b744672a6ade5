"""Stages on a shared :class:`StockLedger` (``backend = "redis"``).

:class:`LedgerInventoryActor` takes the place of the inventory actor, the
dedup actor and the order writer: the ledger decides window, idempotency,
per-user limit and stock in one atomic call per SKU and records the order in
the same call, so a purchase is confirmed when that call returns. Each
process keeps a fixed number of these actors and gives each SKU to one of
them, as in memory mode; an actor sends one ledger call per SKU per batch,
all of a batch's SKUs in one round trip. The gateway sends a batch per loop
tick, and while a ledger call is in flight several of them queue up; the
actor takes all the purchase batches waiting at the head of its mailbox into
its next call, so under load a round trip carries more purchases instead of
the queue growing by one round trip per tick.

:class:`SharedLimiterActor` asks the ledger for the shared per-user and
per-IP buckets, one call per batch (merging queued batches as the inventory
actor does). The global and per-SKU scopes stay in each process's own
:class:`LimiterActor`, in front of it: they protect that process.

Both consult one :class:`Breaker` before every call, so while the ledger is
down or slow buyers get ``unavailable`` at once. A reserve whose answer was
lost is answered ``unavailable`` too: its units may have been taken (the
order then exists, and expires unpaid unless the buyer retries with the same
``Idempotency-Key`` and gets it back).
"""

from __future__ import annotations

import queue
from collections.abc import Sequence
from typing import Any, TypeAlias, assert_never, cast

from ._breaker import Breaker
from ._bridge import LoopBridge
from ._control import SetSale
from ._messages import (
    ChangeOrder,
    ChangeResult,
    GetOrder,
    Outcome,
    Purchase,
    PurchaseBatch,
    Restock,
    SkuView,
    Tick,
)
from ._pipeline import Pipeline, Stage
from ._ports import LedgerError, StockLedger

LedgerMessage: TypeAlias = PurchaseBatch | Restock | ChangeOrder | GetOrder | Tick | SetSale

MAX_EXPIRED_PER_TICK = 1000
"""Reservations one tick expires per SKU; the rest wait for the next tick (bounded work per call)."""

MAX_MERGED = 2000
"""Most purchases one ledger call decides: a Lua script blocks Redis while it runs."""

_DOWN = "the order ledger is unavailable; retry shortly"
_UNKNOWN = "the order ledger did not answer; if you sent an Idempotency-Key, retry with it to learn the outcome"


class _Refused(LedgerError):
    """The breaker is open: the call was not made, so nothing of it happened."""


def guarded_call(breaker: Breaker, at: int | None, call: Any) -> Any:
    """Run one ledger call under ``breaker``; a refusal or failure comes back as a :class:`LedgerError` value.

    Reads (``at`` None) neither wait for nor move the breaker: a buyer may
    look up an order whenever the ledger answers. Any exception counts as a
    failure, so a probe that breaks never leaves the breaker waiting for it.
    """
    if at is not None and not breaker.allow(at):
        return _Refused(_DOWN)
    try:
        result = call()
    except Exception as exc:
        if at is not None:
            breaker.failed(at)
        if isinstance(exc, LedgerError):
            return exc
        raise
    if at is not None:
        breaker.succeeded()
    return result


def with_queued(actor: Stage, items: tuple[Purchase, ...]) -> tuple[Purchase, ...]:
    """``items`` plus the purchase batches waiting at the head of ``actor``'s mailbox (taken out of it), in order.

    Only a leading run of :class:`PurchaseBatch` messages is taken, so every
    other message is still handled after the purchases sent before it. A
    threading actor's inbox is a :class:`queue.Queue`.
    """
    inbox = cast("queue.Queue[Any]", actor.actor_inbox)
    merged = list(items)
    with inbox.mutex:
        waiting = inbox.queue
        while waiting and isinstance(waiting[0].message, PurchaseBatch) and len(merged) < MAX_MERGED:
            merged.extend(waiting.popleft().message.items)
    return tuple(merged)


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

    def handle(self, message: LedgerMessage) -> None:
        match message:
            case PurchaseBatch(items):
                self._reserve(with_queued(self, items))
            case Restock(sku, qty, at, reply):
                view = self._call(at, lambda: self._publish(self._ledger.restock(sku, qty, at)))
                self._bridge.resolve([(reply, view)])
            case SetSale(sku, action, at, reply):
                view = self._call(at, lambda: self._publish(self._ledger.control(sku, action, at)))
                self._bridge.resolve([(reply, view)])
            case ChangeOrder(order_id, status, at, reply):
                result = self._call(at, lambda: self._ledger.change(order_id, status, at))
                if isinstance(result, Exception):
                    self._bridge.resolve([(reply, ChangeResult(None, "unavailable"))])
                    return
                change, view = result
                if view is not None:
                    self._publish(view)
                self._bridge.resolve([(reply, change)])
            case GetOrder(order_id, reply):
                self._bridge.resolve([(reply, self._call(None, lambda: self._ledger.get(order_id)))])
            case Tick(at, reply):
                result = self._call(at, lambda: self._ledger.expire(self._skus, at, MAX_EXPIRED_PER_TICK))
                expired = 0
                if not isinstance(result, Exception):
                    expired, views = result
                    for view in views:
                        self._publish(view)
                self._bridge.resolve([(reply, expired)])
            case _:
                assert_never(message)

    def _publish(self, view: SkuView) -> SkuView:
        self._views[view.sku] = view
        return view

    def _call(self, at: int | None, call: Any) -> Any:
        return guarded_call(self._breaker, at, call)

    def _reserve(self, items: tuple[Purchase, ...]) -> None:
        at = items[-1].at
        by_sku: dict[str, list[Purchase]] = {}
        for p in items:
            by_sku.setdefault(p.sku, []).append(p)
        batches = list(by_sku.values())
        result = self._call(at, lambda: self._ledger.reserve(batches))
        replies: list[tuple[Any, Outcome]] = []
        if isinstance(result, Exception):
            detail = _DOWN if isinstance(result, _Refused) else _UNKNOWN
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

    def handle(self, message: PurchaseBatch) -> None:
        replies: list[tuple[Any, Outcome]] = []
        passed = self._shared_check(list(with_queued(self, message.items)), replies)
        if passed:
            self._pipeline.to_inventory(passed)
        self._bridge.resolve(replies)

    def _shared_check(self, items: list[Purchase], replies: list[tuple[Any, Outcome]]) -> list[Purchase]:
        waits = guarded_call(self._breaker, items[-1].at, lambda: self._ledger.throttle(items))
        if isinstance(waits, LedgerError):
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
