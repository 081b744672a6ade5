"""Ports: what the actors need from the world, as Protocols.

Adapters live in ``engine`` (SQLite now; PostgreSQL later). An adapter's
methods are called from the order-writer actor's thread only, one call at a
time, so an adapter may hold a connection that is not thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ._messages import Order, OrderStatus


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


class StoreError(Exception):
    """The store could not do what was asked; nothing of the call was kept."""


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
