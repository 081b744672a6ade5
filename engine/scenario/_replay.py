"""Replay: a scenario through a fresh engine on virtual time; :mod:`._replay_driver` feeds it the traffic."""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Literal

from flashsale._clock import ManualClock
from flashsale._engine import SaleEngine
from flashsale.actors import OrderIds
from flashsale.stores._memory import MemoryOrderStore

from ._format import Scenario
from ._replay_driver import _Driver
from ._result import ReplayResult


def _engine_for(
    scenario: Scenario, clock: ManualClock, backend: Literal["memory", "redis"], redis_url: str | None
) -> SaleEngine:
    if backend == "memory":
        config = dataclasses.replace(scenario.config, backend="memory")
        return SaleEngine(
            config,
            store=MemoryOrderStore(),
            clock=clock,
            order_ids=scenario_order_ids(scenario),
            room_seed=scenario.room_seed,
        )
    from flashsale.redis import RedisBackend  # noqa: PLC0415 - only this backend needs redis

    redis = dataclasses.replace(
        scenario.config.redis, url=redis_url or scenario.config.redis.url, prefix=f"replay-{uuid.uuid4().hex}"
    )
    config = dataclasses.replace(scenario.config, backend="redis", redis=redis)
    return SaleEngine(
        config,
        clock=clock,
        backend=RedisBackend(sink=False, scratch=True),
        order_ids=scenario_order_ids(scenario),
        room_seed=scenario.room_seed,
    )


def scenario_order_ids(scenario: Scenario) -> OrderIds:
    """The order ids of a replay of ``scenario``, keyed by its seed (its name and its crowds' seeds): deterministic."""
    seeds = ",".join(str(crowd.seed) for crowd in scenario.generators)
    return OrderIds.from_seed(f"{scenario.name}/{seeds}")


async def replay(
    scenario: Scenario,
    *,
    keep_log: bool = False,
    backend: Literal["memory", "redis"] = "memory",
    redis_url: str | None = None,
) -> ReplayResult:
    """Run ``scenario`` through a fresh :class:`SaleEngine` on virtual time.

    The engine gets a :class:`ManualClock` at the scenario's start and, by
    default, the memory backend with its own in-memory store, whatever
    backend the scenario's config names. ``backend="redis"`` decides on the
    Redis at ``redis_url`` instead (default: the config's ``[redis] url``),
    under a fresh key prefix that is deleted afterwards; it needs no
    PostgreSQL: orders stay in Redis, where lookups, pay and cancel read
    them, and no order sink runs. Both backends give the same decisions and
    the same digest. ``keep_log`` keeps every decision (as in the digest)
    in :attr:`ReplayResult.log`.
    """
    events = scenario.traffic()
    clock = ManualClock(scenario.start)
    engine = _engine_for(scenario, clock, backend, redis_url)
    await engine.start()
    try:
        driver = _Driver(scenario, engine, clock, keep_log)
        began = time.perf_counter()
        await driver.run(events)
        wall = time.perf_counter() - began
        return driver.result(wall)
    finally:
        await engine.stop()
