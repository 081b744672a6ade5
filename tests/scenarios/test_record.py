"""Recording: live traffic written as a scenario replays to the decisions the live engine made."""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from flashsale import (
    Config,
    LimitsConfig,
    ManualClock,
    PurchaseRequest,
    SaleEngine,
    ScenarioRecorder,
    SkuConfig,
    StoreConfig,
    load_scenario,
    replay,
)
from flashsale.actors import BucketSpec
from flashsale.transport import main
from tests.conftest import T0
from tests.ids import plain, untag_log
from tests.scenarios.conftest import StartServer


def _config(path: Path) -> Config:
    return Config(
        skus=(SkuConfig("a", 4, per_user_limit=2, payment_timeout=30), SkuConfig("b", 100)),
        store=StoreConfig(path=str(path)),
        limits=LimitsConfig(per_user=BucketSpec(rate=1, burst=2)),
        tick_interval=0,
    )


async def test_an_embedded_engine_records_and_the_replay_agrees(tmp_path: Path) -> None:
    """Purchases, pay, cancel, restock and an expiring tick, recorded and replayed: the same decisions."""
    clock = ManualClock(T0)
    recorder = ScenarioRecorder(tmp_path / "rec.jsonl", _config(tmp_path / "x.db"), T0)
    live: list[tuple[str | None, str]] = []
    async with SaleEngine(_config(tmp_path / "live.db"), clock=clock, recorder=recorder) as sale:
        for user, sku, qty, key in [
            ("u1", "a", 1, None),
            ("u1", "a", 2, None),
            ("u2", "a", 1, "k"),
            ("u2", "a", 1, "k"),
        ]:
            o = await sale.purchase(sku, user, qty, idempotency_key=key, client_ip="10.0.0.7")
            live.append((o.order_id, o.result))
        clock.advance(0.25)
        outcomes = await sale.purchase_many(
            [PurchaseRequest("a", "u3"), PurchaseRequest("a", "u1"), PurchaseRequest("b", "u4", 3)]
        )
        live += [(o.order_id, o.result) for o in outcomes]
        clock.advance(1)
        await sale.pay(live[0][0] or "", user="u1")
        await sale.cancel(live[2][0] or "", user="u2")
        await sale.restock("a", 1)
        o = await sale.purchase("a", "u5")
        live.append((o.order_id, o.result))
        clock.advance(40)
        assert await sale.expire_due() == 2
        o = await sale.purchase("a", "u6", 2)
        live.append((o.order_id, o.result))
    recorder.close()
    assert [(o and plain(o), r) for o, r in live] == [
        ("a-1", "reserved"),
        (None, "limit_reached"),  # 1 + 2 is over u1's limit of 2
        ("a-2", "reserved"),
        ("a-2", "reserved"),  # the same key: the first answer again
        ("a-3", "reserved"),
        (None, "rate_limited"),  # u1's bucket (burst 2, 1/s) is empty a quarter second later
        ("b-1", "reserved"),
        ("a-4", "reserved"),
        ("a-5", "reserved"),
    ]
    scenario = load_scenario(tmp_path / "rec.jsonl")
    assert scenario.events[0].ip == "10.0.0.7"
    result = await replay(scenario, keep_log=True)
    log = untag_log(result.log)  # the replay mints its own ids: the same numbers, its own tags
    purchases = [(d[8], d[7]) for d in log if d[2] == "purchase"]
    assert purchases == [(o and plain(o), r) for o, r in live]
    assert [(d[2], d[7], d[8]) for d in log if d[2] != "purchase"] == [
        ("pay", "paid", "a-1"),
        ("cancel", "cancelled", "a-2"),
        ("restock", "restocked", None),
        ("expire", "expired", "a-3,a-4"),
    ]


async def test_recording_is_bounded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Past max_events recording stops with one log line; the sale goes on."""
    recorder = ScenarioRecorder(tmp_path / "rec.jsonl", _config(tmp_path / "x.db"), T0, max_events=3)
    async with SaleEngine(_config(tmp_path / "live.db"), clock=ManualClock(T0), recorder=recorder) as sale:
        with caplog.at_level(logging.WARNING, logger="flashsale.record"):
            results = [(await sale.purchase("b", f"u{i}")).result for i in range(6)]
    recorder.close()
    assert results == ["reserved"] * 6
    assert [r.message for r in caplog.records] == ["recording stopped: the file holds its maximum of events"]
    assert len(load_scenario(tmp_path / "rec.jsonl").events) == 3


SERVER_CONFIG = """
[limits]
per_user = { rate = 0.5, burst = 4 }  # a buyer's fifth purchase within 2 s is refused, however slow the machine

[engine]
tick_interval = 0.5

[[sku]]
id = "big"
stock = 1000
per_user_limit = 3

[[sku]]
id = "gone"
stock = 0
"""

USERS = 40
CONCURRENCY = 40


async def _buyer(session: aiohttp.ClientSession, url: str, user: str, rng: random.Random) -> list[tuple[str, Any]]:
    """One buyer's requests, one after another; returns what each answered, in order."""
    answers: list[tuple[str, Any]] = []
    orders: list[str] = []
    for step in range(7):
        choice = rng.random()
        if orders and choice < 0.15:
            order_id = orders.pop(0)
            action = "cancel" if rng.random() < 0.5 else "pay"
            async with session.post(f"{url}/v1/orders/{order_id}/{action}", json={"user": user}) as resp:
                body = await resp.json()
            answers.append((action, (plain(order_id), resp.status, body.get("status") or body.get("error"))))
            continue
        sku = "gone" if choice > 0.9 else "big"
        headers = {"Idempotency-Key": f"{user}-k{step // 2}"} if choice < 0.4 else {}
        qty = 2 if choice > 0.8 else 1
        async with session.post(
            f"{url}/v1/purchase", json={"sku": sku, "user": user, "qty": qty}, headers=headers
        ) as resp:
            body = await resp.json()
        result = body.get("result") or body.get("error")
        answers.append(("purchase", (body.get("order_id") and plain(body["order_id"]), result)))
        if resp.status == 200 and body["order_id"] not in orders:
            orders.append(body["order_id"])
    return answers


async def test_a_recorded_server_replays_to_its_live_answers(start_server: StartServer, tmp_path: Path) -> None:
    """Concurrent buyers against `flashsale serve --record`; after SIGTERM the file replays to every live answer.

    Each buyer's requests go one after another (many buyers at once), which
    is when a live answer depends only on arrival order: see docs/scenarios.md.
    """
    server = await start_server(SERVER_CONFIG, "--record", "rec.jsonl")
    rng = random.Random(20261124)
    seeds = [random.Random(rng.random()) for _ in range(USERS)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:
        answers = await asyncio.gather(*(_buyer(session, server.url, f"user-{i}", seeds[i]) for i in range(USERS)))
    await server.stop()
    assert any(isinstance(line, dict) and line.get("event") == "recorded" for line in server.log)

    result = await replay(load_scenario(tmp_path / "rec.jsonl"), keep_log=True)
    replayed: dict[str, list[tuple[str | None, str]]] = {}
    changes: dict[str, str] = {}
    for d in untag_log(result.log):  # live ids and replayed ids share their numbers, not their tags
        if d[2] == "purchase":
            replayed.setdefault(d[3], []).append((d[8], d[7]))  # type: ignore[arg-type]
        else:
            changes[d[8]] = d[7]  # type: ignore[index]
    seen = {"purchase": 0, "pay": 0, "cancel": 0}
    results: set[str] = set()
    for i, mine in enumerate(answers):
        purchases = [a for kind, a in mine if kind == "purchase"]
        assert replayed.get(f"user-{i}", []) == purchases, f"user-{i}"
        for kind, a in mine:
            seen[kind] += 1
            if kind == "purchase":
                results.add(a[1])
            else:
                order_id, status, what = a
                assert changes[order_id] == (what if status == 200 else "not_reserved"), order_id
    assert seen["purchase"] == result.purchases
    assert {"reserved", "rate_limited", "sold_out", "limit_reached"} <= results
    assert seen["pay"] + seen["cancel"] > 0


async def test_a_full_recording_stops_once_and_the_server_keeps_serving(
    start_server: StartServer, tmp_path: Path
) -> None:
    """`--record-max 5`: five events in the file, one log line, and every purchase still answered."""
    server = await start_server(SERVER_CONFIG, "--record", "rec.jsonl", "--record-max", "5")
    async with aiohttp.ClientSession() as session:
        statuses = []
        for i in range(10):
            async with session.post(f"{server.url}/v1/purchase", json={"sku": "big", "user": f"u{i}"}) as resp:
                statuses.append(resp.status)
    await server.stop()
    assert statuses == [200] * 10
    stopped = [line for line in server.log if isinstance(line, dict) and line.get("event", "").startswith("recording")]
    assert [line["event"] for line in stopped] == ["recording stopped: the file holds its maximum of events"]
    assert [e.user for e in load_scenario(tmp_path / "rec.jsonl").events] == [f"u{i}" for i in range(5)]


def test_an_unwritable_recording_stops_the_server_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A --record path that cannot be written is refused before the server starts (exit 2)."""
    assert main(["serve", "--record", str(tmp_path / "missing" / "rec.jsonl")]) == 2
    assert (
        capsys.readouterr().err
        == f"flashsale: {tmp_path / 'missing' / 'rec.jsonl'}: cannot write: No such file or directory\n"
    )
