"""Operator actions at the actors: a pause in the purchase rules, buckets that change shape live."""

from __future__ import annotations

from flashsale.actors import BucketSpec, LeakyBucket, SkuStock, TokenBucket
from flashsale.actors.rules import PAUSED, decide, shortcut


def test_pause_comes_after_the_window_and_before_stock() -> None:
    """A paused SKU refuses sale_paused; a closed window still says sale_not_open first."""
    assert decide(None, None, 10, None, 0, 1, 5, paused=True) == ("sale_paused", PAUSED)
    assert decide(None, 5, 10, None, 0, 1, 5, paused=True)[0] == "sale_not_open"  # type: ignore[index]
    assert decide(None, None, 0, None, 0, 1, 5, paused=True)[0] == "sale_paused"  # type: ignore[index]
    assert shortcut(None, None, 0, 5, paused=True)[0] == "sale_paused"  # type: ignore[index]
    assert decide(None, None, 10, None, 0, 1, 5) is None


def test_end_closes_the_window_now_and_pause_shows_in_the_view() -> None:
    """Ending sets ends_at to the instant (starts_at no later); pause and resume flip the view's flag."""
    s = SkuStock("a", 5, starts_at=100, ends_at=1_000)
    s.control("pause", 50)
    assert s.view().paused
    assert s.view().state(200) == "paused"
    s.control("resume", 60)
    assert not s.view().paused
    s.control("end", 70)
    assert (s.starts_at, s.ends_at) == (70, 70)
    assert s.view().state(70) == "ended"
    s.control("end", 500)  # ending again never reopens
    assert s.ends_at == 70


def test_token_bucket_respec_keeps_what_it_holds() -> None:
    """A token bucket given a new shape keeps its tokens (clipped to the new burst) and refills at the new rate."""
    b = TokenBucket(BucketSpec(rate=10, burst=10), 0)
    for _ in range(8):
        b.take(0)
    b.respec(BucketSpec(rate=1000, burst=5), 0)
    assert b.refill(0) == 2.0
    assert b.refill(1_000) == 3.0  # 1 ms at 1,000/s
    assert b.refill(1_000_000) == 5.0  # clipped to the new burst
    b.respec(BucketSpec(rate=1, burst=1), 1_000_000)
    assert b.refill(1_000_000) == 1.0


def test_leaky_bucket_respec_changes_its_outflow() -> None:
    """A leaky bucket given a new rate spaces what passes from now on at the new interval."""
    b = LeakyBucket(BucketSpec(rate=10, burst=1, algorithm="leaky"), 0)
    assert b.interval == 100_000
    b.respec(BucketSpec(rate=1000, burst=1, algorithm="leaky"), 0)
    assert b.interval == 1_000
    b.take(0)
    assert b.next_free(0) == 1_000
