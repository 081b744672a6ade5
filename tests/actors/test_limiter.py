"""The limiter: token buckets on message time, global and per user."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flashsale import ManualClock, SkuConfig
from flashsale.actors import BucketSpec, TokenBucket
from tests.conftest import T0, MakeConfig, StartEngine

SECOND = 1_000_000


# --- TokenBucket on its own ----------------------------------------------------


def test_bucket_starts_full() -> None:
    """A new bucket holds ``burst`` tokens at the time it is made."""
    bucket = TokenBucket(BucketSpec(rate=2.0, burst=5), T0)
    assert bucket.refill(T0) == 5.0
    assert bucket.is_full(T0)
    assert bucket.wait_seconds() == 0.0


def test_bucket_refills_at_rate_up_to_burst() -> None:
    """Tokens come back at ``rate`` per second of message time and stop at ``burst``."""
    bucket = TokenBucket(BucketSpec(rate=2.0, burst=5), T0)
    bucket.tokens = 0.0
    assert bucket.refill(T0 + SECOND // 2) == pytest.approx(1.0)
    assert bucket.refill(T0 + 2 * SECOND) == pytest.approx(4.0)
    assert not bucket.is_full(T0 + 2 * SECOND)
    assert bucket.refill(T0 + 60 * SECOND) == 5.0
    assert bucket.is_full(T0 + 60 * SECOND)


def test_bucket_ignores_time_going_backwards() -> None:
    """A message stamped earlier than the last one neither refills nor drains."""
    bucket = TokenBucket(BucketSpec(rate=1.0, burst=3), T0)
    bucket.tokens = 1.0
    bucket.refill(T0 + SECOND)
    assert bucket.refill(T0) == pytest.approx(2.0)
    assert bucket.last == T0 + SECOND


def test_bucket_wait_seconds_is_time_to_one_token() -> None:
    """``wait_seconds`` is how long until one whole token, at the bucket's rate."""
    bucket = TokenBucket(BucketSpec(rate=4.0, burst=2), T0)
    bucket.tokens = 0.0
    assert bucket.wait_seconds() == pytest.approx(0.25)
    bucket.refill(T0 + SECOND // 8)
    assert bucket.wait_seconds() == pytest.approx(0.125)


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0), (float("nan"), 1)])
def test_bucket_spec_rejects_nonsense(rate: float, burst: int) -> None:
    """A bucket needs a positive rate and a burst of at least one."""
    with pytest.raises(ValueError, match="rate > 0"):
        BucketSpec(rate=rate, burst=burst)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(min_value=0.01, max_value=1000.0),
    burst=st.integers(min_value=1, max_value=20),
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=5 * SECOND), st.booleans()),
        max_size=60,
    ),
)
def test_bucket_matches_reference_model(rate: float, burst: int, steps: list[tuple[int, bool]]) -> None:
    """TokenBucket agrees with a few lines of float math on any (dt, take) sequence."""
    bucket = TokenBucket(BucketSpec(rate=rate, burst=burst), T0)
    at, tokens = T0, float(burst)  # the model: refilled by dt * rate, capped at burst
    for dt, take in steps:
        at += dt
        tokens = min(float(burst), tokens + dt / SECOND * rate)
        got = bucket.refill(at)
        assert math.isclose(got, tokens, rel_tol=1e-9, abs_tol=1e-6)
        assert math.isclose(bucket.wait_seconds(), max(0.0, (1.0 - tokens) / rate), rel_tol=1e-6, abs_tol=1e-6)
        if abs(tokens - 1.0) < 1e-9 or abs(tokens - burst) < 1e-9:
            tokens = got  # too close to call between two float formulas: follow the bucket's rounding
        else:
            assert bucket.is_full(at) == (tokens >= burst)
        if take and tokens >= 1.0:
            tokens -= 1.0
            bucket.tokens -= 1.0


# --- the actor, through the engine ----------------------------------------------


async def test_per_user_bucket_limits_and_refills(
    make_config: MakeConfig, start_engine: StartEngine, clock: ManualClock
) -> None:
    """Per-user bucket: burst requests pass, then rate_limited with retry_after from message time."""
    engine = await start_engine(make_config(SkuConfig("a", 100), per_user=BucketSpec(rate=2.0, burst=2)))
    assert [(await engine.purchase("a", "u1")).result for _ in range(2)] == ["reserved", "reserved"]
    limited = await engine.purchase("a", "u1")
    assert limited.result == "rate_limited"
    assert limited.retry_after == pytest.approx(0.5)
    assert "this user" in limited.detail
    assert (await engine.purchase("a", "u2")).result == "reserved"  # other users have their own bucket
    clock.advance(0.25)
    again = await engine.purchase("a", "u1")
    assert again.result == "rate_limited"
    assert again.retry_after == pytest.approx(0.25)
    clock.advance(0.25)
    assert (await engine.purchase("a", "u1")).result == "reserved"
    assert (await engine.purchase("a", "u1")).result == "rate_limited"


async def test_global_bucket_limits_everyone(
    make_config: MakeConfig, start_engine: StartEngine, clock: ManualClock
) -> None:
    """The global bucket admits ``burst`` requests from anyone, then ``rate`` per second."""
    engine = await start_engine(make_config(SkuConfig("a", 100), global_bucket=BucketSpec(rate=10.0, burst=3)))
    results = [(await engine.purchase("a", f"u{i}")).result for i in range(4)]
    assert results == ["reserved", "reserved", "reserved", "rate_limited"]
    limited = await engine.purchase("a", "u9")
    assert limited.retry_after == pytest.approx(0.1)
    assert "too many requests" in limited.detail
    clock.advance(0.1)
    assert (await engine.purchase("a", "u9")).result == "reserved"
    assert (await engine.purchase("a", "u10")).result == "rate_limited"


async def test_rejected_request_takes_no_token(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """A request refused by its user's bucket leaves the global bucket's tokens alone."""
    engine = await start_engine(
        make_config(
            SkuConfig("a", 100), global_bucket=BucketSpec(rate=1.0, burst=2), per_user=BucketSpec(rate=1.0, burst=1)
        )
    )
    assert (await engine.purchase("a", "u1")).result == "reserved"
    assert (await engine.purchase("a", "u1")).result == "rate_limited"
    assert (await engine.purchase("a", "u1")).result == "rate_limited"
    assert (await engine.purchase("a", "u2")).result == "reserved"  # the global token u1 was refused is still there
    assert (await engine.purchase("a", "u3")).result == "rate_limited"


async def test_limiter_decides_a_burst_in_arrival_order(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """Purchases of one loop tick go through the buckets in the order they arrived."""
    engine = await start_engine(make_config(SkuConfig("a", 100), global_bucket=BucketSpec(rate=1.0, burst=5)))
    outcomes = await asyncio.gather(*(engine.purchase("a", f"u{i}") for i in range(8)))
    assert [o.result for o in outcomes] == ["reserved"] * 5 + ["rate_limited"] * 3


async def test_user_table_full_of_refilling_buckets_is_overloaded(
    make_config: MakeConfig, start_engine: StartEngine, clock: ManualClock
) -> None:
    """A new user is answered overloaded while every tracked bucket is still refilling."""
    engine = await start_engine(
        make_config(SkuConfig("a", 100), per_user=BucketSpec(rate=1.0, burst=1), max_tracked_users=2)
    )
    assert (await engine.purchase("a", "u1")).result == "reserved"
    assert (await engine.purchase("a", "u2")).result == "reserved"
    full = await engine.purchase("a", "u3")
    assert full.result == "overloaded"
    assert "rate limited" in full.detail
    assert (await engine.purchase("a", "u1")).result == "rate_limited"  # known users still get their own answer


async def test_user_table_forgets_refilled_buckets(
    make_config: MakeConfig, start_engine: StartEngine, clock: ManualClock
) -> None:
    """A bucket that refilled to burst is forgotten to make room, and nobody's limit leaks."""
    engine = await start_engine(
        make_config(SkuConfig("a", 100), per_user=BucketSpec(rate=1.0, burst=1), max_tracked_users=2)
    )
    assert (await engine.purchase("a", "u1")).result == "reserved"
    clock.advance(0.5)
    assert (await engine.purchase("a", "u2")).result == "reserved"
    clock.advance(0.5)  # u1 is full again at T0+1s; u2 is not
    assert (await engine.purchase("a", "u3")).result == "reserved"
    assert (await engine.purchase("a", "u2")).result == "rate_limited"  # u2 was kept, still empty
    assert (await engine.purchase("a", "u3")).result == "rate_limited"
    assert (await engine.purchase("a", "u4")).result == "overloaded"  # u2 and u3 still refilling
    clock.advance(1.0)
    assert (await engine.purchase("a", "u1")).result == "reserved"  # u1 was forgotten: a fresh, full bucket


async def test_user_table_forgets_any_refilled_bucket(
    make_config: MakeConfig, start_engine: StartEngine, clock: ManualClock
) -> None:
    """A full table with some refilled bucket admits a new user, even if it is not the oldest."""
    engine = await start_engine(
        make_config(SkuConfig("a", 100), per_user=BucketSpec(rate=1.0, burst=2), max_tracked_users=2)
    )
    assert (await engine.purchase("a", "u1")).result == "reserved"
    assert (await engine.purchase("a", "u1")).result == "reserved"  # u1 empty: full again at T0+2s
    clock.advance(0.1)
    assert (await engine.purchase("a", "u2")).result == "reserved"  # u2 has 1 left: full again at T0+1.1s
    clock.advance(1.4)  # u2 refilled, u1 not
    assert (await engine.purchase("a", "u3")).result == "reserved"
