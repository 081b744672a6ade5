"""The limiter's scopes and leaky queue mode, through the engine on virtual time, against exact models."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from flashsale import Config, LimitsConfig, ManualClock, Outcome, SaleEngine, SkuConfig, StoreConfig, TickReport
from flashsale.actors import BucketSpec
from tests.actors.bucket_models import LeakyModel, TokenModel
from tests.conftest import T0, MakeConfig, StartEngine
from tests.ids import plain

SECOND = 1_000_000
SCOPES = ("global", "per_sku", "per_user", "per_ip")


def _config(db: Path, **limits: BucketSpec | None) -> Config:
    return Config(
        skus=(SkuConfig("a", 10**6), SkuConfig("b", 10**6)),
        store=StoreConfig(path=str(db)),
        limits=LimitsConfig(
            global_bucket=limits.get("global"),
            per_sku=limits.get("per_sku"),
            per_user=limits.get("per_user"),
            per_ip=limits.get("per_ip"),
            max_inflight=10**5,
        ),
        tick_interval=0,
    )


def _run(config: Config, clock: ManualClock, body: Callable[[SaleEngine], Awaitable[None]]) -> None:
    """Run ``body`` against a started engine on a fresh loop; always stop it."""

    async def main() -> None:
        engine = SaleEngine(config, clock=clock)
        await engine.start()
        try:
            await body(engine)
        finally:
            await engine.stop()

    asyncio.run(main())


# --- several scopes at once -----------------------------------------------------

buckets = st.builds(
    BucketSpec,
    rate=st.sampled_from([0.5, 1.0, 3.0, 10.0, 250.0]),
    burst=st.integers(min_value=1, max_value=3),
    algorithm=st.sampled_from(["token", "leaky"]),
)
specs = st.one_of(st.none(), buckets, buckets, buckets)  # mostly in force: several scopes at once
requests = st.lists(
    st.tuples(
        st.sampled_from([0, 0, 1, 1000, 99_999, 100_000, 333_333, SECOND]),
        st.sampled_from(["u0", "u1"]),
        st.sampled_from(["a", "b"]),
        st.sampled_from([None, "10.0.0.1", "2001:db8::1"]),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(g=specs, s=specs, u=specs, i=specs, reqs=requests)
def test_scopes_take_from_all_or_none(
    g: BucketSpec | None,
    s: BucketSpec | None,
    u: BucketSpec | None,
    i: BucketSpec | None,
    reqs: list[tuple[int, str, str, str | None]],
) -> None:
    """Every purchase passes all scopes in force (and takes from each) or none; Retry-After is the slowest refusal."""
    assume(any(spec is not None for spec in (g, s, u, i)))
    in_force = {name: spec for name, spec in zip(SCOPES, (g, s, u, i), strict=True) if spec is not None}
    clock = ManualClock(T0)
    models: dict[tuple[str, str], TokenModel | LeakyModel] = {}

    async def body(engine: SaleEngine) -> None:
        for dt, user, sku, ip in reqs:
            clock.set(clock.now + dt)
            at = clock.now
            keys = {"global": "", "per_sku": sku, "per_user": user, "per_ip": ip}
            involved = []
            for name, spec in in_force.items():
                key = keys[name]
                if key is None:
                    continue  # no address: the per-IP scope is skipped, not shared
                model = models.get((name, key))
                if model is None:
                    kind = TokenModel if spec.algorithm == "token" else LeakyModel
                    model = models[name, key] = kind(spec.rate, spec.burst, at)
                involved.append((model, model.wait(at)))
            # A hair's breadth from one token, float arithmetic may rightly decide either way.
            close = any(m.close_call() for m, _ in involved)
            outcome = await engine.purchase(sku, user, client_ip=ip)
            slowest = max((w for _, w in involved), default=0)
            if outcome.result == "reserved":
                assert slowest == 0 or (close and slowest < 1)
                for m, _ in involved:  # taken from every scope
                    m.take(at)
            else:
                assert outcome.result == "rate_limited"
                assert slowest > 0 or close  # and nothing taken from any scope
                assert outcome.retry_after is not None
                assert abs(round(outcome.retry_after * SECOND) - math.ceil(slowest)) <= 1

    with tempfile.TemporaryDirectory() as tmp:
        _run(_config(Path(tmp) / "orders.db", **in_force), clock, body)


async def test_no_address_skips_the_per_ip_scope(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """Callers that pass no client IP are not lumped into one per-IP bucket; each address has its own."""
    engine = await start_engine(make_config(SkuConfig("a", 100), per_ip=BucketSpec(rate=1.0, burst=1)))
    assert [(await engine.purchase("a", f"u{n}")).result for n in range(5)] == ["reserved"] * 5
    assert (await engine.purchase("a", "u1", client_ip="192.0.2.1")).result == "reserved"
    limited = await engine.purchase("a", "u2", client_ip="192.0.2.1")
    assert (limited.result, limited.retry_after, limited.detail) == (
        "rate_limited",
        1.0,
        "too many requests from this address",
    )
    assert (await engine.purchase("a", "u3", client_ip="192.0.2.2")).result == "reserved"


async def test_per_sku_scope_limits_each_sku(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """A per-SKU bucket limits each SKU on its own."""
    engine = await start_engine(
        make_config(SkuConfig("a", 100), SkuConfig("b", 100), per_sku=BucketSpec(rate=2.0, burst=2))
    )
    assert [(await engine.purchase("a", f"u{n}")).result for n in range(3)] == ["reserved", "reserved", "rate_limited"]
    limited = await engine.purchase("a", "u9")
    assert (limited.retry_after, limited.detail) == (0.5, "this sku is taking too many requests")
    assert (await engine.purchase("b", "u9")).result == "reserved"


# --- leaky bucket in queue mode -----------------------------------------------------

queue_steps = st.lists(
    st.tuples(st.sampled_from([0, 1, 99_999, 100_000, 150_000, 400_000, 2 * SECOND]), st.integers(0, 4)),
    min_size=1,
    max_size=15,
)


@settings(max_examples=40, deadline=None)
@given(
    rate=st.sampled_from([3.0, 10.0, 40.0]),
    burst=st.integers(min_value=1, max_value=3),
    queue=st.integers(min_value=1, max_value=4),
    steps=queue_steps,
)
def test_queue_mode_matches_model(rate: float, burst: int, queue: int, steps: list[tuple[int, int]]) -> None:
    """Queued purchases are released exactly at the model's times; a full queue is overloaded at once; none is lost."""
    spec = BucketSpec(rate, burst, "leaky", queue=queue)
    clock = ManualClock(T0)
    model = LeakyModel(rate, burst, T0, queue)

    async def body(engine: SaleEngine) -> None:
        waiting: list[tuple[int, asyncio.Task[Outcome]]] = []  # (release time, purchase), in release order
        n = 0
        for dt, arrivals in steps:
            clock.set(clock.now + dt)
            now = clock.now
            report = await engine.tick()
            assert report.released == model.released_by(now)
            assert report.queued == len(model.releases)
            due = [t for r, t in waiting if r <= now]
            waiting = [(r, t) for r, t in waiting if r > now]
            assert [(await t).result for t in due] == ["reserved"] * len(due)
            assert not any(t.done() for _, t in waiting)
            tasks, expected = [], []
            for _ in range(arrivals):
                n += 1
                tasks.append(asyncio.create_task(engine.purchase("a", f"u{n}")))
                wait = model.wait(now)
                if wait and len(model.releases) >= queue:
                    expected.append("overloaded")
                    continue
                model.take(now)
                expected.append("queued" if wait else "reserved")
                if wait:
                    waiting.append((now + wait, tasks[-1]))
            # A tick task runs after the purchase tasks have been submitted (the loop runs tasks in order).
            report = await asyncio.create_task(engine.tick())
            assert (report.released, report.queued) == (0, len(model.releases))
            for task, want in zip(tasks, expected, strict=True):
                if want != "queued":
                    assert (await task).result == want
            assert not any(t.done() for _, t in waiting)
        clock.set(clock.now + 10 * SECOND)
        report = await engine.tick()
        assert (report.released, report.queued) == (len(waiting), 0)
        assert [(await t).result for _, t in waiting] == ["reserved"] * len(waiting)

    with tempfile.TemporaryDirectory() as tmp:
        _run(_config(Path(tmp) / "orders.db", per_sku=spec), clock, body)


async def test_queue_releases_at_exactly_the_rate(
    make_config: MakeConfig, start_engine: StartEngine, clock: ManualClock
) -> None:
    """Rate 10/s, burst 2, queue 3: two pass, three wait 100 ms apart to the microsecond, the rest get 503 at once."""
    config = make_config(SkuConfig("a", 100), per_sku=BucketSpec(rate=10.0, burst=2, algorithm="leaky", queue=3))
    engine = await start_engine(dataclasses.replace(config, tick_interval=0))
    tasks = [asyncio.create_task(engine.purchase("a", f"u{n}")) for n in range(7)]
    assert await asyncio.create_task(engine.tick()) == TickReport(0, 0, 3)
    assert [(await t).result for t in (tasks[0], tasks[1], tasks[5], tasks[6])] == ["reserved", "reserved"] + [
        "overloaded"
    ] * 2
    assert "waiting their turn" in tasks[5].result().detail
    for n, release in enumerate([100_000, 200_000, 300_000]):
        clock.set(T0 + release - 1)
        assert await engine.tick() == TickReport(0, 0, 3 - n)
        assert not tasks[2 + n].done()
        clock.set(T0 + release)
        assert await engine.tick() == TickReport(0, 1, 2 - n)
        outcome = await tasks[2 + n]
        assert outcome.result == "reserved"
        assert plain(outcome.order_id) == f"a-{3 + n}"  # released in arrival order
    # The queue has room again once it drained; the bucket is back at rest 100 ms after the last release.
    clock.set(T0 + 500_000)
    assert [(await engine.purchase("a", f"v{n}")).result for n in range(2)] == ["reserved", "reserved"]


async def test_refusing_leaky_bucket_says_when_to_retry(
    make_config: MakeConfig, start_engine: StartEngine, clock: ManualClock
) -> None:
    """Leaky with queue = 0: what would have to wait is refused with the exact time until it would pass."""
    engine = await start_engine(make_config(SkuConfig("a", 100), global_bucket=BucketSpec(4.0, 1, "leaky")))
    assert (await engine.purchase("a", "u1")).result == "reserved"
    clock.set(T0 + 100_000)
    limited = await engine.purchase("a", "u2")
    assert (limited.result, limited.retry_after) == ("rate_limited", 0.15)
    clock.set(T0 + 250_000)
    assert (await engine.purchase("a", "u2")).result == "reserved"


async def test_stop_answers_queued_purchases(make_config: MakeConfig, clock: ManualClock) -> None:
    """Stopping the engine answers every purchase still waiting in a queue (unavailable): none is left hanging."""
    config = make_config(SkuConfig("a", 100), per_sku=BucketSpec(rate=1.0, burst=1, algorithm="leaky", queue=5))
    engine = SaleEngine(dataclasses.replace(config, tick_interval=0), clock=clock)
    await engine.start()
    tasks = [asyncio.create_task(engine.purchase("a", f"u{n}")) for n in range(4)]
    assert (await asyncio.create_task(engine.tick())).queued == 3
    await engine.stop()
    outcomes = [await t for t in tasks]
    assert [o.result for o in outcomes] == ["reserved"] + ["unavailable"] * 3
    assert outcomes[1].detail == "the sale stopped before this purchase's turn"
    assert engine.inflight == 0


async def test_queue_is_released_in_real_time_without_tick_calls(make_config: MakeConfig, db_path: Path) -> None:
    """On the wall clock, queued purchases are released at the rate without anyone calling tick()."""
    config = make_config(SkuConfig("a", 100), per_sku=BucketSpec(rate=200.0, burst=1, algorithm="leaky", queue=10))
    async with SaleEngine(dataclasses.replace(config, tick_interval=3600)) as engine:  # the periodic ticker never runs
        outcomes = await asyncio.wait_for(asyncio.gather(*(engine.purchase("a", f"u{n}") for n in range(6))), 10)
    assert [o.result for o in outcomes] == ["reserved"] * 6
    assert sorted(plain(o.order_id) for o in outcomes) == [f"a-{n}" for n in range(1, 7)]


async def test_tick_without_a_limiter_reports_only_expiries(make_config: MakeConfig, clock: ManualClock) -> None:
    """With no bucket configured, tick() expires reservations and reports nothing queued."""
    config = dataclasses.replace(make_config(SkuConfig("a", 10, payment_timeout=1)), tick_interval=0)
    async with SaleEngine(config, clock=clock) as engine:
        assert (await engine.purchase("a", "u1")).result == "reserved"
        clock.advance(1)
        assert await engine.tick() == TickReport(1, 0, 0)


async def test_full_table_of_leaky_buckets_frees_only_rested_ones(
    make_config: MakeConfig, start_engine: StartEngine, clock: ManualClock
) -> None:
    """A full per-user table makes room only from buckets at rest; a buyer with a purchase queued keeps theirs."""
    config = make_config(
        SkuConfig("a", 100), per_user=BucketSpec(rate=10.0, burst=1, algorithm="leaky", queue=2), max_tracked_users=2
    )
    engine = await start_engine(dataclasses.replace(config, tick_interval=0))
    tasks = [asyncio.create_task(engine.purchase("a", user)) for user in ("u1", "u1", "u2")]
    assert (await asyncio.create_task(engine.tick())).queued == 1
    assert [(await t).result for t in (tasks[0], tasks[2])] == ["reserved", "reserved"]
    assert (await engine.purchase("a", "u3")).result == "overloaded"  # u1 has one queued, u2 is draining
    clock.set(T0 + 100_000)  # u2 is at rest; u1 has just had its queued purchase released
    assert (await engine.purchase("a", "u3")).result == "reserved"  # u2's bucket made room
    assert (await tasks[1]).result == "reserved"
    assert (await engine.purchase("a", "u4")).result == "overloaded"  # u1 and u3 are both still draining
    clock.set(T0 + 200_000)
    assert (await engine.purchase("a", "u4")).result == "reserved"
