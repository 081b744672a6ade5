"""An order store in memory: for replays, tests and throwaway sales.

It keeps the :class:`actors.OrderStore` contract the SQLite store keeps —
all-or-nothing writes, duplicate order ids refused, only reserved orders
change status, due reservations oldest first, recovery sums on open — with
nothing on disk. A replay needs a fresh store per run and millions of
decisions per minute; a file would add an fsync-free but still real commit
per instant that nothing reads afterwards.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Sequence

from flashsale.actors import Order, OrderStatus, Recovered, RestockRecord, SkuTotals, StoreError, order_number


class MemoryOrderStore:
    """Orders and restocks in dicts; gone when the process ends."""

    def __init__(self) -> None:
        self._orders: dict[str, Order] = {}
        self._restocks: list[RestockRecord] = []
        self._due: list[tuple[int, str]] = []  # (expires_at, order_id) of orders written reserved; may be stale
        self._runs: dict[str, tuple[int, int]] = {}
        self._open = False

    def open(self, skus: Sequence[str] = (), unwritten_bound: int = 0) -> Recovered:
        totals: dict[str, dict[str, int]] = {}
        per_user: dict[tuple[str, str], int] = {}
        keyed: dict[tuple[str, str], Order] = {}
        for o in sorted(self._orders.values(), key=lambda o: (o.created_at, o.order_id)):
            t = totals.setdefault(o.sku, {"reserved": 0, "paid": 0, "restocked": 0, "last_seq": 0})
            if o.status in ("reserved", "paid"):
                t[o.status] += o.qty
                per_user[(o.user, o.sku)] = per_user.get((o.user, o.sku), 0) + o.qty
            t["last_seq"] = max(t["last_seq"], order_number(o.order_id, o.sku))
            if o.idempotency_key is not None:
                keyed[(o.user, o.idempotency_key)] = o
        for r in self._restocks:
            t = totals.setdefault(r.sku, {"reserved": 0, "paid": 0, "restocked": 0, "last_seq": 0})
            t["restocked"] += r.qty
        skus_totals = {sku: SkuTotals(**t) for sku, t in totals.items()}
        for sku in skus:
            found = skus_totals.get(sku, SkuTotals())
            start, bound = self._runs.get(sku, (0, 0))
            skus_totals[sku] = dataclasses.replace(found, last_seq=max(found.last_seq, start) + bound)
            self._runs[sku] = (skus_totals[sku].last_seq, unwritten_bound)
        self._open = True
        return Recovered(skus=skus_totals, per_user=per_user, keyed=keyed)

    def _check_open(self) -> None:
        if not self._open:
            raise StoreError("the memory store is not open")

    def write(
        self,
        restocks: Sequence[RestockRecord],
        orders: Sequence[Order],
        closed: Sequence[tuple[str, OrderStatus]] = (),
    ) -> None:
        self._check_open()
        ids = [o.order_id for o in orders]
        if len(set(ids)) != len(ids) or any(i in self._orders for i in ids):
            raise StoreError("an order id is already stored")
        self._restocks.extend(restocks)
        stored = self._orders
        for o in orders:
            stored[o.order_id] = o
            if o.status == "reserved":
                heapq.heappush(self._due, (o.expires_at, o.order_id))
        for order_id, status in closed:
            old = stored.get(order_id)
            if old is not None and old.status == "reserved":
                stored[order_id] = old._replace(status=status)

    def due(self, at: int, limit: int) -> list[Order]:
        self._check_open()
        heap, stored = self._due, self._orders
        found: list[Order] = []
        kept: list[tuple[int, str]] = []
        while heap and heap[0][0] <= at and len(found) < limit:
            entry = heapq.heappop(heap)
            o = stored[entry[1]]
            if o.status == "reserved":  # closed orders leave the index here, lazily
                found.append(o)
                kept.append(entry)
        for entry in kept:
            heapq.heappush(heap, entry)
        return found

    def get(self, order_id: str) -> Order | None:
        self._check_open()
        return self._orders.get(order_id)

    def close(self) -> None:
        self._open = False
