"""Wiring between the stages, and the guard every stage runs its work under.

The stages form a pipeline (limiter → dedup → inventory → writer) with two
feedback edges (inventory and writer report settled purchases to dedup; the
writer returns units of orders that failed to commit to inventory). Because
of those cycles the refs cannot all be passed to constructors, so each actor
receives the one :class:`Pipeline` and the engine fills it in before the
first message is sent. After that it is only read.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import fields, is_dataclass
from typing import Any, ClassVar

import pykka

from ._bridge import LoopBridge
from ._errors import StageFailed
from ._messages import Outcome, Purchase, PurchaseBatch, PurchasesWaiting, Settled

log = logging.getLogger("flashsale.actors")


class Pipeline:
    """The refs each stage sends to; filled once by the engine at start.

    A purchase visits only the stages that have work for it. Every thread
    hop costs a wake-up and a GIL hand-off per batch, and at 64 connections a
    loop tick carries only a handful of purchases, so a hop through a stage
    with nothing to decide is the most expensive thing on the hot path. The
    limiter is skipped when no bucket is configured (``limiter`` is
    ``None``). On a ledger, ``shared_limiter`` (buckets shared by every
    process) comes after the local limiter and sends straight to inventory.
    Dedup is skipped for a purchase with no idempotency key, except on the
    ``ordered_skus`` (the memory backend names the SKUs with a per-user
    limit, where keyed retries are common): there every purchase passes
    dedup, so a keyed purchase is never overtaken by an unkeyed one of a
    later loop tick. Elsewhere it may be; the two arrived in different
    ticks, so neither buyer had an answer yet. Dedup is always skipped when
    ``ledger`` is set (the ledger inventory actor checks keys and limits in
    its ledger call).
    """

    limiter: pykka.ActorRef[Any] | None
    shared_limiter: pykka.ActorRef[Any] | None
    dedup: pykka.ActorRef[Any]
    writer: pykka.ActorRef[Any]
    inventory_of: dict[str, pykka.ActorRef[Any]]
    ordered_skus: frozenset[str]
    """SKUs whose purchases all pass dedup, keyed or not, so that they keep their order across loop ticks."""
    ledger: bool
    queues: dict[pykka.ActorRef[Any], PurchaseQueue]
    """Stages that take purchases from a :class:`PurchaseQueue` (they register themselves when made)."""

    def __init__(self) -> None:
        self.limiter = None
        self.shared_limiter = None
        self.inventory_of = {}
        self.ordered_skus = frozenset()
        self.ledger = False
        self.queues = {}

    def admit(self, items: tuple[Purchase, ...]) -> None:
        """Send a batch in at the front: the limiter, or the stages after it."""
        if self.limiter is not None:
            tell(self.limiter, PurchaseBatch(items))
        else:
            self.after_limiter(items)

    def deliver(self, ref: pykka.ActorRef[Any], items: Sequence[Purchase]) -> None:
        """Hand ``items`` to the stage ``ref``: into its queue (waking it if needed), or as one batch message."""
        queue = self.queues.get(ref)
        if queue is None:
            tell(ref, PurchaseBatch(tuple(items)))
        elif queue.put(items):
            tell(ref, _WAKE)

    def after_limiter(self, items: Sequence[Purchase]) -> None:
        """Send purchases on to dedup where it has work, else to their inventory owner.

        A SKU's purchases take one route per batch: when any of them needs
        dedup (it has a key), all of them go through it. Split
        over two routes, a later purchase could reach the SKU's owner before
        an earlier one, and who gets the last unit would depend on thread
        timing instead of arrival order.
        """
        if not items:
            return
        if self.shared_limiter is not None:
            self.deliver(self.shared_limiter, items)
            return
        skus = self.ordered_skus
        if self.ledger or (not skus and all(p.idempotency_key is None for p in items)):
            self.to_inventory(items)
            return
        via_dedup = {p.sku for p in items if p.idempotency_key is not None or p.sku in skus}
        checked = [p for p in items if p.sku in via_dedup]
        if len(checked) == len(items):
            tell(self.dedup, PurchaseBatch(tuple(items)))
            return
        if checked:
            tell(self.dedup, PurchaseBatch(tuple(checked)))
        self.to_inventory([p for p in items if p.sku not in via_dedup])

    def to_inventory(self, items: Sequence[Purchase]) -> None:
        """Send each purchase to the owner of its SKU, one batch per owner."""
        owners = self.inventory_of
        first = owners[items[0].sku]
        if all(owners[p.sku] is first for p in items):
            self.deliver(first, items)
            return
        grouped: dict[pykka.ActorRef[Any], list[Purchase]] = {}
        for p in items:
            grouped.setdefault(owners[p.sku], []).append(p)
        for ref, batch in grouped.items():
            self.deliver(ref, batch)


_WAKE = PurchasesWaiting()


class PurchaseQueue:
    r"""Purchases waiting for one stage, taken many at a time: a thread-safe FIFO.

    A stage whose work is a round trip (a ledger call) gains from deciding
    every purchase that arrived while the previous call was in flight in the
    next one. Senders :meth:`put` purchases here and wake the stage with one
    :class:`PurchasesWaiting` only when the queue was empty; the stage
    :meth:`take`\ s up to its limit per message and, when more are left,
    wakes itself. So a purchase is never left without a wake-up behind it,
    and purchases keep their arrival order. A request the stage receives as
    a message (restock, pay, tick) may be handled after purchases put later;
    it is answered only once applied, so no caller that heard its answer
    sees a purchase decided before it.

    Bounded by the gateway: everything in it is in flight, and the gateway
    refuses purchases beyond ``limits.max_inflight``.
    """

    __slots__ = ("_items", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: deque[Purchase] = deque()

    def put(self, items: Sequence[Purchase]) -> bool:
        """Add ``items`` at the back; True when the queue was empty (the caller then wakes the stage)."""
        with self._lock:
            was_empty = not self._items
            self._items.extend(items)
        return was_empty

    def take(self, limit: int) -> tuple[tuple[Purchase, ...], bool]:
        """Up to ``limit`` purchases from the front, and whether more are left."""
        with self._lock:
            items = self._items
            if len(items) <= limit:
                taken = tuple(items)
                items.clear()
                return taken, False
            return tuple(items.popleft() for _ in range(limit)), True

    def __len__(self) -> int:
        return len(self._items)


def tell(ref: pykka.ActorRef[Any], message: object) -> bool:
    """Send without raising when the receiver has already stopped.

    Only shutdown reaches a stopped actor: the engine stops the stages after
    every purchase has been answered, so what is lost here is bookkeeping
    (a dedup release, say) that the next start-up rebuilds from the store.
    """
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        log.debug("message to a stopped actor dropped", extra={"message": type(message).__name__})
        return False
    return True


def _purchases_in(message: object) -> list[Purchase]:
    """Every purchase a message carries, however it is nested."""
    found: list[Purchase] = []

    def walk(value: object) -> None:
        if isinstance(value, Purchase):
            found.append(value)
        elif isinstance(value, tuple):
            for item in value:
                walk(item)
        elif is_dataclass(value) and not isinstance(value, type):
            for f in fields(value):
                walk(getattr(value, f.name))

    walk(message)
    return found


class Stage(pykka.ThreadingActor):
    """Base of the four actors: a failed message fails its buyers, not the actor.

    An exception in a handler would otherwise stop the pykka actor and leave
    every later buyer waiting forever. Here the purchases in the failed
    message are answered ``unavailable`` and the actor goes on. Stages after
    dedup also report the keyed ones to the dedup actor (:class:`Settled`),
    so their idempotency keys are not left in flight.
    """

    use_daemon_thread = True
    reports_to_dedup: ClassVar[bool] = False

    def __init__(self, pipeline: Pipeline, bridge: LoopBridge) -> None:
        super().__init__()
        self._pipeline = pipeline
        self._bridge = bridge
        self._in_hand: tuple[Purchase, ...] = ()
        """Purchases taken from a :class:`PurchaseQueue` for the message being handled."""

    def on_receive(self, message: Any) -> None:
        try:
            self.handle(message)
        except Exception:
            log.exception("actor failed on a message", extra={"actor": type(self).__name__})
            failed = [
                (p, Outcome("unavailable", p.sku, p.qty, detail="internal error; try again"))
                for p in (*_purchases_in(message), *self._in_hand)
            ]
            # Dedup hears first: a retry, sent once the buyer has this answer, then
            # reaches dedup's mailbox behind the release (mailboxes are FIFO).
            keyed = tuple((p, o) for p, o in failed if p.idempotency_key is not None)
            if keyed and self.reports_to_dedup:
                tell(self._pipeline.dedup, Settled(keyed))
            replies: list[tuple[Any, Any]] = [(p.reply, outcome) for p, outcome in failed]
            # A request that waits for an answer (pay, cancel, order lookup, restock, flush, tick) is
            # failed with StageFailed (an Unavailable) instead of waiting forever.
            reply = getattr(message, "reply", None)
            exc = StageFailed(f"{type(self).__name__} failed on {type(message).__name__}")
            self._bridge.resolve(replies, [(reply, exc)] if reply is not None else None)
        finally:
            self._in_hand = ()

    def take_queued(self, queue: PurchaseQueue, limit: int) -> tuple[Purchase, ...]:
        """Take up to ``limit`` purchases from this stage's ``queue``; wake itself again if more are left.

        Until the message is handled, a failure answers them ``unavailable`` like the message's own.
        """
        items, more = queue.take(limit)
        if more:
            self.actor_ref.tell(_WAKE)
        self._in_hand = items
        return items

    handle: Callable[[Any], None]
    """The stage's own dispatch; every subclass defines it."""
