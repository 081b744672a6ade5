"""SaleEngine's API: validation, errors, batches, overload, life cycle and readiness."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from flashsale import (
    EngineClosed,
    FlashsaleError,
    InvalidRequest,
    ManualClock,
    Outcome,
    PurchaseRequest,
    SaleEngine,
    SkuConfig,
    SkuStatus,
    UnknownOrder,
    UnknownSku,
    from_datetime,
    to_datetime,
    wall_clock,
)
from tests.conftest import T0, MakeConfig, StartEngine, read_orders, read_restocks


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sku": 5}, "sku"),
        ({"sku": None}, "sku"),
        ({"sku": b"a"}, "sku"),
        ({"qty": 0}, "qty"),
        ({"qty": -1}, "qty"),
        ({"qty": 11}, "qty"),
        ({"qty": 10**100}, "qty"),
        ({"qty": True}, "qty"),
        ({"qty": 1.0}, "qty"),
        ({"qty": "1"}, "qty"),
        ({"user": ""}, "user"),
        ({"user": "x" * 129}, "user"),
        ({"user": 5}, "user"),
        ({"user": None}, "user"),
        ({"user": "\ud800"}, "user"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": "k" * 256}, "idempotency_key"),
        ({"idempotency_key": 5}, "idempotency_key"),
        ({"idempotency_key": "k\udfff"}, "idempotency_key"),
        ({"request_id": None}, "request_id"),
        ({"request_id": 7}, "request_id"),
        ({"request_id": "\ud800"}, "request_id"),
    ],
)
async def test_invalid_request(
    make_config: MakeConfig, start_engine: StartEngine, db_path: Path, kwargs: dict[str, Any], field: str
) -> None:
    """Each malformed argument is InvalidRequest naming its field, and changes nothing."""
    engine = await start_engine(make_config(SkuConfig("a", 10), max_qty=10))
    args: dict[str, Any] = {"sku": "a", "user": "u1", "qty": 1} | kwargs
    with pytest.raises(InvalidRequest) as info:
        await engine.purchase(**args)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, FlashsaleError)
    with pytest.raises(InvalidRequest):
        await engine.purchase_many([PurchaseRequest(**args)])
    assert engine.inflight == 0
    await engine.flush()
    assert (await engine.sku_status("a")).remaining == 10
    assert read_orders(db_path) == []


async def test_limits_of_valid_input(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """qty == max_qty, a 128-character user and a 255-character key are accepted."""
    engine = await start_engine(make_config(SkuConfig("a", 10), max_qty=10))
    outcome = await engine.purchase("a", "u" * 128, 10, idempotency_key="k" * 255, client_ip="10.0.0.1")
    assert outcome.result == "reserved"


async def test_bad_input_does_not_fail_other_buyers(
    make_config: MakeConfig, start_engine: StartEngine, db_path: Path
) -> None:
    """A malformed purchase in the same tick as good ones never reaches the store to fail their commit."""
    engine = await start_engine(make_config(SkuConfig("a", 10)))
    outcomes = await asyncio.gather(
        engine.purchase("a", "u1"),
        engine.purchase("a", "\udc80"),
        engine.purchase("a", "u2", request_id=None),  # type: ignore[arg-type]
        engine.purchase("a", "u3"),
        return_exceptions=True,
    )
    assert [o.result if isinstance(o, Outcome) else type(o) for o in outcomes] == [
        "reserved",
        InvalidRequest,
        InvalidRequest,
        "reserved",
    ]
    assert engine.gauges.store_ok
    assert len(read_orders(db_path)) == 2


async def test_unknown_sku(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """A SKU not in the sale is UnknownSku (a LookupError) for purchase, status, view and restock."""
    engine = await start_engine(make_config(SkuConfig("a", 10)))
    with pytest.raises(UnknownSku) as info:
        await engine.purchase("b", "u1")
    assert info.value.sku == "b"
    assert isinstance(info.value, LookupError)
    with pytest.raises(UnknownSku):
        await engine.sku_status("b")
    with pytest.raises(UnknownSku):
        engine.view("b")
    with pytest.raises(UnknownSku):
        await engine.restock("b", 1)


async def test_restock_quantity_is_bounded(make_config: MakeConfig, start_engine: StartEngine, db_path: Path) -> None:
    """A huge restock is InvalidRequest: it never reaches the store to jam every later commit."""
    engine = await start_engine(make_config(SkuConfig("a", 1)))
    for huge in (2**63, 10**30):
        with pytest.raises(InvalidRequest) as info:
            await engine.restock("a", huge)
        assert info.value.field == "qty"
    assert (await engine.sku_status("a")).stock == 1
    await engine.restock("a", 1_000_000)
    assert (await engine.purchase("a", "u1")).result == "reserved"
    assert engine.gauges.store_ok
    assert [qty for _, qty, _ in read_restocks(db_path)] == [1_000_000]


async def test_engine_closed_before_start_and_after_stop(make_config: MakeConfig, clock: ManualClock) -> None:
    """Every call that needs the actors raises EngineClosed before start() and after stop()."""
    engine = SaleEngine(make_config(SkuConfig("a", 10)), clock=clock)

    async def each_call_is_closed() -> None:
        with pytest.raises(EngineClosed):
            await engine.purchase("a", "u1")
        with pytest.raises(EngineClosed):
            await engine.purchase_many([PurchaseRequest("a", "u1")])
        with pytest.raises(EngineClosed):
            await engine.order("a-1", user="u1")
        with pytest.raises(EngineClosed):
            await engine.restock("a", 1)
        with pytest.raises(EngineClosed):
            await engine.flush()

    await each_call_is_closed()
    assert not engine.running
    await engine.start()
    await engine.start()  # a second start is a no-op
    assert engine.running
    assert (await engine.purchase("a", "u1")).result == "reserved"
    await engine.stop()
    await engine.stop()  # and so is a second stop
    assert not engine.running
    await each_call_is_closed()
    assert isinstance(EngineClosed("x"), RuntimeError)


async def test_async_context_manager(make_config: MakeConfig, clock: ManualClock) -> None:
    """``async with SaleEngine(...)`` starts the engine and stops it on the way out, even on error."""
    engine = SaleEngine(make_config(SkuConfig("a", 10)), clock=clock)

    async def fail_inside() -> None:
        async with engine as entered:
            assert entered is engine
            assert engine.running
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await fail_inside()
    assert not engine.running
    assert engine.readiness()["actors_alive"] is False


async def test_stop_answers_purchases_in_flight(make_config: MakeConfig, clock: ManualClock, db_path: Path) -> None:
    """stop() while purchases are in flight answers every one of them and commits their orders."""
    engine = SaleEngine(make_config(SkuConfig("a", 30)), clock=clock)
    await engine.start()
    tasks = [asyncio.ensure_future(engine.purchase("a", f"u{i}")) for i in range(50)]
    await asyncio.ensure_future(engine.stop())  # scheduled after the purchases: they are in flight when it runs
    outcomes = [t.result() for t in tasks]
    assert [o.result for o in outcomes].count("reserved") == 30
    assert {o.order_id for o in read_orders(db_path)} == {o.order_id for o in outcomes if o.order_id}


async def test_purchase_many_keeps_order(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """purchase_many answers in the order asked, mixing early and actor answers."""
    engine = await start_engine(make_config(SkuConfig("a", 2, per_user_limit=1), SkuConfig("gone", 0)))
    outcomes = await engine.purchase_many(
        [
            PurchaseRequest("gone", "u1"),
            PurchaseRequest("a", "u1", request_id="r1"),
            PurchaseRequest("a", "u1"),
            PurchaseRequest("gone", "u2", idempotency_key="k"),
            PurchaseRequest("a", "u2", idempotency_key="k2"),
            PurchaseRequest("a", "u3"),
        ]
    )
    assert [(o.result, o.sku) for o in outcomes] == [
        ("sold_out", "gone"),
        ("reserved", "a"),
        ("limit_reached", "a"),
        ("sold_out", "gone"),
        ("reserved", "a"),
        ("sold_out", "a"),
    ]
    assert (await engine.order(outcomes[1].order_id or "", user="u1")).request_id == "r1"
    assert await engine.purchase_many([]) == []
    assert await engine.purchase_many([PurchaseRequest("gone", "u9")] * 3) == [outcomes[0]] * 3
    assert engine.inflight == 0


@pytest.mark.parametrize(
    "bad", [PurchaseRequest("a", "u9", qty=0), PurchaseRequest("nope", "u9"), PurchaseRequest("a", "")]
)
async def test_purchase_many_validates_before_submitting(
    make_config: MakeConfig, start_engine: StartEngine, db_path: Path, bad: PurchaseRequest
) -> None:
    """One bad request in a batch raises before any of the batch is tried."""
    engine = await start_engine(make_config(SkuConfig("a", 10)))
    batch = [PurchaseRequest("a", f"u{i}") for i in range(5)] + [bad]
    with pytest.raises((InvalidRequest, UnknownSku)):
        await engine.purchase_many(batch)
    assert engine.inflight == 0
    await engine.flush()
    assert (await engine.sku_status("a")).remaining == 10
    assert read_orders(db_path) == []


async def test_overloaded_when_too_many_in_flight(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """Beyond max_inflight purchases in flight, the rest are answered overloaded at once."""
    engine = await start_engine(make_config(SkuConfig("a", 100), max_inflight=3))
    outcomes = await asyncio.gather(*(engine.purchase("a", f"u{i}") for i in range(10)))
    assert [o.result for o in outcomes] == ["reserved"] * 3 + ["overloaded"] * 7
    assert outcomes[3].detail == "too many purchases in flight; retry shortly"
    batch = await engine.purchase_many([PurchaseRequest("a", f"v{i}") for i in range(5)])
    assert [o.result for o in batch] == ["reserved"] * 3 + ["overloaded"] * 2
    assert engine.inflight == 0
    assert (await engine.purchase("a", "w")).result == "reserved"  # room again once answered


async def test_readiness(make_config: MakeConfig, clock: ManualClock) -> None:
    """readiness() reports each check: running, actors alive, store ok, writer keeping up."""
    engine = SaleEngine(make_config(SkuConfig("a", 10)), clock=clock)
    assert engine.readiness() == {
        "running": False,
        "actors_alive": False,
        "store_ok": True,
        "writer_keeping_up": True,
        "below_inflight_limit": True,
    }
    async with engine:
        checks = ("running", "actors_alive", "store_ok", "writer_keeping_up", "below_inflight_limit")
        assert engine.readiness() == dict.fromkeys(checks, True)
    assert engine.readiness()["running"] is False
    assert engine.readiness()["actors_alive"] is False


async def test_sku_status_and_view(make_config: MakeConfig, start_engine: StartEngine, clock: ManualClock) -> None:
    """sku_status reports counters and the state at the clock's now; view() is the latest snapshot."""
    engine = await start_engine(make_config(SkuConfig("a", 5, ends_at=T0 + 60_000_000)))
    await engine.purchase("a", "u1", 2)
    assert await engine.sku_status("a") == SkuStatus("a", 5, 3, 2, 0, "on_sale", None, T0 + 60_000_000)
    assert engine.view("a").remaining == 3
    clock.advance(60)
    assert (await engine.sku_status("a")).state == "ended"


async def test_order_lookup_unknown(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """order() of an id never issued is UnknownOrder, a LookupError."""
    engine = await start_engine(make_config(SkuConfig("a", 5)))
    with pytest.raises(UnknownOrder) as info:
        await engine.order("a-1", user="u1")
    assert isinstance(info.value, LookupError)
    with pytest.raises(UnknownOrder):
        await engine.order("", user="u1")


@pytest.mark.parametrize("order_id", [None, 5, ["a-1"], "a-\ud800"])
async def test_order_lookup_invalid(make_config: MakeConfig, start_engine: StartEngine, order_id: Any) -> None:
    """order() of something that cannot be an order id is InvalidRequest, answered at once."""
    engine = await start_engine(make_config(SkuConfig("a", 5)))
    with pytest.raises(InvalidRequest) as info:
        await asyncio.wait_for(engine.order(order_id, user="u1"), 10)  # a safety net: fails instead of hanging
    assert info.value.field == "order_id"


async def test_arrival_time_comes_from_the_injected_clock(
    make_config: MakeConfig, start_engine: StartEngine, clock: ManualClock
) -> None:
    """Orders are stamped with the engine's clock, read once per purchase."""
    engine = await start_engine(make_config(SkuConfig("a", 5, payment_timeout=30)))
    clock.set(T0 + 123)
    outcome = await engine.purchase("a", "u1")
    order = await engine.order(outcome.order_id or "", user="u1")
    assert (order.created_at, order.expires_at) == (T0 + 123, T0 + 123 + 30_000_000)


def test_clock_helpers() -> None:
    """ManualClock moves only when told; datetimes convert to and from epoch microseconds exactly."""
    clock = ManualClock()
    assert clock() == T0
    clock.advance(1.5)
    assert clock() == T0 + 1_500_000
    clock.set(42)
    assert clock() == 42
    assert from_datetime(to_datetime(T0 + 7)) == T0 + 7
    assert to_datetime(T0).isoformat() == "2026-01-01T00:00:00+00:00"
    assert abs(wall_clock() - T0) < 10**16  # microseconds, not seconds or nanoseconds
    assert wall_clock() > 10**15


async def test_one_batch_keeps_arrival_order_across_routes(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """Keyed and plain purchases of one SKU in one batch reach its owner in arrival order: the first wins."""
    engine = await start_engine(make_config(SkuConfig("a", 0)))
    for round_ in range(30):
        await engine.restock("a", 1)
        outcomes = await engine.purchase_many(
            [
                PurchaseRequest("a", f"keyed-{round_}", idempotency_key=f"k{round_}"),
                PurchaseRequest("a", f"plain-{round_}"),
            ]
        )
        assert [o.result for o in outcomes] == ["reserved", "sold_out"], round_
