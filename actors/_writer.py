"""The order writer: drains reservations to the :class:`OrderStore` in batches.

Group commit: the writer keeps taking messages while more are waiting in its
mailbox and commits when the mailbox is empty (or the batch is full), so one
transaction carries as many orders as arrived while the previous one was
committing. Under load batches grow by themselves; idle, a lone order is
committed at once.

With ``durability = "commit"`` buyers are answered only after their order
committed. When a transaction fails, its buyers are answered
``unavailable``, the units go back to their inventory actor and the dedup
actor releases the buyers' holds: nothing is reported confirmed unless it
was committed.

With ``durability = "async"`` buyers were answered already; a failed
transaction is kept and tried again with the next one (the engine reads
:attr:`WriterGauges.backlog` and refuses new purchases while it is high).
Restocks are never undone: a failed restock is kept and committed ahead of
the orders that may sell its units.
"""

from __future__ import annotations

import logging
from typing import Any, assert_never

from ._bridge import Countdown, LoopBridge
from ._errors import StageFailed, Unavailable
from ._inventory import reserved_outcome
from ._messages import (
    ChangeOrder,
    ChangeResult,
    Flush,
    GetOrder,
    KeysFinal,
    Order,
    OrdersClosed,
    OrderStatus,
    Outcome,
    Purchase,
    ReturnUnits,
    Settled,
    Tick,
    WriteOrders,
    WriteRestock,
    WriterMessage,
)
from ._pipeline import Pipeline, Stage, tell
from ._ports import OrderStore, RestockRecord

log = logging.getLogger("flashsale.actors.writer")

_EXPIRE_BATCH = 10_000  # reservations expired per transaction


class WriterGauges:
    """Numbers the writer publishes for the gateway, /readyz and /metrics.

    Written only by the writer's thread; read anywhere (each attribute is one
    atomic store and load).
    """

    __slots__ = ("backlog", "commits", "failures", "orders_committed", "store_ok")

    def __init__(self) -> None:
        self.backlog = 0
        self.store_ok = True
        self.commits = 0
        self.orders_committed = 0
        self.failures = 0


class OrderWriterActor(Stage):
    """Commits orders and restocks, one transaction per batch."""

    reports_to_dedup = True

    def __init__(
        self,
        pipeline: Pipeline,
        bridge: LoopBridge,
        *,
        store: OrderStore,
        gauges: WriterGauges,
        max_batch: int = 8192,
    ) -> None:
        super().__init__(pipeline, bridge)
        self._store = store
        self._gauges = gauges
        self._max_batch = max_batch
        self._orders: list[tuple[Purchase, Order, bool]] = []
        self._restocks: list[WriteRestock] = []
        self._flushes: list[Any] = []

    def on_stop(self) -> None:
        if self._orders or self._restocks:
            self._commit()
        self._store.close()

    def handle(self, message: WriterMessage) -> None:
        match message:
            case WriteOrders(items, confirmed):
                self._orders.extend((p, o, confirmed) for p, o in items)
                self._gauges.backlog = len(self._orders) + len(self._restocks)
            case WriteRestock():
                self._restocks.append(message)
                self._gauges.backlog = len(self._orders) + len(self._restocks)
            case GetOrder(order_id, reply):
                # A lookup sees everything that arrived before it: orders left for
                # "the mailbox is empty" (which may be now) are tried first.
                if self.actor_inbox.empty():
                    self._commit()
                try:
                    found = self._get(order_id)
                except Exception as exc:  # the caller must not wait forever: its reply fails
                    failure = exc if isinstance(exc, Unavailable) else StageFailed(f"order lookup failed: {exc!r}")
                    failure.__cause__ = exc if failure is not exc else None
                    self._bridge.fail(reply, failure)
                    return
                self._bridge.resolve([(reply, found)])
                return
            case Flush(reply):
                self._flushes.append(reply)
                self._commit()
                return
            case ChangeOrder(order_id, status, at, reply):
                try:
                    self._commit()  # the order may still be pending
                    self._change(order_id, status, at, reply)
                except Exception:  # a bug must not leave the caller waiting
                    log.exception("changing an order failed", extra={"order_id": order_id})
                    self._bridge.resolve([(reply, ChangeResult(None, "unavailable"))])
                return
            case Tick(at, reply):
                try:
                    self._commit()
                    self._expire(at, reply)
                except Exception:
                    log.exception("expiring reservations failed")
                    self._bridge.resolve([(reply, 0)])
                return
            case _:
                assert_never(message)
        if len(self._orders) >= self._max_batch or self.actor_inbox.empty():
            self._commit()

    def _change(self, order_id: str, status: OrderStatus, at: int, reply: Any) -> None:
        """Pay or cancel one reserved order; an overdue one is expired instead."""
        try:
            order = self._get(order_id)
        except Exception:  # the store failed or broke its contract: answer, never hang
            log.exception("order lookup failed", extra={"order_id": order_id})
            order = None
            refused = "unavailable"
        else:
            refused = "unknown_order" if order is None else ""
        if order is not None:
            if order.status != "reserved":
                refused = "not_reserved"
            elif any(o.order_id == order_id for _, o, _ in self._orders):
                refused = "unavailable"  # not committed yet: the store is failing
            else:
                overdue = at >= order.expires_at
                new = "expired" if overdue else status
                if self._write_closed([order], new):
                    closed = order._replace(status=new)
                    self._announce([closed], new, reply, ChangeResult(closed, "expired" if overdue else ""))
                    return
                refused = "unavailable"
        self._bridge.resolve([(reply, ChangeResult(order, refused))])

    def _expire(self, at: int, reply: Any) -> None:
        """Expire every reservation whose payment time ran out by ``at``."""
        expired: list[Order] = []
        while True:
            try:
                due = self._store.due(at, _EXPIRE_BATCH)
            except Exception:
                log.exception("looking up due reservations failed")
                break
            if not due or not self._write_closed(due, "expired"):
                break
            expired.extend(o._replace(status="expired") for o in due)
            if len(due) < _EXPIRE_BATCH:
                break
        if expired:
            self._announce(expired, "expired", reply, len(expired))
        else:
            self._bridge.resolve([(reply, 0)])

    def _write_closed(self, orders: list[Order], status: OrderStatus) -> bool:
        """Commit the new status; False (and nothing changed) if the store failed."""
        try:
            self._store.write([], [], [(o.order_id, status) for o in orders])
        except Exception as exc:
            self._gauges.failures += 1
            log.error("changing order status failed: %s", exc)
            return False
        return True

    def _announce(self, orders: list[Order], status: OrderStatus, reply: Any, value: Any) -> None:
        """After the commit, each inventory owner moves units (and buyers' holds) and answers.

        Committed first, then units move: a crash in between leaves the order
        closed in the store, and recovery counts its units from there. The
        caller hears once every owner has applied its part.
        """
        keyed = tuple((o.user, o.idempotency_key, o.order_id) for o in orders if o.idempotency_key is not None)
        if keyed:  # a final order's key has nothing left to answer: the dedup table forgets it
            tell(self._pipeline.dedup, KeysFinal(keyed))
        owners: dict[Any, list[Order]] = {}
        for o in orders:
            owners.setdefault(self._pipeline.inventory_of[o.sku], []).append(o)
        done = reply if len(owners) == 1 else Countdown(reply, len(owners), value)
        for ref, group in owners.items():
            tell(ref, OrdersClosed(tuple(group), status, done, value))

    def _get(self, order_id: str) -> Order | None:
        for _, order, _ in self._orders:
            if order.order_id == order_id:
                return order
        return self._store.get(order_id)

    def _commit(self) -> None:
        orders, restocks = self._orders, self._restocks
        replies: list[tuple[Any, Any]] = []
        if orders or restocks:
            try:
                self._store.write(
                    [RestockRecord(r.sku, r.qty, r.at) for r in restocks],
                    [o for _, o, _ in orders],
                )
            except Exception as exc:  # a failed commit must never lose track of a buyer
                self._failed(exc, replies)
            else:
                self._committed(replies)
        replies.extend((f, None) for f in self._flushes if not self._orders and not self._restocks)
        if not self._orders and not self._restocks:
            self._flushes = []
        self._gauges.backlog = len(self._orders) + len(self._restocks)
        self._bridge.resolve(replies)

    def _committed(self, replies: list[tuple[Any, Any]]) -> None:
        settled: list[tuple[Purchase, Outcome]] = []
        for p, order, confirmed in self._orders:
            if confirmed:
                continue
            outcome = reserved_outcome(order)
            replies.append((p.reply, outcome))
            if p.idempotency_key is not None:
                settled.append((p, outcome))
        replies.extend((r.reply, r.view) for r in self._restocks)
        g = self._gauges
        g.commits += 1
        g.orders_committed += len(self._orders)
        if not g.store_ok:
            log.warning("order store is writing again")
        g.store_ok = True
        if log.isEnabledFor(logging.DEBUG):
            for p, order, _ in self._orders:
                log.debug("order committed", extra={"order_id": order.order_id, "request_id": p.request_id})
        self._orders = []
        self._restocks = []
        if settled:
            tell(self._pipeline.dedup, Settled(tuple(settled)))

    def _failed(self, exc: Exception, replies: list[tuple[Any, Any]]) -> None:
        g = self._gauges
        g.failures += 1
        if g.store_ok:  # one clear line per outage, not one per batch
            log.error("order store failed; new purchases are refused until it recovers: %s", exc)
        g.store_ok = False
        kept: list[tuple[Purchase, Order, bool]] = []
        refused: list[tuple[Purchase, Outcome]] = []
        returned: dict[Any, list[Order]] = {}
        for p, order, confirmed in self._orders:
            if confirmed:
                kept.append((p, order, confirmed))
                continue
            outcome = Outcome(
                "unavailable", order.sku, order.qty, detail="the order store is unavailable; nothing was bought"
            )
            replies.append((p.reply, outcome))
            if p.idempotency_key is not None:
                refused.append((p, outcome))
            returned.setdefault(self._pipeline.inventory_of[order.sku], []).append(order)
        self._orders = kept
        for ref, back in returned.items():
            tell(ref, ReturnUnits(tuple(back)))
        if refused:
            tell(self._pipeline.dedup, Settled(tuple(refused)))
