"""Orders act only for their buyer: order, pay and cancel of someone else's order are UnknownOrder."""

from __future__ import annotations

import pytest

from flashsale import InvalidRequest, ManualClock, SkuConfig, SyncSaleEngine, UnknownOrder
from tests.conftest import MakeConfig, StartEngine


async def test_another_buyer_gets_unknown_order_and_changes_nothing(
    make_config: MakeConfig, start_engine: StartEngine
) -> None:
    """order/pay/cancel as another user raise UnknownOrder exactly as for a missing id; stock and order stay."""
    engine = await start_engine(make_config(SkuConfig("a", 5, per_user_limit=2)))
    outcome = await engine.purchase("a", "alice", 2)
    order_id = outcome.order_id or ""
    for call in (engine.order, engine.pay, engine.cancel):
        with pytest.raises(UnknownOrder) as theirs:
            await call(order_id, user="mallory")
        with pytest.raises(UnknownOrder) as missing:
            await call(order_id[:-1] + "x", user="mallory")
        assert type(theirs.value) is type(missing.value)
        assert theirs.value.order_id == order_id
    status = await engine.sku_status("a")
    assert (status.remaining, status.reserved, status.paid) == (3, 2, 0)
    assert (await engine.order(order_id, user="alice")).status == "reserved"
    assert (await engine.purchase("a", "alice")).result == "limit_reached"  # her allowance was not given back
    assert (await engine.cancel(order_id, user="alice")).status == "cancelled"


@pytest.mark.parametrize("user", ["", None, 7, "x" * 129, "a\ud800"])
async def test_a_malformed_buyer_is_invalid_request(
    make_config: MakeConfig, start_engine: StartEngine, user: object
) -> None:
    """A user that cannot be a buyer is InvalidRequest('user') before anything is looked up."""
    engine = await start_engine(make_config(SkuConfig("a", 5)))
    order_id = (await engine.purchase("a", "alice")).order_id or ""
    for call in (engine.order, engine.pay, engine.cancel):
        with pytest.raises(InvalidRequest) as info:
            await call(order_id, user=user)  # type: ignore[arg-type]
        assert info.value.field == "user"
    assert (await engine.sku_status("a")).reserved == 1


def test_the_sync_wrapper_acts_only_for_the_buyer(make_config: MakeConfig, clock: ManualClock) -> None:
    """SyncSaleEngine.order/pay/cancel take the buyer too, with the same UnknownOrder for anyone else."""
    with SyncSaleEngine(make_config(SkuConfig("a", 3)), clock=clock) as engine:
        order_id = engine.purchase("a", "alice").order_id or ""
        for call in (engine.order, engine.pay, engine.cancel):
            with pytest.raises(UnknownOrder):
                call(order_id, user="mallory")
        assert engine.pay(order_id, user="alice").status == "paid"
        assert engine.order(order_id, user="alice").status == "paid"
        second = engine.purchase("a", "bob").order_id or ""
        assert engine.cancel(second, user="bob").status == "cancelled"
