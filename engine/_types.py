"""The values :class:`SaleEngine` takes and gives besides actor messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from flashsale.actors import SkuState


class PurchaseRequest(NamedTuple):
    """One purchase for :meth:`SaleEngine.purchase_many`."""

    sku: str
    user: str
    qty: int = 1
    idempotency_key: str | None = None
    client_ip: str | None = None
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one :meth:`SaleEngine.tick` did.

    ``expired``: reservations whose payment time ran out; ``released``:
    queued purchases whose turn came (sent on to be decided); ``queued``:
    purchases still waiting their turn in a leaky bucket's queue.
    """

    expired: int
    released: int
    queued: int


@dataclass(frozen=True, slots=True)
class QueueReport:
    """What one :meth:`SaleEngine.release_queued` did.

    ``released``: queued purchases whose turn came; ``queued``: purchases
    still waiting; ``next_release``: when the earliest of those is due
    (µs since the epoch, on the engine's clock), or ``None``.
    """

    released: int
    queued: int
    next_release: int | None


@dataclass(frozen=True, slots=True)
class SkuStatus:
    """A SKU as a buyer sees it now."""

    sku: str
    stock: int
    remaining: int
    reserved: int
    paid: int
    state: SkuState
    starts_at: int | None
    ends_at: int | None
