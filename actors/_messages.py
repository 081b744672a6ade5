"""Message and value types that cross actor mailboxes.

Messages between actors are frozen, slotted dataclasses: one per batch, so
their cost does not matter. The three values made once *per purchase* —
:class:`Purchase`, :class:`Outcome` and :class:`Order` — are ``NamedTuple`` classes:
just as immutable, at a third of the construction cost (a frozen dataclass
sets each field through ``object.__setattr__``; measured 1.05 µs against
0.40 µs for eight fields), and an :class:`Order` is already a row for the
store.

Times are integers: microseconds since the Unix epoch, stamped once by the
gateway from an injected clock. Actors never read a clock; they only compare
the ``at`` values they receive.

Each actor accepts one union of messages (``LimiterMessage``,
``DedupMessage``, ``InventoryMessage``, ``WriterMessage``) and dispatches with
``match`` and :func:`typing.assert_never`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol, TypeAlias

Result: TypeAlias = Literal[
    "reserved",
    "sold_out",
    "limit_reached",
    "sale_not_open",
    "sale_paused",
    "rate_limited",
    "idempotency_key_reused",
    "overloaded",
    "unavailable",
]
"""What a purchase came to. Only ``reserved`` holds units."""

OrderStatus: TypeAlias = Literal["reserved", "paid", "cancelled", "expired"]
SkuState: TypeAlias = Literal["scheduled", "on_sale", "paused", "sold_out", "ended"]


fast_new = tuple.__new__
"""Build a hot NamedTuple from all its fields: ``fast_new(Order, (...))``.

Skips the generated Python-level ``__new__`` (0.12 µs against 0.27 µs for
an :class:`Outcome`); used where one is made per purchase. Every field must
be given, defaults included.
"""


class Reply(Protocol):
    """Where an answer goes: an asyncio future, or anything shaped like one.

    Only the loop thread calls these (through :class:`actors.LoopBridge`).
    """

    def done(self) -> bool: ...

    def set_result(self, result: Any, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class Outcome(NamedTuple):
    """The answer to one purchase: a value, never an exception.

    ``order_id`` and ``expires_at`` are set only for ``reserved``;
    ``retry_after`` (seconds) only for ``rate_limited``.
    """

    result: Result
    sku: str
    qty: int
    order_id: str | None = None
    expires_at: int | None = None
    retry_after: float | None = None
    detail: str = ""


class Purchase(NamedTuple):
    """One buyer asking for ``qty`` units of ``sku`` at time ``at``.

    ``reply`` belongs to the gateway's loop; actors resolve it only through
    :class:`actors.LoopBridge`, never directly.
    """

    request_id: str
    sku: str
    user: str
    qty: int
    at: int
    idempotency_key: str | None
    client_ip: str | None
    reply: Reply


class Order(NamedTuple):
    """A stored order: what the order writer commits and the store returns.

    The field order is the column order of the stores' ``orders`` table.
    """

    order_id: str
    sku: str
    user: str
    qty: int
    status: OrderStatus
    created_at: int
    expires_at: int
    idempotency_key: str | None = None
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class SkuView:
    """An immutable snapshot of one SKU, published by its inventory actor.

    The gateway reads the latest view without sending a message: that is how
    sold-out requests are answered on the event loop. ``stock`` includes
    restocks. Window bounds are ``None`` when open-ended. ``paused``: an
    operator paused the SKU (purchases answer ``sale_paused``).
    """

    sku: str
    stock: int
    remaining: int
    reserved: int
    paid: int
    starts_at: int | None
    ends_at: int | None
    paused: bool = False

    def state(self, at: int) -> SkuState:
        """The SKU's state at time ``at``."""
        if self.starts_at is not None and at < self.starts_at:
            return "scheduled"
        if self.ends_at is not None and at >= self.ends_at:
            return "ended"
        if self.paused:
            return "paused"
        return "sold_out" if self.remaining <= 0 else "on_sale"


# --- limiter -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PurchaseBatch:
    """The purchases of one event-loop tick, in arrival order."""

    items: tuple[Purchase, ...]


@dataclass(frozen=True, slots=True)
class PurchasesWaiting:
    """Wake-up: purchases wait in the receiver's :class:`actors.PurchaseQueue`; take them all, in order.

    Sent to a stage that merges queued batches into one call (the ledger
    stages) instead of a :class:`PurchaseBatch`, when its queue was empty.
    """


@dataclass(frozen=True, slots=True)
class LimiterTick:
    """Time has reached ``at``: release the queued purchases whose turn has come.

    ``reply`` (when given) resolves to ``(released, still_queued, next_release)``,
    the last the ``at`` of the earliest queued purchase, or ``None``.
    """

    at: int
    reply: Reply | None


@dataclass(frozen=True, slots=True)
class DrainQueue:
    """The sale is stopping: answer every queued purchase now.

    ``reply`` resolves to how many were answered.
    """

    reply: Reply


LimiterMessage: TypeAlias = PurchaseBatch | LimiterTick | DrainQueue

# --- dedup -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settled:
    """Final outcomes of keyed purchases that passed the dedup actor.

    The dedup actor stores them as the keys' answers (transient ones are
    forgotten) and answers the duplicates that waited for them.
    """

    items: tuple[tuple[Purchase, Outcome], ...]


@dataclass(frozen=True, slots=True)
class KeysFinal:
    """Orders that became final (paid, cancelled, expired): their idempotency keys no longer matter.

    ``items`` are ``(user, idempotency_key, order_id)``: a key used again
    since (after its ttl) belongs to another purchase and stays.
    """

    items: tuple[tuple[str, str, str], ...]


DedupMessage: TypeAlias = PurchaseBatch | Settled | KeysFinal

# --- inventory ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Restock:
    """Add ``qty`` units to ``sku``; ``reply`` resolves to the new view.

    On a shared ledger it fails with :class:`actors.LedgerError` when the
    ledger failed.
    """

    sku: str
    qty: int
    at: int
    reply: asyncio.Future[SkuView]


@dataclass(frozen=True, slots=True)
class ReturnUnits:
    """Give back the units of orders that were never confirmed."""

    orders: tuple[Order, ...]


@dataclass(frozen=True, slots=True)
class OrdersClosed:
    """Reserved orders whose status changed and was committed.

    ``status`` is ``paid`` (units move from reserved to paid) or ``cancelled``
    / ``expired`` (units go back to stock). Once the units have moved, the
    inventory actor answers ``reply`` with ``value``, so whoever asked for
    the change sees it applied everywhere.
    """

    orders: tuple[Order, ...]
    status: OrderStatus
    reply: Reply
    value: Any


InventoryMessage: TypeAlias = PurchaseBatch | Restock | ReturnUnits | OrdersClosed

# --- order writer ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteOrders:
    """Reservations to commit. ``confirmed`` is true when the buyers were
    already answered (``durability = "async"``)."""

    items: tuple[tuple[Purchase, Order], ...]
    confirmed: bool


@dataclass(frozen=True, slots=True)
class WriteRestock:
    """A restock to record before any order that sells its units."""

    sku: str
    qty: int
    at: int
    view: SkuView
    reply: asyncio.Future[SkuView]


@dataclass(frozen=True, slots=True)
class GetOrder:
    """Look up one order, pending or committed.

    ``reply`` resolves to the order or ``None``; it fails with
    :class:`actors.StoreError` or :class:`actors.LedgerError` when the
    lookup failed.
    """

    order_id: str
    reply: asyncio.Future[Order | None]


@dataclass(frozen=True, slots=True)
class Flush:
    """Commit everything pending, then resolve ``reply``."""

    reply: asyncio.Future[None]


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """The answer to :class:`ChangeOrder`.

    ``refused`` is empty when the change was committed; otherwise
    ``unknown_order``, ``not_reserved`` (the order is already paid,
    cancelled or expired), ``expired`` (its payment time ran out: it is
    expired now) or ``unavailable`` (the store failed; nothing changed).
    ``order`` is the order as it now stands, when there is one.
    """

    order: Order | None
    refused: str = ""


@dataclass(frozen=True, slots=True)
class ChangeOrder:
    """Pay or cancel a reserved order at time ``at``."""

    order_id: str
    status: Literal["paid", "cancelled"]
    at: int
    reply: asyncio.Future[ChangeResult]


@dataclass(frozen=True, slots=True)
class Tick:
    """Time has reached ``at``: expire reserved orders whose payment time ran out.

    ``reply`` resolves to the number of orders expired.
    """

    at: int
    reply: asyncio.Future[int]


WriterMessage: TypeAlias = WriteOrders | WriteRestock | GetOrder | Flush | ChangeOrder | Tick
