"""Fixtures and helpers for the waiting-room HTTP tests: a real server with a room, and a buyer's moves."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from flashsale import Config, ManualClock, SaleEngine, SkuConfig, StoreConfig
from flashsale.config import RoomConfig
from flashsale.transport import ENGINE, create_app

T0 = 1_767_225_600_000_000
US = 1_000_000
OPENS = T0 + 60 * US
STARTS = T0 + 120 * US

MakeRoom = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def make_room(aiohttp_client: Any, tmp_path: Path) -> MakeRoom:
    """Start flashsale with a waiting room on a real socket; virtual time unless ``clock=None``."""

    async def make(
        *skus: SkuConfig,
        clock: ManualClock | None = None,
        real_time: bool = False,
        **room: Any,
    ) -> TestClient[Any, Any]:
        settings: dict[str, Any] = {"opens_at": OPENS, "starts_at": STARTS, "admit_rate": 1000.0, "admit_burst": 1000}
        settings.update(room)
        config = Config(
            skus=skus or (SkuConfig("moutai-53", stock=100, per_user_limit=2),),
            store=StoreConfig(path=str(tmp_path / "orders.db")),
            tick_interval=1.0 if real_time else 0.0,
            waiting_room=RoomConfig(**settings),
        )
        engine = SaleEngine(config, clock=None if real_time else (clock or ManualClock(T0)))
        return await aiohttp_client(create_app(config, engine=engine))  # type: ignore[no-any-return]

    return make


def engine_of(client: TestClient[Any, Any]) -> SaleEngine:
    return client.app[ENGINE]  # type: ignore[index, no-any-return]


async def join(client: TestClient[Any, Any], user: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/v1/room/join", json={"user": user, **extra})
    return resp.status, await resp.json()


async def poll(client: TestClient[Any, Any], ticket: str, user: str) -> tuple[int, dict[str, Any]]:
    resp = await client.get(f"/v1/room/tickets/{ticket}", params={"user": user})
    return resp.status, await resp.json()


async def buy(client: TestClient[Any, Any], user: str, admission_pass: str | None, sku: str = "moutai-53") -> Any:
    headers = {} if admission_pass is None else {"Admission-Pass": admission_pass}
    return await client.post("/v1/purchase", json={"sku": sku, "user": user}, headers=headers)


def verify_draw(seed_hex: str, commitment: str, tickets: list[str]) -> bool:
    """The check any buyer can run: the seed matches the commitment and the order follows from it."""
    seed = bytes.fromhex(seed_hex)
    assert hashlib.sha256(seed).hexdigest() == commitment
    return tickets == sorted(tickets, key=lambda t: hashlib.sha256(seed + t.encode("ascii")).digest())
