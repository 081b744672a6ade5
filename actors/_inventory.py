"""The inventory actor: the single owner of each SKU's stock.

Every change to a SKU's stock — reserve, return, restock — is a message in
its owner's mailbox, applied one at a time. There are no locks around stock
anywhere: one mailbox per SKU is the lock.

Threads stay bounded however many SKUs a sale has. One pykka thread per SKU
would cost a thread per SKU and buy nothing: under CPython's GIL the actors'
pure-Python work never runs in parallel anyway. So the engine starts a fixed
number of inventory actors and gives each SKU to exactly one of them (by
stable hash). Each SKU still has exactly one owner and one serial order of
changes; an owner simply owns several SKUs.

The owner also keeps each buyer's units of the SKU (``held``: reserved or
paid) for the per-user limit, so window, limit and stock are checked in one
place, in the order of :mod:`actors.rules`, exactly as the Lua script of the
redis backend does. A buyer's units come back when an order is cancelled,
expires, or failed to commit.

After each batch the actor publishes a fresh immutable :class:`SkuView` of
every SKU it touched into a dict the gateway reads without a message; that is
how losers of a sold-out SKU are answered on the loop.
"""

from __future__ import annotations

from typing import Any, assert_never

from ._bridge import LoopBridge
from ._control import SaleAction, SetSale
from ._ids import OrderIds
from ._messages import (
    InventoryMessage,
    Order,
    OrdersClosed,
    Outcome,
    Purchase,
    PurchaseBatch,
    Restock,
    ReturnUnits,
    Settled,
    SkuView,
    WriteOrders,
    WriteRestock,
    fast_new,
)
from ._pipeline import Pipeline, Stage, tell
from ._ports import SkuTotals
from .rules import PAUSED, decide


class SkuStock:
    """One SKU's counters; lives inside its owner actor only."""

    __slots__ = (
        "ends_at",
        "held",
        "hold_us",
        "limit",
        "paid",
        "paused",
        "reserved",
        "restocked",
        "seq",
        "sku",
        "starts_at",
        "stock",
    )

    def __init__(
        self,
        sku: str,
        stock: int,
        *,
        totals: SkuTotals | None = None,
        starts_at: int | None = None,
        ends_at: int | None = None,
        hold_us: int = 900_000_000,
        limit: int | None = None,
        held: dict[str, int] | None = None,
    ) -> None:
        t = totals or SkuTotals()
        self.sku = sku
        self.stock = stock
        self.restocked = t.restocked
        self.reserved = t.reserved
        self.paid = t.paid
        self.seq = t.last_seq  # the store's "continue from" (see actors.Recovered)
        self.starts_at = starts_at
        self.ends_at = ends_at
        self.hold_us = hold_us
        self.paused = False
        self.limit = limit
        self.held: dict[str, int] = dict(held or {}) if limit is not None else {}
        """Units of live orders per buyer; kept only when the SKU has a per-user limit."""

    def release(self, user: str, qty: int) -> None:
        """``qty`` of ``user``'s units came back (cancelled, expired, never committed)."""
        if self.limit is None:
            return
        left = self.held.get(user, 0) - qty
        if left > 0:
            self.held[user] = left
        else:
            self.held.pop(user, None)

    @property
    def remaining(self) -> int:
        return self.stock + self.restocked - self.reserved - self.paid

    def view(self) -> SkuView:
        return SkuView(
            self.sku,
            self.stock + self.restocked,
            self.remaining,
            self.reserved,
            self.paid,
            self.starts_at,
            self.ends_at,
            self.paused,
        )

    def control(self, action: SaleAction, at: int) -> None:
        """Apply an operator's pause, resume or end at ``at``."""
        if action == "end":
            if self.ends_at is None or at < self.ends_at:
                self.ends_at = at
            if self.starts_at is not None and self.starts_at > self.ends_at:
                self.starts_at = self.ends_at
        else:
            self.paused = action == "pause"


class InventoryActor(Stage):
    """Owns a fixed set of SKUs; reserves, returns and restocks their units."""

    reports_to_dedup = True

    def __init__(
        self,
        pipeline: Pipeline,
        bridge: LoopBridge,
        *,
        skus: list[SkuStock],
        views: dict[str, SkuView],
        durable: bool,
        ids: OrderIds,
    ) -> None:
        super().__init__(pipeline, bridge)
        self._ids = ids  # the id source is injected: an actor never draws randomness itself
        self._skus = {s.sku: s for s in skus}
        self._views = views
        self._durable = durable
        for s in skus:
            views[s.sku] = s.view()

    def handle(self, message: InventoryMessage | SetSale) -> None:
        match message:
            case PurchaseBatch(items):
                self._reserve(items)
            case Restock(sku, qty, at, reply):
                s = self._skus[sku]
                s.restocked += qty
                view = self._views[sku] = s.view()
                tell(self._pipeline.writer, WriteRestock(sku, qty, at, view, reply))
            case ReturnUnits(orders):
                for order in orders:
                    s = self._skus[order.sku]
                    s.reserved -= order.qty
                    s.release(order.user, order.qty)
                self._publish(orders)
            case SetSale(sku, action, at, reply):
                s = self._skus[sku]
                s.control(action, at)
                view = self._views[sku] = s.view()
                self._bridge.resolve([(reply, view)])
            case OrdersClosed(orders, status, reply, value):
                for order in orders:
                    s = self._skus[order.sku]
                    s.reserved -= order.qty
                    if status == "paid":
                        s.paid += order.qty
                    else:
                        s.release(order.user, order.qty)
                self._publish(orders)
                self._bridge.resolve([(reply, value)])
            case _:
                assert_never(message)

    def _publish(self, orders: tuple[Order, ...]) -> None:
        for sku in {o.sku for o in orders}:
            self._views[sku] = self._skus[sku].view()

    def _reserve(self, items: tuple[Purchase, ...]) -> None:
        replies: list[tuple[Any, Outcome]] = []
        settled: list[tuple[Purchase, Outcome]] = []
        reserved: list[tuple[Purchase, Order]] = []
        touched: set[SkuStock] = set()
        skus = self._skus
        for p in items:
            s = skus[p.sku]
            at = p.at
            limit = s.limit
            held = 0 if limit is None else s.held.get(p.user, 0)
            left = s.stock + s.restocked - s.reserved - s.paid
            refused = decide(s.starts_at, s.ends_at, left, limit, held, p.qty, at, paused=s.paused)
            if refused is not None:
                outcome = Outcome(refused[0], p.sku, p.qty, detail=refused[1])
            else:
                s.reserved += p.qty
                if limit is not None:
                    s.held[p.user] = held + p.qty
                s.seq += 1
                touched.add(s)
                order = fast_new(
                    Order,
                    (
                        self._ids.make(s.sku, s.seq),
                        s.sku,
                        p.user,
                        p.qty,
                        "reserved",
                        at,
                        at + s.hold_us,
                        p.idempotency_key,
                        p.request_id,
                    ),
                )
                reserved.append((p, order))
                continue
            replies.append((p.reply, outcome))
            if p.idempotency_key is not None:
                settled.append((p, outcome))
        for s in touched:
            self._views[s.sku] = s.view()
        if reserved:
            if self._durable:
                tell(self._pipeline.writer, WriteOrders(tuple(reserved), confirmed=False))
            else:
                answered = [(p, reserved_outcome(o)) for p, o in reserved]
                replies.extend((p.reply, o) for p, o in answered)
                settled.extend((p, o) for p, o in answered if p.idempotency_key is not None)
                tell(self._pipeline.writer, WriteOrders(tuple(reserved), confirmed=True))
        if settled:
            tell(self._pipeline.dedup, Settled(tuple(settled)))
        self._bridge.resolve(replies)


def paused_outcome(sku: str, qty: int) -> Outcome:
    """The answer to a purchase of a SKU an operator paused."""
    return Outcome("sale_paused", sku, qty, detail=PAUSED)


def reserved_outcome(order: Order) -> Outcome:
    """The answer a buyer gets for a reserved order."""
    return fast_new(Outcome, ("reserved", order.sku, order.qty, order.order_id, order.expires_at, None, ""))
