"""Ports: what the actors need from the world, as Protocols.

Adapters live in ``engine``. Their failures are :class:`StoreError` and
:class:`LedgerError` (:mod:`actors._errors`). An :class:`OrderStore`'s methods are called
from the order-writer actor's thread only, one call at a time, so it may hold
a connection that is not thread-safe. A :class:`StockLedger` is shared by
several actor threads (``backend = "redis"``) and must be thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ._control import SaleAction
from ._messages import ChangeResult, Order, OrderStatus, Outcome, Purchase, SkuView


@dataclass(frozen=True, slots=True)
class RestockRecord:
    """A restock as stored: ``qty`` units added to ``sku`` at ``at``."""

    sku: str
    qty: int
    at: int


@dataclass(frozen=True, slots=True)
class SkuTotals:
    """What the store holds for one SKU, summed over its orders."""

    reserved: int = 0
    paid: int = 0
    restocked: int = 0
    last_seq: int = 0


@dataclass(frozen=True, slots=True)
class Recovered:
    """Everything start-up needs to continue a sale where it stopped.

    ``skus[sku].last_seq`` is the order number to continue from: past the
    last stored one, and past any that the previous run may have handed out
    without storing (see :meth:`OrderStore.open`), so an id a buyer was given
    before a crash is never given to another.
    ``per_user`` maps ``(user, sku)`` to units held by live orders (reserved
    or paid); ``keyed`` maps ``(user, idempotency_key)`` to the order that
    key produced, so a retry after a restart gets the same answer.
    """

    skus: dict[str, SkuTotals] = field(default_factory=dict)
    per_user: dict[tuple[str, str], int] = field(default_factory=dict)
    keyed: dict[tuple[str, str], Order] = field(default_factory=dict)


class OrderStore(Protocol):
    """Durable home of orders and restocks."""

    def open(self, skus: Sequence[str] = (), unwritten_bound: int = 0) -> Recovered:
        """Open (creating if needed) and return what is stored.

        ``unwritten_bound`` is the most orders per SKU this run may confirm
        without storing them (``durability = "async"``; 0 otherwise). For each
        of ``skus`` the store records where this run's numbering starts and
        that bound, and a later start continues from
        ``max(last stored, that start) + that bound``.
        """
        ...

    def write(
        self,
        restocks: Sequence[RestockRecord],
        orders: Sequence[Order],
        closed: Sequence[tuple[str, OrderStatus]] = (),
    ) -> None:
        """Commit ``restocks``, new ``orders`` and status changes in one transaction.

        ``closed`` holds ``(order_id, status)`` for reserved orders that are
        now paid, cancelled or expired. Raises :class:`StoreError` when the
        transaction did not commit; then none of it is stored.
        """
        ...

    def due(self, at: int, limit: int) -> list[Order]:
        """Up to ``limit`` reserved orders whose ``expires_at`` is at or before ``at``, oldest first."""
        ...

    def get(self, order_id: str) -> Order | None:
        """The stored order, or ``None``."""
        ...

    def close(self) -> None:
        """Release the store's resources; safe to call twice."""
        ...


@dataclass(frozen=True, slots=True)
class LedgerSku:
    """A SKU as a shared ledger is first initialised with (a later start never resets it)."""

    sku: str
    stock: int
    per_user_limit: int | None
    starts_at: int | None
    ends_at: int | None
    hold_us: int


class StockLedger(Protocol):
    """Stock, per-user totals, idempotency records and live orders shared by many processes.

    Every change is decided and applied in one atomic step on the ledger
    (check before decrement), so processes sharing it never oversell. Every
    method raises :class:`LedgerError` when the ledger fails or is slow.
    """

    def open(self, skus: Sequence[LedgerSku]) -> list[SkuView]:
        """Initialise the SKUs that are not in the ledger yet; return every SKU's view."""
        ...

    def reserve(self, batches: Sequence[Sequence[Purchase]]) -> list[tuple[list[Outcome], SkuView]]:
        """Decide purchases, one sequence per SKU, in order; each gives its outcomes and the SKU's new view.

        Per purchase: sale window, idempotency record, per-user limit, stock;
        only then the units are taken and the order recorded.
        """
        ...

    def change(self, order_id: str, status: OrderStatus, at: int) -> tuple[ChangeResult, SkuView | None]:
        """Pay or cancel a reserved order at ``at`` (expiring it when its time ran out)."""
        ...

    def expire(self, skus: Sequence[str], at: int, limit: int) -> tuple[int, list[SkuView]]:
        """Expire up to ``limit`` due reservations per SKU; return how many and every SKU's view."""
        ...

    def restock(self, sku: str, qty: int, at: int) -> SkuView:
        """Add ``qty`` units to ``sku``."""
        ...

    def control(self, sku: str, action: SaleAction, at: int) -> SkuView:
        """Pause, resume or end ``sku`` at ``at`` (see :class:`actors.SetSale`) for every process."""
        ...

    def get(self, order_id: str) -> Order | None:
        """The live order, or ``None``."""
        ...

    def throttle(self, items: Sequence[Purchase]) -> list[float]:
        """Shared per-user and per-IP token buckets: 0.0 admits a purchase, else seconds to wait."""
        ...

    def close(self) -> None:
        """Release connections; safe to call twice."""
        ...
