"""The public surface of each package is exactly what its ``__all__`` says, and what we meant."""

from __future__ import annotations

import types

import pytest

import flashsale
from flashsale import actors, testing, transport

EXPECTED = {
    actors: [
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
    ],
    flashsale: [
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
    ],
    transport: ["ENGINE", "METRICS", "configure_logging", "create_app", "main"],
    testing: ["PostgresServer", "RedisServer", "ServerFailed", "free_port", "wait_until"],
}

PACKAGES = pytest.mark.parametrize("package", list(EXPECTED), ids=lambda p: p.__name__)


@PACKAGES
def test_all_is_what_we_meant(package: types.ModuleType) -> None:
    """``__all__`` lists exactly the names we chose to make public, sorted."""
    assert package.__all__ == sorted(package.__all__)
    assert sorted(package.__all__) == EXPECTED[package]


@PACKAGES
def test_all_is_what_is_exported(package: types.ModuleType) -> None:
    """Every public name the package holds is in ``__all__``, and every name in it exists."""
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)  # submodules are not part of the surface
        and name != "annotations"  # from __future__ import annotations
    }
    assert public == set(package.__all__)


@PACKAGES
def test_star_import_gives_all(package: types.ModuleType) -> None:
    """``from package import *`` binds exactly the names in ``__all__``."""
    namespace: dict[str, object] = {}
    exec(f"from {package.__name__} import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == EXPECTED[package]
