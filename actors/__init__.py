"""flashsale's actors: the parts that decide, one mailbox at a time.

Four pykka ``ThreadingActor`` stages form the purchase pipeline::

    LimiterActor -> DedupActor -> InventoryActor (one owner per SKU) -> OrderWriterActor

and on a shared :class:`StockLedger` (several processes, one sale) two::

    SharedLimiterActor -> LedgerInventoryActor (one owner per SKU per process)

the waiting room's :class:`RoomActor` (pre-queue, draw, paced admission, in front of them all;
:class:`SharedRoomActor` when a :class:`RoomLedger` keeps the room for several processes),
plus the rate-limit buckets, the asyncio bridge that answers a batch with one loop wake-up, the
message types, the ports (Protocols) the actors need from the world, and the
root of flashsale's exception tree (:mod:`actors._errors`, drawn there).
Nothing here knows HTTP, files or configuration, and nothing reads a clock:
time arrives in messages.
"""

from ._breaker import Breaker
from ._bridge import LoopBridge
from ._buckets import BucketSpec, LeakyBucket, TokenBucket
from ._control import SaleAction, Scope, SetLimits, SetSale
from ._dedup import DedupActor
from ._errors import FlashsaleError, LedgerError, LedgerRefused, StageFailed, StoreError, Unavailable
from ._ids import OrderIds, order_number, order_sku, untagged
from ._inventory import InventoryActor, SkuStock, paused_outcome, reserved_outcome
from ._keys import KeyGauges
from ._ledger import LedgerInventoryActor, SharedLimiterActor
from ._limiter import LimiterActor, LimiterGauges
from ._messages import (
    ChangeOrder,
    ChangeResult,
    DrainQueue,
    Flush,
    GetOrder,
    KeysFinal,
    LimiterTick,
    Order,
    OrdersClosed,
    OrderStatus,
    Outcome,
    Purchase,
    PurchaseBatch,
    PurchasesWaiting,
    Reply,
    Restock,
    Result,
    ReturnUnits,
    Settled,
    SkuState,
    SkuView,
    Tick,
    WriteOrders,
    WriteRestock,
    fast_new,
)
from ._pipeline import Pipeline, PurchaseQueue, Stage, tell
from ._ports import LedgerSku, OrderStore, Recovered, RestockRecord, SkuTotals, StockLedger
from ._room import RoomActor
from ._room_ledger import RoomAnswer, RoomCounters, RoomLedger, RoomParams, RoomSnapshot
from ._room_messages import (
    Join,
    JoinBatch,
    JoinResult,
    RoomBoard,
    RoomControl,
    RoomTick,
    RoomTickReport,
    RoomView,
    TicketView,
)
from ._room_shared import SharedRoomActor
from ._writer import OrderWriterActor, WriterGauges

__all__ = [
    "Breaker",
    "BucketSpec",
    "ChangeOrder",
    "ChangeResult",
    "DedupActor",
    "DrainQueue",
    "FlashsaleError",
    "Flush",
    "GetOrder",
    "InventoryActor",
    "Join",
    "JoinBatch",
    "JoinResult",
    "KeyGauges",
    "KeysFinal",
    "LeakyBucket",
    "LedgerError",
    "LedgerInventoryActor",
    "LedgerRefused",
    "LedgerSku",
    "LimiterActor",
    "LimiterGauges",
    "LimiterTick",
    "LoopBridge",
    "Order",
    "OrderIds",
    "OrderStatus",
    "OrderStore",
    "OrderWriterActor",
    "OrdersClosed",
    "Outcome",
    "Pipeline",
    "Purchase",
    "PurchaseBatch",
    "PurchaseQueue",
    "PurchasesWaiting",
    "Recovered",
    "Reply",
    "Restock",
    "RestockRecord",
    "Result",
    "ReturnUnits",
    "RoomActor",
    "RoomAnswer",
    "RoomBoard",
    "RoomControl",
    "RoomCounters",
    "RoomLedger",
    "RoomParams",
    "RoomSnapshot",
    "RoomTick",
    "RoomTickReport",
    "RoomView",
    "SaleAction",
    "Scope",
    "SetLimits",
    "SetSale",
    "Settled",
    "SharedLimiterActor",
    "SharedRoomActor",
    "SkuState",
    "SkuStock",
    "SkuTotals",
    "SkuView",
    "Stage",
    "StageFailed",
    "StockLedger",
    "StoreError",
    "Tick",
    "TicketView",
    "TokenBucket",
    "Unavailable",
    "WriteOrders",
    "WriteRestock",
    "WriterGauges",
    "fast_new",
    "order_number",
    "order_sku",
    "paused_outcome",
    "reserved_outcome",
    "tell",
    "untagged",
]
