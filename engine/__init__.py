"""flashsale's engine: the public entry point, configuration and adapters.

:class:`SaleEngine` (asyncio) and :class:`SyncSaleEngine` (threads) run a
sale on the actors in ``actors``; :class:`Config` describes it; the SQLite
:class:`SQLiteOrderStore` is the embedded default store. Scenario files
(:func:`load_scenario`) replay a sale and its traffic on virtual time
(:func:`replay`, :class:`ReplayResult`); :class:`ScenarioRecorder` records
live traffic as one.
"""

from flashsale.actors import Order, Outcome, SkuView

from ._clock import Clock, ManualClock, from_datetime, to_datetime, wall_clock
from ._engine import SaleEngine
from ._errors import (
    ConfigError,
    EngineClosed,
    FlashsaleError,
    InvalidRequest,
    ScenarioError,
    TransitionRefused,
    Unavailable,
    UnknownOrder,
    UnknownSku,
)
from ._sync import SyncSaleEngine
from ._types import PurchaseRequest, QueueReport, SkuStatus, TickReport
from .config import (
    AuthConfig,
    Config,
    ConnectionsConfig,
    LimitsConfig,
    PostgresConfig,
    RedisConfig,
    ServerConfig,
    SkuConfig,
    StoreConfig,
    demo_config,
)
from .scenario import (
    ReplayResult,
    Scenario,
    ScenarioRecorder,
    SkuSummary,
    TrafficEvent,
    load_scenario,
    parse_scenario,
    replay,
)
from .stores import MemoryOrderStore, SQLiteOrderStore

__all__ = [
    "AuthConfig",
    "Clock",
    "Config",
    "ConfigError",
    "ConnectionsConfig",
    "EngineClosed",
    "FlashsaleError",
    "InvalidRequest",
    "LimitsConfig",
    "ManualClock",
    "MemoryOrderStore",
    "Order",
    "Outcome",
    "PostgresConfig",
    "PurchaseRequest",
    "QueueReport",
    "RedisConfig",
    "ReplayResult",
    "SQLiteOrderStore",
    "SaleEngine",
    "Scenario",
    "ScenarioError",
    "ScenarioRecorder",
    "ServerConfig",
    "SkuConfig",
    "SkuStatus",
    "SkuSummary",
    "SkuView",
    "StoreConfig",
    "SyncSaleEngine",
    "TickReport",
    "TrafficEvent",
    "TransitionRefused",
    "Unavailable",
    "UnknownOrder",
    "UnknownSku",
    "demo_config",
    "from_datetime",
    "load_scenario",
    "parse_scenario",
    "replay",
    "to_datetime",
    "wall_clock",
]
