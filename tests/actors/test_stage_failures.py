"""An internal error in a stage fails only its message's buyers, and leaves dedup consistent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flashsale import SkuConfig, Unavailable
from flashsale.actors import InventoryActor, OrderWriterActor
from tests.conftest import MakeConfig, StartEngine


@pytest.fixture
def inventory_fails_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next batch an inventory actor reserves raises, as an internal bug would."""
    real = InventoryActor._reserve
    state = {"failed": False}

    def reserve(self: InventoryActor, items: Any) -> None:
        if not state["failed"]:
            state["failed"] = True
            raise RuntimeError("injected bug")
        real(self, items)

    monkeypatch.setattr(InventoryActor, "_reserve", reserve)


@pytest.mark.usefixtures("inventory_fails_once")
async def test_failed_keyed_purchase_can_be_retried(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """A keyed purchase that hit an internal error answers unavailable; a retry with the key is decided anew."""
    engine = await start_engine(make_config(SkuConfig("a", 5, per_user_limit=1)))
    first = await asyncio.wait_for(engine.purchase("a", "u1", idempotency_key="k"), 10)
    assert first.result == "unavailable"
    again = await asyncio.wait_for(engine.purchase("a", "u1", idempotency_key="k"), 10)
    assert again.result == "reserved"
    assert (await engine.sku_status("a")).remaining == 4


@pytest.mark.usefixtures("inventory_fails_once")
async def test_failed_purchase_releases_the_buyers_hold(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """A purchase that hit an internal error does not use up the buyer's per-user limit."""
    engine = await start_engine(make_config(SkuConfig("a", 5, per_user_limit=1)))
    assert (await engine.purchase("a", "u1")).result == "unavailable"
    assert (await asyncio.wait_for(engine.purchase("a", "u1"), 10)).result == "reserved"
    assert (await engine.purchase("a", "u1")).result == "limit_reached"


async def test_a_request_whose_handler_fails_is_answered(
    make_config: MakeConfig, start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pay, restock and order lookup whose actor raises get Unavailable at once instead of waiting forever."""
    engine = await start_engine(make_config(SkuConfig("a", 5)))
    order = await engine.purchase("a", "u1")
    assert order.order_id is not None

    def broken(self: object, message: object) -> None:
        raise RuntimeError("injected bug")

    monkeypatch.setattr(InventoryActor, "handle", broken)
    with pytest.raises(Unavailable, match="InventoryActor failed on Restock"):
        await asyncio.wait_for(engine.restock("a", 1), 10)
    # pay: the writer commits the change, then the SKU's owner fails to move the units
    with pytest.raises(Unavailable, match="InventoryActor failed on OrdersClosed"):
        await asyncio.wait_for(engine.pay(order.order_id, user="u1"), 10)
    monkeypatch.setattr(OrderWriterActor, "handle", broken)
    with pytest.raises(Unavailable, match="OrderWriterActor failed on GetOrder"):
        await asyncio.wait_for(engine.order(order.order_id, user="u1"), 10)
