"""The inventory actor: one owner per SKU, exact stock, restocks, sale windows."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path

import pykka
import pytest

from flashsale import InvalidRequest, ManualClock, PurchaseRequest, SkuConfig, UnknownSku
from flashsale.actors import InventoryActor, SkuStock, SkuTotals, SkuView
from tests.conftest import T0, MakeConfig, StartEngine, read_orders, read_restocks
from tests.ids import plain

SECOND = 1_000_000
STARTS = T0 + 10 * SECOND
ENDS = T0 + 20 * SECOND


async def test_exactly_stock_sold_under_contention(
    make_config: MakeConfig, start_engine: StartEngine, db_path: Path
) -> None:
    """500 buyers in one tick for 50 units: exactly 50 reserved, each order id once."""
    engine = await start_engine(make_config(SkuConfig("a", 50)))
    outcomes = await asyncio.gather(*(engine.purchase("a", f"u{i}") for i in range(500)))
    assert Counter(o.result for o in outcomes) == {"reserved": 50, "sold_out": 450}
    ids = sorted(o.order_id for o in outcomes if o.order_id is not None)
    assert sorted(map(plain, ids)) == sorted(f"a-{n}" for n in range(1, 51))
    status = await engine.sku_status("a")
    assert (status.remaining, status.reserved, status.state) == (0, 50, "sold_out")
    assert sorted(o.order_id for o in read_orders(db_path)) == ids


async def test_exactly_stock_sold_over_many_ticks_and_skus(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """Waves of mixed-quantity buyers over several SKUs and owners never oversell any SKU."""
    stocks = {"a": 7, "b": 30, "c": 1, "d": 64}
    engine = await start_engine(make_config(*(SkuConfig(s, n) for s, n in stocks.items()), inventory_actors=2))
    sold: Counter[str] = Counter()
    for wave in range(5):
        outcomes = await asyncio.gather(
            *(engine.purchase(sku, f"u{wave}-{i}", 1 + i % 3) for i in range(60) for sku in stocks)
        )
        for o in outcomes:
            if o.result == "reserved":
                sold[o.sku] += o.qty
    for sku, stock in stocks.items():
        status = await engine.sku_status(sku)
        assert sold[sku] == status.reserved <= stock
        assert status.remaining + status.reserved == stock
        assert status.remaining < 3  # nobody was turned away while a unit they asked for was left


async def test_sold_out_details(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """Asking for more than is left says 'only N left'; nothing left says 'sold out'."""
    engine = await start_engine(make_config(SkuConfig("a", 5)))
    assert (await engine.purchase("a", "u1", 3)).result == "reserved"
    short = await engine.purchase("a", "u2", 3)
    assert (short.result, short.detail, short.order_id) == ("sold_out", "only 2 left", None)
    assert (await engine.purchase("a", "u2", 2)).result == "reserved"
    gone = await engine.purchase("a", "u3", 1)
    assert (gone.result, gone.detail) == ("sold_out", "sold out")
    keyed = await engine.purchase("a", "u3", 1, idempotency_key="k")  # answered by the actor, not the gateway
    assert (keyed.result, keyed.detail) == ("sold_out", "sold out")


async def test_reserved_order_fields(make_config: MakeConfig, start_engine: StartEngine, clock: ManualClock) -> None:
    """A reserved order carries the buyer, quantity, arrival time and a payment deadline."""
    engine = await start_engine(make_config(SkuConfig("a", 5, payment_timeout=60.0)))
    clock.advance(1.5)
    outcome = await engine.purchase("a", "u1", 2, idempotency_key="k", request_id="req-1")
    assert outcome.expires_at == clock.now + 60 * SECOND
    order = await engine.order(outcome.order_id or "", user="u1")
    assert order == (outcome.order_id, "a", "u1", 2, "reserved", clock.now, clock.now + 60 * SECOND, "k", "req-1")


async def test_restock_makes_units_sellable_and_is_recorded(
    make_config: MakeConfig, start_engine: StartEngine, clock: ManualClock, db_path: Path
) -> None:
    """A restock of a sold-out SKU sells again, shows in stock, and is stored with its time."""
    engine = await start_engine(make_config(SkuConfig("a", 1)))
    assert (await engine.purchase("a", "u1")).result == "reserved"
    assert (await engine.purchase("a", "u2")).result == "sold_out"
    clock.advance(3)
    view = await engine.restock("a", 2)
    assert view == SkuView("a", 3, 2, 1, 0, None, None)
    assert read_restocks(db_path) == [("a", 2, clock.now)]  # stored before restock() returned
    outcomes = await asyncio.gather(*(engine.purchase("a", f"v{i}") for i in range(5)))
    assert [o.result for o in outcomes].count("reserved") == 2
    status = await engine.sku_status("a")
    assert (status.stock, status.remaining, status.reserved, status.state) == (3, 0, 3, "sold_out")


async def test_restock_validates(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """Restock needs a known SKU and a whole quantity of at least one."""
    engine = await start_engine(make_config(SkuConfig("a", 1)))
    for bad in (0, -1, 1.0, True, "2"):
        with pytest.raises(InvalidRequest):
            await engine.restock("a", bad)  # type: ignore[arg-type]
    with pytest.raises(UnknownSku):
        await engine.restock("zz", 1)
    assert (await engine.sku_status("a")).stock == 1


@pytest.mark.parametrize("key", [None, "k"], ids=["gateway", "actor"])
async def test_sale_window_edges(
    make_config: MakeConfig, start_engine: StartEngine, clock: ManualClock, key: str | None
) -> None:
    """at == starts_at is open and at == ends_at is closed, answered alike with or without a key."""
    engine = await start_engine(make_config(SkuConfig("a", 100, starts_at=STARTS, ends_at=ENDS)))

    async def buy(at: int, user: str) -> tuple[str, str]:
        clock.set(at)
        o = await engine.purchase("a", user, idempotency_key=key)
        return o.result, o.detail

    assert await buy(T0, "u0") == ("sale_not_open", "the sale has not started yet")
    assert (await engine.sku_status("a")).state == "scheduled"
    assert await buy(STARTS - 1, "u1") == ("sale_not_open", "the sale has not started yet")
    assert (await buy(STARTS, "u2"))[0] == "reserved"
    assert (await engine.sku_status("a")).state == "on_sale"
    assert (await buy(ENDS - 1, "u3"))[0] == "reserved"
    assert await buy(ENDS, "u4") == ("sale_not_open", "the sale has ended")
    assert (await engine.sku_status("a")).state == "ended"
    assert (await engine.sku_status("a")).reserved == 2


async def test_sku_state_sold_out_within_window(
    make_config: MakeConfig, start_engine: StartEngine, clock: ManualClock
) -> None:
    """A SKU sold out during its window is sold_out; after ends_at it is ended."""
    engine = await start_engine(make_config(SkuConfig("a", 1, starts_at=STARTS, ends_at=ENDS)))
    clock.set(STARTS)
    assert (await engine.purchase("a", "u1")).result == "reserved"
    assert (await engine.sku_status("a")).state == "sold_out"
    clock.set(ENDS)
    assert (await engine.sku_status("a")).state == "ended"


@pytest.mark.parametrize("key", [None, "k"], ids=["gateway", "actor"])
async def test_closed_window_wins_over_sold_out(
    make_config: MakeConfig, start_engine: StartEngine, clock: ManualClock, key: str | None
) -> None:
    """Outside its window a sold-out SKU answers sale_not_open, as its state says, key or not."""
    engine = await start_engine(
        make_config(SkuConfig("a", 1, starts_at=STARTS, ends_at=ENDS), SkuConfig("z", 0, starts_at=STARTS))
    )
    clock.set(STARTS)
    assert (await engine.purchase("a", "u1")).result == "reserved"
    clock.set(ENDS)
    assert (await engine.sku_status("a")).state == "ended"
    assert (await engine.purchase("a", "u2", idempotency_key=key)).result == "sale_not_open"
    clock.set(T0)
    assert (await engine.sku_status("z")).state == "scheduled"
    assert (await engine.purchase("z", "u3", idempotency_key=key)).result == "sale_not_open"


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "remaining", "at", "state"),
    [
        (None, None, 1, T0, "on_sale"),
        (None, None, 0, T0, "sold_out"),
        (STARTS, None, 0, STARTS - 1, "scheduled"),
        (STARTS, None, 1, STARTS, "on_sale"),
        (None, ENDS, 1, ENDS - 1, "on_sale"),
        (None, ENDS, 1, ENDS, "ended"),
        (STARTS, ENDS, 0, ENDS, "ended"),
    ],
)
def test_sku_view_state(starts_at: int | None, ends_at: int | None, remaining: int, at: int, state: str) -> None:
    """SkuView.state: scheduled before starts_at, ended from ends_at, else sold_out or on_sale."""
    assert SkuView("a", 1, remaining, 1 - remaining, 0, starts_at, ends_at).state(at) == state


def test_sku_stock_counts_recovered_totals() -> None:
    """SkuStock starts from what the store holds: remaining = stock + restocked - reserved - paid."""
    s = SkuStock("a", 10, totals=SkuTotals(reserved=3, paid=2, restocked=4, last_seq=9))
    assert s.remaining == 9
    assert s.view() == SkuView("a", 14, 9, 3, 2, None, None)
    assert s.seq == 9


async def test_thousands_of_skus_on_few_threads(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """3000 SKUs run on inventory_actors=4 owner threads, and each sells its one unit once."""
    before = threading.active_count()
    skus = [SkuConfig(f"sku-{i}", 1) for i in range(3000)]
    engine = await start_engine(make_config(*skus, inventory_actors=4))
    assert len(pykka.ActorRegistry.get_by_class(InventoryActor)) == 4
    # 4 owners + limiter + dedup + writer, and the loop's worker thread that opened the store
    assert threading.active_count() - before <= 8
    first = await engine.purchase_many([PurchaseRequest(s.id, f"u{i}") for i, s in enumerate(skus)])
    second = await engine.purchase_many([PurchaseRequest(s.id, f"v{i}") for i, s in enumerate(skus)])
    assert {o.result for o in first} == {"reserved"}
    assert {o.result for o in second} == {"sold_out"}
    assert threading.active_count() - before <= 8
