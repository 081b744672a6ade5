"""One decision order on both backends: every scenario replays on memory and on Redis to the same digest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from flashsale import load_scenario, parse_scenario, replay
from flashsale.transport import main
from tests.distributed.conftest import RedisServer

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
FILES = sorted(SCENARIOS.glob("*.json*"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
async def test_library_replays_to_one_digest_on_both_backends(path: Path, redis_server: RedisServer) -> None:
    """The memory backend (Python rules) and the redis backend (Lua rules) make the same decisions."""
    scenario = load_scenario(path)
    memory = await replay(scenario, keep_log=True)
    on_redis = await replay(scenario, keep_log=True, backend="redis", redis_url=redis_server.url)
    assert on_redis.log == memory.log
    assert on_redis.digest == memory.digest
    assert on_redis.failures(scenario) == []


def _scenario(config: dict[str, Any], traffic: list[dict[str, Any]]) -> Any:
    return parse_scenario(json.dumps({"flashsale_scenario": 1, "config": config, "traffic": traffic}), "t.json")


async def test_the_order_of_checks(redis_server: RedisServer) -> None:
    """Key, window, sold out, per-user limit, stock: the first that fails answers, on both backends."""
    s = _scenario(
        {
            "sku": [
                {"id": "a", "stock": 3, "per_user_limit": 1, "ends_at": "2026-01-01T00:00:10Z"},
                {"id": "b", "stock": 1, "per_user_limit": 1},
            ]
        },
        [
            {"at": 0, "user": "u1", "sku": "a", "key": "k"},  # reserved: a-1
            {"at": 1, "user": "u1", "sku": "a", "qty": 2, "key": "k"},  # the key was first used for qty 1: reused
            {"at": 2, "user": "u1", "sku": "a", "qty": 1},  # at the limit: limit_reached
            {"at": 3, "user": "u2", "sku": "b", "qty": 1, "key": "x"},  # reserved: b-1, b is sold out
            {"at": 4, "user": "u2", "sku": "b", "qty": 1, "key": "y"},  # sold out before the limit
            {"at": 5, "user": "u3", "sku": "a", "qty": 3, "key": "z"},  # over the limit and the stock: limit first
            {"at": 11, "user": "u1", "sku": "a", "key": "k2"},  # window before the limit
        ],
    )
    want = ["reserved", "idempotency_key_reused", "limit_reached", "reserved", "sold_out", "limit_reached"]
    want.append("sale_not_open")
    for backend in ("memory", "redis"):
        result = await replay(s, keep_log=True, backend=backend, redis_url=redis_server.url)  # type: ignore[arg-type]
        assert [d[7] for d in result.log] == want, backend


async def test_a_key_used_again_at_its_first_instant_with_another_qty(redis_server: RedisServer) -> None:
    """The difference kept on purpose (docs/architecture.md): memory refuses it while the first is undecided.

    At one instant, a refused first use and the same key with another qty:
    memory's dedup actor still holds the first in flight and answers the
    second ``idempotency_key_reused``; Redis decides the batch in order in one
    Lua call, where the refused first use left no record, so the second is
    decided afresh. At a later instant both decide it afresh. With a first
    use that reserves, both answer ``idempotency_key_reused``.
    """
    s = _scenario(
        {"sku": [{"id": "a", "stock": 2}, {"id": "b", "stock": 5}]},
        [
            {"at": 0, "user": "u1", "sku": "a", "qty": 3, "key": "k"},  # more than the stock: sold_out
            {"at": 0, "user": "u1", "sku": "a", "qty": 1, "key": "k"},  # the difference
            {"at": 1, "user": "u2", "sku": "a", "qty": 3, "key": "k"},  # sold_out
            {"at": 2, "user": "u2", "sku": "a", "qty": 1, "key": "k"},  # a later instant: decided afresh
            {"at": 3, "user": "u3", "sku": "b", "qty": 1, "key": "r"},  # reserved
            {"at": 3, "user": "u3", "sku": "b", "qty": 2, "key": "r"},  # reused on both
        ],
    )
    memory = await replay(s, keep_log=True)
    on_redis = await replay(s, keep_log=True, backend="redis", redis_url=redis_server.url)
    same = ["sold_out", "reserved", "reserved", "idempotency_key_reused"]
    assert [d[7] for d in memory.log] == ["sold_out", "idempotency_key_reused", *same]
    assert [d[7] for d in on_redis.log] == ["sold_out", "reserved", *same]


async def test_the_dead_of_one_sweep_expire_in_turn(redis_server: RedisServer) -> None:
    """Tickets one sweep finds dead expire in the actor's order on both backends: the drawn in drawn order, then
    later joins in arrival order (Redis finds them by their heartbeats' scores, then orders them)."""
    early = [{"at": 1 + i / 10, "op": "join", "user": f"u{i}"} for i in range(20)]
    polls = [{"at": t, "op": "poll", "user": f"u{i}"} for t in (*range(3, 30, 2), 30.05) for i in range(1, 20, 2)]
    late = [{"at": 30.1 + i / 10, "op": "join", "user": f"v{i}"} for i in range(5)]
    keep = [{"at": t, "op": "poll", "user": "u1"} for t in range(31, 50, 2)]
    s = _scenario(
        {
            "sku": [{"id": "a", "stock": 100, "starts_at": "2026-01-01T00:00:30Z"}],
            "waiting_room": {"opens_at": "2026-01-01T00:00:00Z", "admit_rate": 0.05, "admit_burst": 1, "heartbeat": 2},
        },
        sorted(early + polls + late + keep, key=lambda e: e["at"]),
    )
    memory = await replay(s, keep_log=True)
    on_redis = await replay(s, keep_log=True, backend="redis", redis_url=redis_server.url)
    assert on_redis.log == memory.log
    assert on_redis.digest == memory.digest
    drawn = next(str(d[8]).split(",") for d in memory.log if d[2] == "draw")
    joined = [d[8] for d in memory.log if d[2] == "join" and str(d[3]).startswith("v")]
    *_, last = (str(d[8]).split(",") for d in memory.log if d[2] == "room_expire")
    assert len(last) == 8 + 5  # the drawn odd ones but the first (admitted) and u1 (polling), then v0-v4
    assert last == [t for t in drawn if t in last] + joined


async def test_redis_replay_leaves_no_keys(redis_server: RedisServer) -> None:
    """A replay on Redis decides under a fresh prefix and deletes it afterwards; other keys are untouched."""
    client = redis.Redis.from_url(redis_server.url)
    client.set("someone-else:key", "1")
    for name in ("unpaid-expiry.json", "waiting-room-draw.json"):  # the room's keys go with the sale's
        await replay(load_scenario(SCENARIOS / name), backend="redis", redis_url=redis_server.url)
    assert list(client.scan_iter(match="replay-*")) == []
    assert client.get("someone-else:key") == b"1"


def test_cli_replays_on_redis(redis_server: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    """``flashsale replay FILE --backend redis --redis-url URL --check`` passes the file's expectations."""
    path = SCENARIOS / "restock-mid-sale.json"
    assert main(["replay", str(path), "--check", "--json", "--backend", "redis", "--redis-url", redis_server.url]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["check"] == {"ok": True, "failures": []}
    assert main(["replay", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["digest"] == out["digest"]


def test_cli_redis_down_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A Redis that does not answer gives exit 2 and one line naming the problem, no traceback."""
    path = SCENARIOS / "restock-mid-sale.json"
    url = "redis://127.0.0.1:1/0"
    assert main(["replay", str(path), "--backend", "redis", "--redis-url", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flashsale: ")
    assert "Traceback" not in err
