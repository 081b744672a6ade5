"""The token bucket is written twice, in Python (actors) and in Lua (THROTTLE): both give the same microsecond."""

from __future__ import annotations

import itertools
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from flashsale import RedisConfig
from flashsale.actors import BucketSpec, Purchase, TokenBucket
from flashsale.redis import RedisLedger
from tests.distributed.conftest import RedisServer

T0 = 1_767_225_600_000_000
_prefixes = itertools.count(1)


def python_waits(spec: BucketSpec, times: list[int]) -> list[int]:
    """What the limiter actor decides for one buyer: 0 (admitted, a token taken) or the µs to wait."""
    bucket: TokenBucket | None = None
    waits = []
    for at in times:
        if bucket is None:
            bucket = TokenBucket(spec, at)
        free = bucket.next_free(at)
        if free == at:
            bucket.take(at)
        waits.append(free - at)
    return waits


@settings(max_examples=60, deadline=None)
@given(
    rate=st.sampled_from([0.3, 1.0, 2.0, 7.0, 1000 / 3, 12_345.6]),
    burst=st.integers(1, 4),
    gaps=st.lists(st.integers(0, 3_000_000) | st.integers(0, 50), min_size=1, max_size=25),
    per_call=st.booleans(),
)
def test_lua_bucket_decides_as_the_python_one(
    redis_server: RedisServer, rate: float, burst: int, gaps: list[int], per_call: bool
) -> None:
    """For any rate, burst and arrival times, THROTTLE's waits equal TokenBucket's, to the microsecond."""
    spec = BucketSpec(rate, burst)
    times = list(itertools.accumulate(gaps, initial=T0))[1:]
    config = RedisConfig(url=redis_server.url, prefix=f"b{os.getpid()}-{next(_prefixes)}")
    ledger = RedisLedger(config, skus=["a"], idempotency_ttl=60.0, per_user=spec)
    try:
        purchases = [Purchase("", "a", "u1", 1, at, None, None, None) for at in times]  # type: ignore[arg-type]
        lua = [w for p in purchases for w in ledger.throttle([p])] if per_call else ledger.throttle(purchases)
    finally:
        ledger.close()
    assert [round(w * 1_000_000) for w in lua] == python_waits(spec, times)
