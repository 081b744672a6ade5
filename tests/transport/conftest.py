"""Fixtures for HTTP tests: a real aiohttp server on a loopback port per test."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from flashsale import Config, LimitsConfig, ManualClock, SaleEngine, ServerConfig, SkuConfig, StoreConfig
from flashsale.config import AdminConfig, FeedConfig
from flashsale.transport import ENGINE, create_app

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def make_client(aiohttp_client: Any, tmp_path: Path) -> MakeClient:
    """Start flashsale's app on a real socket for the given SKUs; return a client."""

    async def make(
        *skus: SkuConfig,
        clock: ManualClock | None = None,
        limits: LimitsConfig | None = None,
        durability: str = "commit",
        max_body_bytes: int = 4096,
        trusted_proxies: tuple[str, ...] = (),
        tick_interval: float = 1.0,
        host: str = "127.0.0.1",
        feed: FeedConfig | None = None,
        admin_token: str | None = None,
        record: Any = None,
    ) -> TestClient[Any, Any]:
        config = Config(
            skus=skus or (SkuConfig("moutai-53", stock=100, per_user_limit=1),),
            store=StoreConfig(path=str(tmp_path / "orders.db"), durability=durability),  # type: ignore[arg-type]
            limits=limits or LimitsConfig(),
            server=ServerConfig(max_body_bytes=max_body_bytes, trusted_proxies=trusted_proxies),
            tick_interval=tick_interval,
            feed=feed or FeedConfig(),
            admin=AdminConfig(token=admin_token),
        )
        engine = SaleEngine(config, clock=clock, recorder=record(config) if record is not None else None)
        app = create_app(config, engine=engine)
        return await aiohttp_client(app, server_kwargs={"host": host})  # type: ignore[no-any-return]

    return make


def stored_orders(client: TestClient[Any, Any]) -> dict[str, tuple[Any, ...]]:
    """Every order in the client's SQLite file, by id."""
    path = client.app[ENGINE].config.store.path  # type: ignore[index]
    with sqlite3.connect(path) as db:
        return {row[0]: row for row in db.execute("SELECT order_id, sku, user, qty, status FROM orders")}
