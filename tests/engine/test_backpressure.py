"""A store that cannot keep up: fast 503s instead of a pile-up, and not ready until it drains."""

from __future__ import annotations

import asyncio
import threading

from flashsale import SkuConfig
from tests.conftest import FlakyStore, MakeConfig, StartEngine


async def test_slow_store_means_fast_overloaded_and_not_ready(
    make_config: MakeConfig, start_engine: StartEngine, flaky_store: FlakyStore
) -> None:
    """With commits held, purchases past max_inflight are refused at once, readiness fails, then recovers."""
    engine = await start_engine(make_config(SkuConfig("a", 100), max_inflight=5), store=flaky_store)
    flaky_store.write_gate = threading.Event()
    flaky_store.write_entered.clear()
    waiting = [asyncio.ensure_future(engine.purchase("a", f"u{i}")) for i in range(5)]
    assert await asyncio.to_thread(flaky_store.write_entered.wait, 10)  # the writer is stuck in a commit
    refused = await asyncio.wait_for(engine.purchase("a", "late"), 1)  # answered without waiting on the store
    assert refused.result == "overloaded"
    assert engine.readiness()["below_inflight_limit"] is False
    assert not any(task.done() for task in waiting)
    flaky_store.write_gate.set()
    assert [o.result for o in await asyncio.gather(*waiting)] == ["reserved"] * 5
    assert all(engine.readiness().values())
    assert (await engine.purchase("a", "late")).result == "reserved"
