"""SyncSaleEngine: the blocking face of the engine, safe to call from many threads."""

from __future__ import annotations

import gc
import threading
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from flashsale import Config, ManualClock, SkuConfig, StoreConfig, SyncSaleEngine, TickReport, Unavailable, UnknownOrder
from tests.conftest import MakeConfig, read_orders


def test_blocking_calls(make_config: MakeConfig, clock: ManualClock, db_path: Path) -> None:
    """purchase, sku_status, order and restock block until answered, on the given clock."""
    with SyncSaleEngine(make_config(SkuConfig("a", 2)), clock=clock) as engine:
        outcome = engine.purchase("a", "u1", 2, idempotency_key="k", client_ip="10.0.0.1")
        assert outcome.result == "reserved"
        assert engine.purchase("a", "u1", 2, idempotency_key="k") == outcome
        assert engine.purchase("a", "u2").result == "sold_out"
        order = engine.order(outcome.order_id or "", user="u1")
        assert (order.user, order.qty, order.created_at) == ("u1", 2, clock.now)
        with pytest.raises(UnknownOrder):
            engine.order("a-99", user="u1")
        assert engine.restock("a", 1).remaining == 1
        assert engine.sku_status("a").state == "on_sale"
        engine.flush()
        assert read_orders(db_path) == [order]
        assert engine.tick() == TickReport(expired=0, released=0, queued=0)
        clock.advance(engine.engine.config.skus[0].payment_timeout)
        assert engine.tick() == TickReport(expired=1, released=0, queued=0)
        assert engine.sku_status("a").remaining == 3


def test_many_threads_sell_exactly_the_stock(make_config: MakeConfig, db_path: Path) -> None:
    """Purchases from 8 threads at once sell exactly the stock, within each buyer's limit."""
    with (
        SyncSaleEngine(make_config(SkuConfig("a", 100, per_user_limit=2))) as engine,
        ThreadPoolExecutor(max_workers=8) as pool,
    ):
        outcomes = list(pool.map(lambda i: engine.purchase("a", f"u{i % 80}"), range(400)))
        status = engine.sku_status("a")
    assert Counter(o.result for o in outcomes)["reserved"] == 100
    assert (status.remaining, status.reserved) == (0, 100)
    per_user = Counter(o.user for o in read_orders(db_path))
    assert sum(per_user.values()) == 100
    assert max(per_user.values()) <= 2


def test_stop_is_idempotent_and_stops_every_thread(make_config: MakeConfig) -> None:
    """stop() twice is fine; afterwards no thread the engine started is left running."""
    before = threading.active_count()
    engine = SyncSaleEngine(make_config(SkuConfig("a", 1)))
    engine.start()
    assert threading.active_count() > before
    engine.stop()
    engine.stop()
    assert threading.active_count() == before


def test_never_started_engine_leaves_nothing_behind(make_config: MakeConfig) -> None:
    """An engine made but never started can be stopped, and leaves no unclosed loop to warn about."""
    engine = SyncSaleEngine(make_config(SkuConfig("a", 1)))
    engine.stop()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del engine
        gc.collect()
    assert [str(w.message) for w in caught] == []


def test_failed_start_leaves_no_thread(tmp_path: Path) -> None:
    """When the store cannot be opened, start() raises Unavailable and stops its loop thread."""
    before = threading.active_count()
    config = Config(skus=(SkuConfig("a", 1),), store=StoreConfig(path=str(tmp_path)))  # a folder, not a file
    with pytest.raises(Unavailable), SyncSaleEngine(config):
        pass
    assert threading.active_count() == before
