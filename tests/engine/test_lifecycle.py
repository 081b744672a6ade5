"""The order lifecycle: reserved → paid | cancelled | expired, units back exactly once."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from flashsale import Config, ManualClock, SaleEngine, SkuConfig, TransitionRefused, Unavailable, UnknownOrder
from tests.conftest import FlakyStore, MakeConfig, StartEngine

HOLD = 60.0  # seconds a reservation waits for payment in these tests


@pytest.fixture
def config(make_config: MakeConfig) -> Config:
    """Two SKUs, a per-user limit, a 60 s payment window, and no background timer: the test drives ticks."""
    base = make_config(
        SkuConfig("a", 5, per_user_limit=2, payment_timeout=HOLD), SkuConfig("b", 3, payment_timeout=HOLD)
    )
    return dataclasses.replace(base, tick_interval=0)


def _status(db: Path, order_id: str) -> str:
    with closing(sqlite3.connect(db)) as conn:
        return str(conn.execute("SELECT status FROM orders WHERE order_id = ?", (order_id,)).fetchone()[0])


async def _reserve(engine: SaleEngine, user: str, sku: str = "a", qty: int = 1) -> str:
    outcome = await engine.purchase(sku, user, qty)
    assert outcome.result == "reserved"
    assert outcome.order_id is not None
    return outcome.order_id


async def test_pay_moves_units_from_reserved_to_paid(config: Config, start_engine: StartEngine, db_path: Path) -> None:
    """Paying a reservation commits status paid and moves its units from reserved to paid."""
    engine = await start_engine(config)
    order_id = await _reserve(engine, "u1", qty=2)
    paid = await engine.pay(order_id, user="u1")
    assert paid.status == "paid"
    assert _status(db_path, order_id) == "paid"
    status = await engine.sku_status("a")
    assert (status.remaining, status.reserved, status.paid) == (3, 0, 2)
    assert (await engine.order(order_id, user="u1")).status == "paid"


async def test_paid_and_cancelled_orders_refuse_further_changes(config: Config, start_engine: StartEngine) -> None:
    """Only a reserved order can be paid or cancelled; a refusal names the status and changes nothing."""
    engine = await start_engine(config)
    paid = await _reserve(engine, "u1")
    await engine.pay(paid, user="u1")
    for change in (engine.pay, engine.cancel):
        with pytest.raises(TransitionRefused) as refused:
            await change(paid, user="u1")
        assert (refused.value.reason, refused.value.order.status) == ("not_reserved", "paid")
    cancelled = await _reserve(engine, "u2")
    await engine.cancel(cancelled, user="u2")
    with pytest.raises(TransitionRefused):
        await engine.pay(cancelled, user="u2")
    status = await engine.sku_status("a")
    assert (status.remaining, status.reserved, status.paid) == (4, 0, 1)


async def test_cancel_returns_units_and_allowance(config: Config, start_engine: StartEngine, db_path: Path) -> None:
    """Cancelling puts the units back on sale and gives the buyer their per-user allowance back."""
    engine = await start_engine(config)
    order_id = await _reserve(engine, "u1", qty=2)
    assert (await engine.purchase("a", "u1")).result == "limit_reached"
    cancelled = await engine.cancel(order_id, user="u1")
    assert cancelled.status == "cancelled"
    assert _status(db_path, order_id) == "cancelled"
    assert (await engine.sku_status("a")).remaining == 5
    assert (await engine.purchase("a", "u1", 2)).result == "reserved"


async def test_unpaid_reservations_expire_once(
    config: Config, start_engine: StartEngine, clock: ManualClock, db_path: Path
) -> None:
    """A tick after the payment window expires the reservation; its units come back exactly once."""
    engine = await start_engine(config)
    early = await _reserve(engine, "u1")
    clock.advance(30)
    late = await _reserve(engine, "u2", "b")
    clock.advance(30)  # early's deadline exactly; late has 30 s left
    assert await engine.expire_due() == 1
    assert _status(db_path, early) == "expired"
    assert _status(db_path, late) == "reserved"
    assert (await engine.sku_status("a")).remaining == 5
    assert await engine.expire_due() == 0
    assert (await engine.sku_status("a")).remaining == 5
    clock.advance(30)
    assert await engine.expire_due() == 1
    assert (await engine.sku_status("b")).remaining == 3


async def test_paying_after_the_deadline_expires_the_order(
    config: Config, start_engine: StartEngine, clock: ManualClock
) -> None:
    """A payment that arrives after expires_at (before any tick) is refused and the order expires then."""
    engine = await start_engine(config)
    order_id = await _reserve(engine, "u1", qty=2)
    clock.advance(HOLD)
    with pytest.raises(TransitionRefused) as refused:
        await engine.pay(order_id, user="u1")
    assert (refused.value.reason, refused.value.order.status) == ("expired", "expired")
    assert (await engine.sku_status("a")).remaining == 5
    assert (await engine.purchase("a", "u1", 2)).result == "reserved"  # allowance back too
    assert await engine.expire_due() == 0  # nothing left to expire: units came back once


async def test_racing_pay_cancel_and_expiry_change_an_order_once(
    config: Config, start_engine: StartEngine, clock: ManualClock
) -> None:
    """Pay, cancel and expiry racing for one order: exactly one wins and stock is conserved."""
    engine = await start_engine(config)
    order_ids = [await _reserve(engine, f"u{i}") for i in range(5)]
    clock.advance(HOLD - 0.000_001)  # one microsecond before the deadline
    results = await asyncio.gather(
        *(change(o, user=f"u{i}") for i, o in enumerate(order_ids) for change in (engine.pay, engine.cancel)),
        engine.expire_due(),
        return_exceptions=True,
    )
    changes = results[:-1]
    assert results[-1] == 0
    assert sum(not isinstance(r, BaseException) for r in changes) == 5  # one success per order
    assert all(isinstance(r, TransitionRefused) for r in changes if isinstance(r, BaseException))
    status = await engine.sku_status("a")
    assert status.remaining + status.reserved + status.paid == status.stock


async def test_lifecycle_survives_a_restart(config: Config, start_engine: StartEngine, clock: ManualClock) -> None:
    """After a restart, paid units stay paid, cancelled and expired units stay on sale, allowances hold."""
    engine = await start_engine(config)
    paid = await _reserve(engine, "u1", qty=2)
    await engine.pay(paid, user="u1")
    cancelled = await _reserve(engine, "u2", qty=2)
    await engine.cancel(cancelled, user="u2")
    await _reserve(engine, "u3")
    clock.advance(HOLD)
    assert await engine.expire_due() == 1
    await engine.stop()
    again = await start_engine(config)
    status = await again.sku_status("a")
    assert (status.remaining, status.reserved, status.paid) == (3, 0, 2)
    assert (await again.purchase("a", "u1")).result == "limit_reached"  # paid units still count
    assert (await again.purchase("a", "u2", 2)).result == "reserved"  # cancelled ones do not
    assert (await again.order(paid, user="u1")).status == "paid"


async def test_unknown_order_and_store_failure(
    config: Config, start_engine: StartEngine, flaky_store: FlakyStore, db_path: Path
) -> None:
    """An unknown id is UnknownOrder; a change the store cannot commit is Unavailable and changes nothing."""
    engine = await start_engine(config, store=flaky_store)
    with pytest.raises(UnknownOrder):
        await engine.pay("a-999", user="u1")
    order_id = await _reserve(engine, "u1")
    flaky_store.failing = True
    with pytest.raises(Unavailable):
        await engine.cancel(order_id, user="u1")
    flaky_store.failing = False
    assert _status(db_path, order_id) == "reserved"
    assert (await engine.sku_status("a")).reserved == 1
    assert (await engine.cancel(order_id, user="u1")).status == "cancelled"
