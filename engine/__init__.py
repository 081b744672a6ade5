"""flashsale's engine: the public entry point, configuration and adapters.

:class:`SaleEngine` (asyncio) and :class:`SyncSaleEngine` (threads) run a
sale on the actors in ``actors``; :class:`Config` describes it; the SQLite
:class:`SQLiteOrderStore` is the embedded default store.
"""

from actors import Order, Outcome, SkuView

from ._clock import Clock, ManualClock, from_datetime, to_datetime, wall_clock
from ._config import (
    Config,
    LimitsConfig,
    PostgresConfig,
    RedisConfig,
    ServerConfig,
    SkuConfig,
    StoreConfig,
    demo_config,
)
from ._engine import PurchaseRequest, SaleEngine, SkuStatus
from ._errors import (
    ConfigError,
    EngineClosed,
    FlashsaleError,
    InvalidRequest,
    TransitionRefused,
    Unavailable,
    UnknownOrder,
    UnknownSku,
)
from ._sqlite import SQLiteOrderStore
from ._sync import SyncSaleEngine

__all__ = [
    "Clock",
    "Config",
    "ConfigError",
    "EngineClosed",
    "FlashsaleError",
    "InvalidRequest",
    "LimitsConfig",
    "ManualClock",
    "Order",
    "Outcome",
    "PostgresConfig",
    "PurchaseRequest",
    "RedisConfig",
    "SQLiteOrderStore",
    "SaleEngine",
    "ServerConfig",
    "SkuConfig",
    "SkuStatus",
    "SkuView",
    "StoreConfig",
    "SyncSaleEngine",
    "TransitionRefused",
    "Unavailable",
    "UnknownOrder",
    "UnknownSku",
    "demo_config",
    "from_datetime",
    "to_datetime",
    "wall_clock",
]
