"""Recovery: a new engine on the same SQLite file continues the sale exactly where the last one stopped."""

from __future__ import annotations

from pathlib import Path

from flashsale import Config, ManualClock, SaleEngine, SkuConfig
from tests.conftest import MakeConfig, StartEngine, read_orders
from tests.ids import plain


async def _run(config: Config, clock: ManualClock) -> SaleEngine:
    engine = SaleEngine(config, clock=clock)
    await engine.start()
    return engine


async def test_stock_and_restocks_survive_restart(make_config: MakeConfig, clock: ManualClock) -> None:
    """Remaining, reserved and restocked units are the same after a restart."""
    config = make_config(SkuConfig("a", 10), SkuConfig("b", 0))
    engine = await _run(config, clock)
    for i in range(4):
        await engine.purchase("a", f"u{i}")
    await engine.restock("a", 3)
    await engine.restock("b", 2)
    await engine.restock("b", 1)
    before = {sku: await engine.sku_status(sku) for sku in ("a", "b")}
    await engine.stop()

    engine = await _run(config, clock)
    try:
        after = {sku: await engine.sku_status(sku) for sku in ("a", "b")}
        assert after == before
        assert (after["a"].stock, after["a"].remaining, after["a"].reserved) == (13, 9, 4)
        assert (after["b"].stock, after["b"].remaining) == (3, 3)
    finally:
        await engine.stop()


async def test_user_at_limit_stays_at_limit(make_config: MakeConfig, clock: ManualClock) -> None:
    """Per-user totals are rebuilt from the orders: a buyer at the limit is still at it."""
    config = make_config(SkuConfig("a", 10, per_user_limit=2))
    engine = await _run(config, clock)
    assert (await engine.purchase("a", "u1", 2)).result == "reserved"
    assert (await engine.purchase("a", "u2", 1)).result == "reserved"
    await engine.stop()

    engine = await _run(config, clock)
    try:
        full = await engine.purchase("a", "u1")
        assert (full.result, full.detail) == ("limit_reached", "at most 2 per buyer; this buyer already holds 2")
        assert (await engine.purchase("a", "u2", 2)).result == "limit_reached"
        assert (await engine.purchase("a", "u2", 1)).result == "reserved"
        assert (await engine.purchase("a", "u3", 2)).result == "reserved"
    finally:
        await engine.stop()


async def test_idempotency_key_replays_after_restart(make_config: MakeConfig, clock: ManualClock) -> None:
    """The same user and key get the same order after a restart; another body is still reused."""
    config = make_config(SkuConfig("a", 10))
    engine = await _run(config, clock)
    first = await engine.purchase("a", "u1", 2, idempotency_key="k1")
    await engine.stop()

    clock.advance(60)
    engine = await _run(config, clock)
    try:
        assert await engine.purchase("a", "u1", 2, idempotency_key="k1") == first
        assert (await engine.purchase("a", "u1", 1, idempotency_key="k1")).result == "idempotency_key_reused"
        assert (await engine.purchase("a", "u2", 2, idempotency_key="k1")).result == "reserved"
        assert (await engine.sku_status("a")).reserved == 4
    finally:
        await engine.stop()


async def test_recovered_keys_expire_from_their_first_use(make_config: MakeConfig, clock: ManualClock) -> None:
    """A recovered key is replayed until idempotency_ttl after the original purchase, not after the restart."""
    config = make_config(SkuConfig("a", 10), idempotency_ttl=100.0)
    engine = await _run(config, clock)
    first = await engine.purchase("a", "u1", idempotency_key="k1")
    await engine.stop()

    clock.advance(99)
    engine = await _run(config, clock)
    try:
        assert await engine.purchase("a", "u1", idempotency_key="k1") == first
        clock.advance(1)
        again = await engine.purchase("a", "u1", idempotency_key="k1")
        assert again.result == "reserved"
        assert again.order_id != first.order_id
    finally:
        await engine.stop()


async def test_order_ids_continue(make_config: MakeConfig, clock: ManualClock, db_path: Path) -> None:
    """Order numbers continue per SKU after a restart (ids with hyphens too): never a duplicate id."""
    config = make_config(SkuConfig("moutai-53", 10), SkuConfig("b", 10))
    for round_ in range(3):
        engine = await _run(config, clock)
        for i in range(3):
            await engine.purchase("moutai-53", f"r{round_}u{i}")
        await engine.purchase("b", f"r{round_}")
        await engine.stop()
    ids = [plain(o.order_id) for o in read_orders(db_path)]
    assert len(ids) == len(set(ids)) == 12
    assert sorted(i for i in ids if i.startswith("moutai-53-")) == sorted(f"moutai-53-{n}" for n in range(1, 10))
    assert sorted(i for i in ids if i.startswith("b-")) == ["b-1", "b-2", "b-3"]


async def test_orders_readable_after_restart(make_config: MakeConfig, clock: ManualClock) -> None:
    """order() finds an order made before the restart, unchanged."""
    config = make_config(SkuConfig("a", 10))
    engine = await _run(config, clock)
    outcome = await engine.purchase("a", "u1", 3, request_id="req-9")
    order = await engine.order(outcome.order_id or "", user="u1")
    await engine.stop()
    engine = await _run(config, clock)
    try:
        assert await engine.order(outcome.order_id or "", user="u1") == order
    finally:
        await engine.stop()


async def test_async_durability_orders_survive_clean_restart(make_config: MakeConfig, clock: ManualClock) -> None:
    """With durability=async a clean stop writes everything: the next engine sees every answered order."""
    config = make_config(SkuConfig("a", 20, per_user_limit=1), durability="async")
    engine = await _run(config, clock)
    answered = [await engine.purchase("a", f"u{i}", idempotency_key="k") for i in range(5)]
    await engine.stop()
    engine = await _run(config, clock)
    try:
        assert (await engine.sku_status("a")).reserved == 5
        assert [await engine.purchase("a", f"u{i}", idempotency_key="k") for i in range(5)] == answered
        assert (await engine.purchase("a", "u0", idempotency_key="k2")).result == "limit_reached"
    finally:
        await engine.stop()


async def test_config_change_between_runs(make_config: MakeConfig, clock: ManualClock) -> None:
    """A SKU dropped from the config is ignored on recovery; a raised stock counts the old orders."""
    engine = await _run(make_config(SkuConfig("a", 2), SkuConfig("old", 5)), clock)
    await engine.purchase("a", "u1", 2)
    await engine.purchase("old", "u1")
    await engine.stop()
    engine = await _run(make_config(SkuConfig("a", 5)), clock)
    try:
        status = await engine.sku_status("a")
        assert (status.stock, status.remaining, status.reserved) == (5, 3, 2)
        assert plain((await engine.purchase("a", "u2")).order_id) == "a-2"
    finally:
        await engine.stop()


async def test_key_used_again_after_ttl_replays_the_newest_order(make_config: MakeConfig, clock: ManualClock) -> None:
    """A key reused after its TTL replays its newest order after a restart, not the expired one."""
    config = make_config(SkuConfig("a", 20), idempotency_ttl=10.0)
    engine = await _run(config, clock)
    for i in range(8):
        await engine.purchase("a", f"filler{i}")  # so the key's orders are a-9, then a-10: "a-10" sorts first
    old = await engine.purchase("a", "u1", idempotency_key="k")
    clock.advance(10)
    new = await engine.purchase("a", "u1", idempotency_key="k")
    assert (plain(old.order_id), plain(new.order_id)) == ("a-9", "a-10")
    await engine.stop()

    clock.advance(5)
    engine = await _run(config, clock)
    try:
        assert await engine.purchase("a", "u1", idempotency_key="k") == new
        assert (await engine.sku_status("a")).reserved == 10
    finally:
        await engine.stop()


async def test_async_restart_never_reissues_order_numbers(
    make_config: MakeConfig, start_engine: StartEngine, db_path: Path
) -> None:
    """After an async-mode run, order numbers resume past every id it could have handed out unwritten."""
    config = make_config(
        SkuConfig("a", 100), SkuConfig("b", 100), durability="async", max_inflight=10, max_writer_backlog=20
    )
    engine = await start_engine(config)
    first = await engine.purchase("a", "u1")
    await engine.stop()
    again = await start_engine(config)  # "b" stored nothing in the first run: it still skips 30
    # a-2 .. a-31 may have been handed out unstored before a crash: numbering resumes at a-32
    assert (plain((await again.purchase("a", "u2")).order_id), plain(first.order_id)) == ("a-32", "a-1")
    await again.stop()
    commit = await start_engine(make_config(SkuConfig("a", 100), SkuConfig("b", 100)))
    assert plain((await commit.purchase("a", "u3")).order_id) == "a-63"  # past the second async run's 30 too
    assert plain((await commit.purchase("b", "u3")).order_id) == "b-61"  # nothing stored for "b", still skipped
    await commit.stop()
    last = await start_engine(make_config(SkuConfig("a", 100)))
    assert plain((await last.purchase("a", "u4")).order_id) == "a-64"  # a commit-mode run leaves no gap
