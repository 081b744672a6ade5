"""Generators: seeded crowds expand to the same events on every run and every machine."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from typing import Any

import pytest

from flashsale import TrafficEvent, parse_scenario

BASE: dict[str, Any] = {"flashsale_scenario": 1, "config": {"sku": [{"id": "a", "stock": 5}, {"id": "b", "stock": 5}]}}


def crowd(**fields: Any) -> list[TrafficEvent]:
    """The events of one generator (seed 7, 1,000 buyers of ``a`` unless overridden)."""
    g: dict[str, Any] = {"name": "c", "seed": 7, "users": 1000, "sku": "a"}
    g["arrival"] = {"pattern": "burst", "duration": 1}
    g.update(fields)
    if "skus" in fields:
        del g["sku"]
    return parse_scenario(json.dumps({**BASE, "generators": [g]}), "t.json").traffic()


def fingerprint(events: list[TrafficEvent]) -> str:
    rows = [(e.at, e.op, e.user, e.sku, e.qty, e.key, e.ip, e.then and (e.then.op, e.then.after_us)) for e in events]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def test_expansion_is_pinned() -> None:
    """The same file gives the same events: pinned here, so a change of RNG or order shows on any machine."""
    events = crowd(
        skus={"a": 1, "b": 3},
        qty=[1, 3],
        clicks=2,
        keys="per_click",
        ips=50,
        pay={"fraction": 0.5, "after": 10},
        cancel={"fraction": 0.2, "after": 5},
        arrival={"pattern": "poisson", "duration": 60},
    )
    assert fingerprint(events) == "a494a53ac3c56ae4"


@pytest.mark.parametrize(
    ("pattern", "first_sixteenth", "first_half"),
    [("burst", 537, 846), ("uniform", 74, 537), ("poisson", 73, 525)],
)
def test_arrival_patterns(pattern: str, first_sixteenth: int, first_half: int) -> None:
    """burst crowds the opening (u⁴: half in the first 1/16 of the window); uniform and poisson spread out."""
    events = crowd(arrival={"pattern": pattern, "start": 2, "duration": 10})
    ats = [e.at for e in events]
    assert len(ats) == 1000
    assert min(ats) >= 2_000_000
    assert max(ats) < 12_000_000
    assert sum(a < 2_625_000 for a in ats) == first_sixteenth
    assert sum(a < 7_000_000 for a in ats) == first_half


def test_clicks_keys_and_addresses() -> None:
    """Duplicate clicks follow each other; per_user keys repeat across clicks, per_click keys do not."""
    same_key = crowd(users=3, clicks=3, click_gap=0.5, keys="per_user", ip="203.0.113.9")
    by_user: dict[str | None, list[TrafficEvent]] = {}
    for e in same_key:
        by_user.setdefault(e.user, []).append(e)
    assert sorted(by_user) == ["c-1", "c-2", "c-3"]
    for user, clicks in by_user.items():
        assert [e.key for e in clicks] == [f"{user}:0"] * 3
        assert {e.ip for e in clicks} == {"203.0.113.9"}
        gaps = [b.at - a.at for a, b in itertools.pairwise(clicks)]
        assert all(0 < g <= 500_000 for g in gaps)
    per_click = crowd(users=2, clicks=2, keys="per_click")
    assert sorted(e.key for e in per_click) == ["c-1:0", "c-1:1", "c-2:0", "c-2:1"]
    assert {e.key for e in crowd(users=2)} == {None}
    pool = {e.ip for e in crowd(users=500, ips=4)}
    assert pool == {"10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3"}


def test_sku_mix_quantities_and_follow_ups() -> None:
    """Weighted SKU mix, a quantity range, and the shares that pay or cancel, drawn per buyer."""
    events = crowd(
        users=4000,
        skus={"a": 1, "b": 3},
        qty=[1, 3],
        pay={"fraction": 0.5, "after": 10},
        cancel={"fraction": 0.25, "after": 5},
    )
    assert Counter(e.sku for e in events) == {"a": 989, "b": 3011}
    assert Counter(e.qty for e in events) == {1: 1352, 2: 1391, 3: 1257}
    follow_ups = Counter(e.then and (e.then.op, e.then.after_us) for e in events)
    assert follow_ups == {("pay", 10_000_000): 2047, ("cancel", 5_000_000): 985, None: 968}


def test_retry_policy_delays() -> None:
    """Back-off grows by the factor, and never undercuts the server's retry_after."""
    (event, *_) = crowd(users=1, retry={"max": 3, "backoff": 0.5, "factor": 3})
    policy = event.retry
    assert policy is not None
    assert [policy.delay_us(n, None) for n in (1, 2, 3)] == [500_000, 1_500_000, 4_500_000]
    assert policy.delay_us(1, 2.0) == 2_000_000
    assert policy.on == {"rate_limited", "overloaded", "unavailable"}
