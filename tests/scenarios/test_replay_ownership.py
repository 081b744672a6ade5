"""``flashsale replay``: pay and cancel act only for the order's buyer, and replays mint the same ids every run."""

from __future__ import annotations

import json
import re
from typing import Any

from flashsale import parse_scenario, replay


def _scenario(traffic: list[dict[str, Any]], name: str = "own") -> Any:
    doc = {"flashsale_scenario": 1, "name": name, "config": {"sku": [{"id": "a", "stock": 5}]}, "traffic": traffic}
    return parse_scenario(json.dumps(doc), "t.json")


TRAFFIC = [
    {"at": 0, "user": "u1", "sku": "a"},
    {"at": 0, "user": "u2", "sku": "a"},
    {"at": 1, "op": "pay", "order": "a-1", "user": "u2"},  # someone else's order: as if it did not exist
    {"at": 1, "op": "cancel", "order": "a-2", "user": "u1"},
    {"at": 2, "op": "pay", "order": "a-1", "user": "u1"},
    {"at": 2, "op": "cancel", "order": "a-2"},  # no user: the buyer the replay saw reserve it
    {"at": 3, "op": "pay", "order": "a-9"},  # an id this replay never handed out
]


async def test_only_the_buyer_pays_or_cancels_in_a_replay() -> None:
    """An order event naming another user is unknown_order; its buyer (named or implied) can act."""
    result = await replay(_scenario(TRAFFIC), keep_log=True)
    ops = [(d[2], d[3], d[7]) for d in result.log if d[2] != "purchase"]
    assert ops == [
        ("pay", "u2", "unknown_order"),
        ("cancel", "u1", "unknown_order"),
        ("pay", "u1", "paid"),
        ("cancel", None, "cancelled"),
        ("pay", None, "unknown_order"),
    ]
    assert (result.skus["a"].paid, result.skus["a"].remaining) == (1, 4)


async def test_replay_ids_are_tagged_and_the_same_on_every_run() -> None:
    """Ids carry a 64-bit tag keyed by the scenario's seed: the same file mints the same ids; another name others."""
    first = await replay(_scenario(TRAFFIC), keep_log=True)
    again = await replay(_scenario(TRAFFIC), keep_log=True)
    other = await replay(_scenario(TRAFFIC, name="other"), keep_log=True)
    ids = [d[8] for d in first.log if d[2] == "purchase"]
    assert all(re.fullmatch(r"a-[12]-[0-9a-f]{16}", i) for i in ids)
    assert [d[8] for d in again.log if d[2] == "purchase"] == ids
    assert first.digest == again.digest != other.digest
    assert {d[8] for d in other.log if d[2] == "purchase"}.isdisjoint(ids)
