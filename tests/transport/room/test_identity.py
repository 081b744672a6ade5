"""The room's buyer comes from [auth]: in header mode the header names the buyer on join, poll and purchase."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flashsale import AuthConfig, Config, ManualClock, ServerConfig, SkuConfig, StoreConfig
from flashsale.config import RoomConfig
from flashsale.transport import create_app

from .conftest import STARTS, T0, engine_of


async def test_header_mode_names_the_buyer(aiohttp_client: Any, tmp_path: Path) -> None:
    """Join and poll by the trusted header alone; another buyer's header gets 404; a body naming another is 403."""
    config = Config(
        skus=(SkuConfig("moutai-53", stock=5),),
        store=StoreConfig(path=str(tmp_path / "o.db")),
        server=ServerConfig(trusted_proxies=("127.0.0.1",)),
        tick_interval=0.0,
        auth=AuthConfig(mode="header"),
        waiting_room=RoomConfig(starts_at=STARTS, opens_at=T0),
    )
    from flashsale import SaleEngine  # noqa: PLC0415

    client = await aiohttp_client(create_app(config, engine=SaleEngine(config, clock=ManualClock(STARTS))))
    alice = {"X-User-Id": "alice"}
    resp = await client.post("/v1/room/join", json={}, headers=alice)
    assert resp.status == 201
    ticket = (await resp.json())["ticket"]
    resp = await client.post("/v1/room/join", json={"user": "mallory"}, headers=alice)
    assert (resp.status, (await resp.json())["error"]) == (403, "forbidden")
    await engine_of(client).room_tick()
    resp = await client.get(f"/v1/room/tickets/{ticket}", headers=alice)
    body = await resp.json()
    assert (resp.status, body["state"]) == (200, "admitted")
    resp = await client.get(f"/v1/room/tickets/{ticket}", headers={"X-User-Id": "bob"})
    assert (resp.status, (await resp.json())["error"]) == (404, "unknown_ticket")
    resp = await client.post(
        "/v1/purchase", json={"sku": "moutai-53"}, headers={**alice, "Admission-Pass": body["pass"]}
    )
    assert (resp.status, (await resp.json())["result"]) == (200, "reserved")
    resp = await client.post(
        "/v1/purchase", json={"sku": "moutai-53"}, headers={"X-User-Id": "bob", "Admission-Pass": body["pass"]}
    )
    assert (resp.status, (await resp.json())["error"]) == (403, "invalid_pass")
