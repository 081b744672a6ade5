"""Figures merged across processes are exactly the figures of one process that saw everything."""

from __future__ import annotations

import random

from flashsale.transport.load._stats import Stats


def test_merged_dumps_equal_one_recorder() -> None:
    """Two halves, dumped and merged, give the same counts, percentiles, max and statuses as the whole."""
    rng = random.Random(5)
    whole, merged = Stats(), Stats()
    halves = [Stats(), Stats()]
    for i in range(5000):
        due = i / 1000
        at = due + rng.expovariate(1 / 0.004)
        status = "200 reserved" if i % 3 else "409 sold_out"
        whole.answered("purchase", status, due, at)
        halves[i % 2].answered("purchase", status, due, at)
    for half in halves:
        merged.merge_dump(half.dump())
    a, b = whole.phases["purchase"], merged.phases["purchase"]
    assert a.count == b.count == 5000
    assert a.status == b.status
    for p in (50.0, 90.0, 99.0, 99.9, 100.0):
        assert a.percentile_ms(p) == b.percentile_ms(p)
    assert a.max_ms() == b.max_ms()
    assert sum(x.answered for x in merged.buckets.values()) == 5000


def test_a_retried_503_is_not_a_final_server_error() -> None:
    """`http.5xx` counts final answers: a 503 that was answered again by a retry is subtracted."""
    s = Stats()
    s.answered("purchase", "503 overloaded", 0.0, 0.001)
    s.answered("purchase", "503 overloaded", 0.0, 0.001)
    s.retried_5xx = 1
    assert s.http_5xx == 1
