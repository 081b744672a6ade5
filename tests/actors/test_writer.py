"""The order writer and its store: group commit, durability modes, and what a store failure does."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

from flashsale import SaleEngine, SkuConfig, Unavailable, UnknownOrder
from tests.conftest import FlakyStore, MakeConfig, StartEngine, read_orders, read_restocks
from tests.ids import plain

PROBE = SkuConfig("probe", 0)
"""A SKU with nothing to sell: a keyed purchase of it travels the whole pipeline."""


async def _through_pipeline(engine: SaleEngine) -> None:
    """Wait until limiter, dedup and the (single) inventory actor handled everything sent so far."""
    outcome = await engine.purchase("probe", "probe-user", idempotency_key=f"probe-{next(_probes)}")
    assert outcome.result == "sold_out"


_probes = itertools.count()


async def test_commit_durability_answers_after_commit(
    make_config: MakeConfig, start_engine: StartEngine, db_path: Path
) -> None:
    """durability=commit: an order answered reserved is already in the SQLite file."""
    engine = await start_engine(make_config(SkuConfig("a", 10)))
    outcome = await engine.purchase("a", "u1", 2)
    assert outcome.result == "reserved"
    assert read_orders(db_path) == [await engine.order(outcome.order_id or "", user="u1")]
    outcomes = await asyncio.gather(*(engine.purchase("a", f"v{i}") for i in range(20)))
    answered = {o.order_id for o in outcomes if o.result == "reserved"}
    assert len(answered) == 8
    assert {o.order_id for o in read_orders(db_path)} == answered | {outcome.order_id}


async def test_async_durability_answers_then_writes(
    make_config: MakeConfig, start_engine: StartEngine, db_path: Path
) -> None:
    """durability=async: buyers are answered at reservation; the order is stored by flush()."""
    engine = await start_engine(make_config(SkuConfig("a", 10), durability="async"))
    outcomes = await asyncio.gather(*(engine.purchase("a", f"u{i}", idempotency_key="k") for i in range(4)))
    assert {o.result for o in outcomes} == {"reserved"}
    assert (await engine.order(outcomes[0].order_id or "", user="u0")).user == "u0"  # found pending or committed
    await engine.flush()
    assert sorted(o.order_id for o in read_orders(db_path)) == sorted(o.order_id for o in outcomes)
    assert await engine.purchase("a", "u1", idempotency_key="k") == outcomes[1]


async def test_group_commit_one_transaction_per_batch(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """The purchases of one loop tick are committed in one transaction."""
    engine = await start_engine(make_config(SkuConfig("a", 1000)))
    outcomes = await asyncio.gather(*(engine.purchase("a", f"u{i}") for i in range(300)))
    assert {o.result for o in outcomes} == {"reserved"}
    assert (engine.gauges.commits, engine.gauges.orders_committed) == (1, 300)


async def test_store_failure_refuses_buyers_and_returns_everything(
    make_config: MakeConfig, start_engine: StartEngine, flaky_store: FlakyStore, db_path: Path
) -> None:
    """A failed commit: buyers get unavailable, units and holds come back, store_ok reports it."""
    engine = await start_engine(
        make_config(SkuConfig("a", 3, per_user_limit=1), PROBE, inventory_actors=1), store=flaky_store
    )
    assert (await engine.purchase("a", "u0")).result == "reserved"
    flaky_store.failing = True
    failed = await asyncio.gather(*(engine.purchase("a", f"u{i}") for i in range(1, 4)))
    assert [o.result for o in failed] == ["unavailable"] * 2 + ["sold_out"]
    assert failed[0].detail == "the order store is unavailable; nothing was bought"
    assert failed[0].order_id is None
    assert engine.gauges.store_ok is False
    assert engine.readiness()["store_ok"] is False
    await _through_pipeline(engine)
    status = await engine.sku_status("a")
    assert (status.remaining, status.reserved) == (2, 1)
    assert [plain(o.order_id) for o in read_orders(db_path)] == ["a-1"]

    flaky_store.failing = False
    again = await asyncio.gather(*(engine.purchase("a", f"u{i}") for i in range(1, 4)))
    assert [o.result for o in again] == ["reserved", "reserved", "sold_out"]  # holds were released
    assert engine.gauges.store_ok is True
    assert engine.readiness()["store_ok"] is True
    stored = read_orders(db_path)
    assert [(plain(o.order_id), o.user) for o in stored] == [("a-1", "u0"), ("a-4", "u1"), ("a-5", "u2")]
    reported = {stored[0].order_id} | {o.order_id for o in again if o.result == "reserved"}
    assert {o.order_id for o in stored} == reported  # nothing reported reserved that was not written
    assert engine.gauges.failures == 1


async def test_failed_restock_is_kept_until_it_commits(
    make_config: MakeConfig, start_engine: StartEngine, flaky_store: FlakyStore, db_path: Path
) -> None:
    """A restock whose commit failed is not undone: it is written with the next commit, then answered."""
    engine = await start_engine(make_config(SkuConfig("a", 0), PROBE, inventory_actors=1), store=flaky_store)
    flaky_store.failing = True
    restock = asyncio.ensure_future(engine.restock("a", 2))
    await _through_pipeline(engine)
    assert not restock.done()
    assert (await engine.sku_status("a")).remaining == 2
    assert (await engine.purchase("a", "u1")).result == "unavailable"
    assert engine.gauges.backlog == 1
    flaky_store.failing = False
    await engine.flush()
    view = await restock
    assert (view.stock, view.remaining) == (2, 2)
    assert [(sku, qty) for sku, qty, _ in read_restocks(db_path)] == [("a", 2)]
    assert read_orders(db_path) == []
    assert engine.gauges.backlog == 0


async def test_async_durability_failure_keeps_orders_and_retries(
    make_config: MakeConfig, start_engine: StartEngine, flaky_store: FlakyStore, db_path: Path
) -> None:
    """durability=async: answered orders that failed to commit are kept, retried, and stored later."""
    engine = await start_engine(
        make_config(SkuConfig("a", 10), durability="async", max_writer_backlog=2), store=flaky_store
    )
    flaky_store.failing = True
    first = await engine.purchase("a", "u1")
    assert first.result == "reserved"
    assert (await engine.order(first.order_id or "", user="u1")).user == "u1"  # the writer has tried and kept it
    assert engine.gauges.store_ok is False
    assert engine.gauges.backlog == 1
    second = await engine.purchase("a", "u2")
    assert (await engine.order(second.order_id or "", user="u2")).user == "u2"
    assert engine.gauges.backlog == 2
    refused = await engine.purchase("a", "u3")
    assert (refused.result, refused.detail) == ("overloaded", "too many purchases in flight; retry shortly")
    assert engine.readiness()["writer_keeping_up"] is False
    assert read_orders(db_path) == []
    flaky_store.failing = False
    await engine.flush()
    assert [o.order_id for o in read_orders(db_path)] == [first.order_id, second.order_id]
    assert engine.readiness() == {
        "running": True,
        "actors_alive": True,
        "store_ok": True,
        "writer_keeping_up": True,
        "below_inflight_limit": True,
    }


async def test_real_sqlite_failure_locked_database(
    make_config: MakeConfig, start_engine: StartEngine, db_path: Path
) -> None:
    """A real SQLite failure (database locked by another writer) is unavailable, and recovers."""
    engine = await start_engine(make_config(SkuConfig("a", 5), PROBE, inventory_actors=1))
    assert (await engine.purchase("a", "u0")).result == "reserved"
    with closing(sqlite3.connect(db_path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # holds the write lock past the store's busy_timeout
        locked = await engine.purchase("a", "u1")
        other.execute("ROLLBACK")
    assert locked.result == "unavailable"
    assert engine.gauges.store_ok is False
    await _through_pipeline(engine)
    assert (await engine.sku_status("a")).remaining == 4
    assert (await engine.purchase("a", "u1")).result == "reserved"
    assert engine.gauges.store_ok is True
    assert [o.user for o in read_orders(db_path)] == ["u0", "u1"]


async def test_order_lookup(make_config: MakeConfig, start_engine: StartEngine, flaky_store: FlakyStore) -> None:
    """order() finds stored orders, raises UnknownOrder for others and Unavailable when the store cannot read."""
    engine = await start_engine(make_config(SkuConfig("a", 5)), store=flaky_store)
    outcome = await engine.purchase("a", "u1")
    assert (await engine.order(outcome.order_id or "", user="u1")).order_id == outcome.order_id
    with pytest.raises(UnknownOrder) as unknown:
        await engine.order("a-999", user="u1")
    assert unknown.value.order_id == "a-999"
    flaky_store.failing_get = True
    with pytest.raises(Unavailable, match="cannot read"):
        await engine.order(outcome.order_id or "", user="u1")


async def test_stop_commits_async_orders(make_config: MakeConfig, db_path: Path) -> None:
    """Stopping an async-durability engine writes every order it answered."""
    engine = SaleEngine(make_config(SkuConfig("a", 50), durability="async"))
    async with engine:
        outcomes = await asyncio.gather(*(engine.purchase("a", f"u{i}") for i in range(60)))
    reserved = {o.order_id for o in outcomes if o.result == "reserved"}
    assert len(reserved) == 50
    assert {o.order_id for o in read_orders(db_path)} == reserved


async def test_lookup_queued_behind_a_reservation_does_not_delay_its_commit(
    make_config: MakeConfig, start_engine: StartEngine, flaky_store: FlakyStore, db_path: Path
) -> None:
    """A reservation is committed even when the next message in the writer's mailbox is an order lookup."""
    engine = await start_engine(make_config(SkuConfig("a", 5), PROBE, inventory_actors=1), store=flaky_store)
    gate = flaky_store.get_gate = threading.Event()
    first_lookup = asyncio.ensure_future(engine.order("a-100", user="u1"))
    await asyncio.to_thread(flaky_store.get_entered.wait, 30)  # the writer is busy in store.get
    purchase = asyncio.ensure_future(engine.purchase("a", "u1"))
    await _through_pipeline(engine)  # the reservation is now waiting in the writer's mailbox
    second_lookup = asyncio.ensure_future(engine.order("a-101", user="u1"))
    gate.set()
    with pytest.raises(UnknownOrder):
        await first_lookup
    with pytest.raises(UnknownOrder):
        await second_lookup
    outcome = await asyncio.wait_for(purchase, 10)  # a safety net: fails instead of hanging
    assert outcome.result == "reserved"
    assert [o.order_id for o in read_orders(db_path)] == [outcome.order_id]


async def test_lookup_fails_cleanly_when_the_store_breaks_its_contract(
    make_config: MakeConfig, start_engine: StartEngine, flaky_store: FlakyStore
) -> None:
    """A store whose get() raises something other than StoreError makes order() Unavailable, not hang."""
    engine = await start_engine(make_config(SkuConfig("a", 5)), store=flaky_store)
    flaky_store.broken_get = RuntimeError("adapter bug")
    with pytest.raises(Unavailable, match="adapter bug"):
        await asyncio.wait_for(engine.order("a-1", user="u1"), 10)  # a safety net: fails instead of hanging
    flaky_store.broken_get = None
    with pytest.raises(UnknownOrder):
        await engine.order("a-1", user="u1")
