"""Token and leaky buckets against exact reference models, on virtual time."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flashsale.actors import BucketSpec, LeakyBucket, TokenBucket
from tests.actors.bucket_models import LeakyModel, TokenModel
from tests.conftest import T0

SECOND = 1_000_000

rates = st.sampled_from([0.3, 1.0, 2.0, 3.0, 7.5, 10.0, 333.0, 1000.0, 4096.0]) | st.floats(0.05, 5000.0)
bursts = st.integers(min_value=1, max_value=8)
steps = st.lists(
    st.tuples(st.integers(min_value=0, max_value=3 * SECOND) | st.sampled_from([0, 1, 999, 1000]), st.booleans()),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(rate=rates, burst=bursts, steps=steps)
def test_token_bucket_matches_exact_model(rate: float, burst: int, steps: list[tuple[int, bool]]) -> None:
    """Admit-or-wait and the wait itself agree with exact fractions (to the microsecond) at every step."""
    bucket, model = TokenBucket(BucketSpec(rate, burst), T0), TokenModel(rate, burst, T0)
    at = T0
    for dt, take in steps:
        at += dt
        wait = model.wait(at)
        free = bucket.next_free(at)
        if not model.close_call():  # a hair's breadth from one token, float may rightly go either way
            assert (free == at) == (wait == 0)
        if free > at:
            assert abs((free - at) - math.ceil(wait)) <= 1  # float rounding may move it by one µs
            assert bucket.wait_seconds() == pytest.approx(float(wait) / SECOND, rel=1e-6, abs=1e-6)
        if take and free == at:
            bucket.take(at)
            model.take(at)


@settings(max_examples=300, deadline=None)
@given(rate=rates, burst=bursts, steps=steps)
def test_leaky_bucket_matches_level_model(rate: float, burst: int, steps: list[tuple[int, bool]]) -> None:
    """The cell-rate bucket gives exactly the water-level model's wait, queued or not."""
    bucket, model = LeakyBucket(BucketSpec(rate, burst, "leaky"), T0), LeakyModel(rate, burst, T0)
    at = T0
    for dt, take in steps:
        at += dt
        wait = model.wait(at)
        free = bucket.next_free(at)
        assert free - at == wait
        assert bucket.is_full(at) == (model.level == 0)
        if take:  # taken at its release time: now, or after the wait (queue mode)
            bucket.take(free)
            model.take(at)
    assert max(bucket.full_at(), at) == at + model.level  # at rest once the level has drained


def test_leaky_outflow_is_the_rate_after_the_burst() -> None:
    """Rate 4/s, burst 3: three pass at once, then one every 250 ms exactly."""
    bucket = LeakyBucket(BucketSpec(4.0, 3, "leaky", queue=10), T0)
    releases = []
    for _ in range(7):
        free = bucket.next_free(T0)
        bucket.take(free)
        releases.append(free - T0)
    assert releases == [0, 0, 0, 250_000, 500_000, 750_000, 1_000_000]
    assert bucket.full_at() == T0 + 1_750_000


def test_token_bucket_refills_at_rate_up_to_burst() -> None:
    """Rate 2/s burst 2: two at once, then a token every 500 ms, never more than two."""
    bucket = TokenBucket(BucketSpec(2.0, 2), T0)
    bucket.take(T0)
    bucket.take(T0)
    assert bucket.next_free(T0) == T0 + 500_000
    assert bucket.next_free(T0 + 500_000) == T0 + 500_000
    assert bucket.full_at() == T0 + SECOND
    assert bucket.refill(T0 + 10 * SECOND) == 2.0


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"rate": 1.0, "burst": 1, "algorithm": "drip"}, "'token' or 'leaky'"),
        ({"rate": 1.0, "burst": 1, "queue": 3}, "only a leaky bucket can queue"),
        ({"rate": 1.0, "burst": 1, "algorithm": "leaky", "queue": -1}, "queue must be >= 0"),
        ({"rate": 2e6, "burst": 1, "algorithm": "leaky"}, "at most 1000000"),
    ],
)
def test_bucket_spec_rejects_bad_shapes(spec: dict[str, object], says: str) -> None:
    """Unknown algorithms, queues on token buckets and sub-microsecond outflows are refused."""
    with pytest.raises(ValueError, match=says):
        BucketSpec(**spec)  # type: ignore[arg-type]
