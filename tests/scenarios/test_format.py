"""Scenario files: what loads, and the error a malformed file gets (file, place, problem)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flashsale import ScenarioError, TrafficEvent, load_scenario, parse_scenario

BASE: dict[str, Any] = {"flashsale_scenario": 1, "config": {"sku": [{"id": "a", "stock": 5, "per_user_limit": 2}]}}
GEN = {"name": "c", "seed": 1, "users": 10, "sku": "a", "arrival": {"pattern": "burst", "duration": 1}}


def doc(**top: Any) -> str:
    return json.dumps({**BASE, **top})


def buy(**fields: Any) -> dict[str, Any]:
    return {"at": 0, "user": "u", "sku": "a", **fields}


BAD = [
    (doc(traffic=[buy(), buy(at=1, qty=0)]), "t.json: traffic[1].qty: must be a whole number >= 1, got 0"),
    (doc(traffic=[buy(at=-1)]), "t.json: traffic[0].at: must be a number >= 0, got -1"),
    (doc(traffic=[buy(at="soon")]), 't.json: traffic[0].at: must be a number >= 0, got "soon"'),
    (doc(traffic=[buy(at=float("inf"))]), "t.json: traffic[0].at: must be a number >= 0, got Infinity"),
    (doc(traffic=[buy(sku="b")]), "t.json: traffic[0].sku: 'b' is not a sku of the config (skus: a)"),
    (
        doc(traffic=[buy(op="refund")]),
        "t.json: traffic[0].op: must be one of purchase, pay, cancel, restock, expire, pause, resume, end, limits,"
        ' room_pause, room_resume, room_rate, join, poll, room_tick, got "refund"',
    ),
    (doc(traffic=[{"at": 0, "op": "pause"}]), "t.json: traffic[0]: a 'pause' event needs 'sku'"),
    (
        doc(traffic=[{"at": 0, "op": "limits", "scope": "per_user", "rate": 5}]),
        "t.json: traffic[0]: a 'limits' event needs 'scope', 'rate' and 'burst'; it has no 'burst'",
    ),
    (
        doc(traffic=[{"at": 0, "op": "limits", "scope": "everyone", "rate": 5, "burst": 1}]),
        't.json: traffic[0].scope: must be one of global, per_sku, per_user, per_ip, got "everyone"',
    ),
    (
        doc(traffic=[{"at": 0, "op": "limits", "scope": "per_ip", "rate": 0, "burst": 1}]),
        "t.json: traffic[0].rate: must be a number > 0, got 0",
    ),
    (
        doc(traffic=[{"at": 0, "op": "restock", "sku": "a", "user": "u"}]),
        "t.json: traffic[0].user: is not a field of a 'restock' event (its fields: at, op, qty, sku)",
    ),
    (doc(traffic=[{"at": 0, "user": "u"}]), "t.json: traffic[0]: a 'purchase' event needs 'sku'"),
    (doc(traffic=[buy(qty=101)]), "t.json: traffic[0].qty: must be at most limits.max_qty (100), got 101"),
    (doc(traffic=[buy(user="x" * 129)]), "t.json: traffic[0].user: must be at most 128 characters, got 129"),
    (
        doc(traffic=[{"at": 0, "op": "pay", "order": "a-1", "sku": "a"}]),
        "t.json: traffic[0]: name either 'order' (and the acting 'user') or 'user' and 'sku', not both",
    ),
    (doc(traffic=[{"user": "u", "sku": "a"}]), "t.json: traffic[0]: needs 'at'"),
    (doc(traffic={"at": 0}), "t.json: traffic: must be a list of events, got dict"),
    (
        doc(generators=[{**GEN, "arrival": {"pattern": "wave", "duration": 1}}]),
        't.json: generators[0].arrival.pattern: must be one of burst, uniform, poisson, got "wave"',
    ),
    (
        doc(generators=[{k: v for k, v in GEN.items() if k != "sku"}]),
        "t.json: generators[0]: needs exactly one of 'sku' (one SKU) or 'skus' (a weighted mix)",
    ),
    (doc(generators=[{**GEN, "seed": 1.5}]), "t.json: generators[0].seed: must be a whole number, got 1.5"),
    (
        doc(generators=[{**GEN, "retry": {"max": 2, "backoff": 0}}]),
        "t.json: generators[0].retry.backoff: must be a number > 0, got 0",
    ),
    (
        doc(generators=[{**GEN, "pay": {"fraction": 0.7, "after": 1}, "cancel": {"fraction": 0.4, "after": 1}}]),
        "t.json: generators[0]: pay.fraction + cancel.fraction must be at most 1",
    ),
    (doc(generators=[GEN, GEN]), "t.json: generators[1].name: 'c' is the name of an earlier generator"),
    (doc(generators=[{**GEN, "qty": [3, 1]}]), "t.json: generators[0].qty: the range [3, 1] is empty"),
    (doc(expect={"sold": {"b": 1}}), "t.json: expect.sold: unknown key 'b' (known: a)"),
    (doc(expect={"digest": "abc"}), "t.json: expect.digest: must be 'sha256:' and 64 hex digits, got \"abc\""),
    (
        doc(expect={"ops": {"refund:done": 1}}),
        "t.json: expect.ops.refund:done: must be 'pay:<result>', 'cancel:<result>', 'restock:restocked' or an admin",
    ),
    (
        doc(color="red"),
        "t.json: unknown key 'color' (known: config, description, expect, flashsale_scenario, generators, name,"
        " room_seed, start, traffic)",
    ),
    (doc(flashsale_scenario=2), "t.json: flashsale_scenario: this flashsale reads version 1, got 2"),
    (json.dumps({"flashsale_scenario": 1}), "t.json: needs 'config'"),
    (doc(config={"sku": [{"id": "a", "stock": -1}]}), "t.json: config: sku[0].stock: must be >= 0, got -1"),
    (doc(start="midnight"), "t.json: start: not an ISO 8601 time: 'midnight'"),
    ('{"flashsale_scenario": 1,\n "config": {]}', "t.json: line 2 column 13: not valid JSON: Expecting property"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m.split(": ", 1)[1][:40] for _, m in BAD])
def test_malformed_file_names_file_place_and_problem(text: str, message: str) -> None:
    """Each mistake is refused with a message that starts with the file and the place in it."""
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "t.json")
    assert str(caught.value).startswith(message)


HEADER = json.dumps(BASE)
BAD_JSONL = [
    (
        f"{HEADER}\n{json.dumps(buy())}\n\n{json.dumps(buy(at=1, qty=0))}\n",
        "t.jsonl: line 4: qty: must be a whole number >= 1, got 0",
    ),
    (
        f'{HEADER}\n{{"at": 0, "user": "u", "sku": "a"\n',
        "t.jsonl: line 2 column 34: not valid JSON: Expecting ',' delimiter",
    ),
    (json.dumps({**BASE, "traffic": []}), "t.jsonl: line 1: unknown key 'traffic'"),
    (
        json.dumps({**BASE, "config": {"sku": [{"id": "a", "stock": 1, "color": 1}]}}),
        "t.jsonl: line 1: config: sku[0]: unknown key 'color'",
    ),
    ("", "t.jsonl: line 1: needs the scenario header"),
]


@pytest.mark.parametrize(("text", "message"), BAD_JSONL, ids=[m.split(": ", 1)[1][:40] for _, m in BAD_JSONL])
def test_malformed_jsonl_names_the_line(text: str, message: str) -> None:
    """In the JSON Lines form the place is the line number."""
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "t.jsonl", jsonl=True)
    assert str(caught.value).startswith(message)


def test_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    """A missing file, one that is not UTF-8, or one with a mistake: the error names the path as given."""
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path / "nope.json")
    assert str(caught.value) == f"{tmp_path / 'nope.json'}: cannot read: No such file or directory"
    (tmp_path / "latin.json").write_bytes(b'{"name": "caf\xe9"}')
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path / "latin.json")
    assert str(caught.value) == f"{tmp_path / 'latin.json'}: not UTF-8 text"
    (tmp_path / "rec.jsonl").write_text(f"{HEADER}\n{json.dumps(buy(qty=0))}\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path / "rec.jsonl")
    assert str(caught.value) == f"{tmp_path / 'rec.jsonl'}: line 2: qty: must be a whole number >= 1, got 0"


def test_a_valid_file_loads_every_field() -> None:
    """Times become µs from the start; pay/cancel name an order or a user and sku; config is the TOML's."""
    scenario = parse_scenario(
        doc(
            name="n",
            description="d",
            start="2026-11-11T00:00:00Z",
            traffic=[
                buy(at=0.25, qty=2, key="k", ip="10.0.0.1"),
                {"at": 1, "op": "pay", "user": "u", "sku": "a"},
                {"at": 2, "op": "cancel", "order": "a-1"},
                {"at": 3, "op": "restock", "sku": "a", "qty": 7},
                {"at": 4, "op": "expire"},
            ],
        ),
        "t.json",
    )
    assert (scenario.name, scenario.description, scenario.start) == ("n", "d", 1_794_355_200_000_000)
    assert scenario.config.sku("a").per_user_limit == 2
    assert scenario.config.tick_interval == 0  # the replay delivers time itself
    assert scenario.tick_interval == 1.0  # ... every engine.tick_interval of virtual time
    assert scenario.events == (
        TrafficEvent(250_000, "purchase", "u", "a", 2, "k", "10.0.0.1"),
        TrafficEvent(1_000_000, "pay", "u", "a"),
        TrafficEvent(2_000_000, "cancel", order="a-1"),
        TrafficEvent(3_000_000, "restock", sku="a", qty=7),
        TrafficEvent(4_000_000, "expire"),
    )


def test_traffic_is_sorted_stably_with_explicit_events_first() -> None:
    """At one instant, explicit events come before generated ones, each in file order."""
    scenario = parse_scenario(
        doc(
            traffic=[buy(at=1, user="late"), buy(user="first"), buy(user="second")],
            generators=[{**GEN, "users": 2, "arrival": {"pattern": "uniform", "duration": 0}}],
        ),
        "t.json",
    )
    assert [(e.at, e.user) for e in scenario.traffic()] == [
        (0, "first"),
        (0, "second"),
        (0, "c-1"),
        (0, "c-2"),
        (1_000_000, "late"),
    ]


def test_a_time_without_offset_is_refused() -> None:
    """A scenario's start (or a config time in it) without an offset is an error that says so."""
    doc = {"flashsale_scenario": 1, "start": "2026-11-11T00:00:00", "config": {"sku": [{"id": "a", "stock": 1}]}}
    with pytest.raises(ScenarioError, match="2026-11-11T00:00:00 has no UTC offset"):
        parse_scenario(json.dumps(doc), "local.json")
