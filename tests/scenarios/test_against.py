"""``flashsale replay FILE --against URL``: a scenario's traffic against a real server, invariants checked."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from flashsale import load_scenario
from flashsale.transport._against import run_against
from tests.scenarios.conftest import REPO, StartServer

SALE = """
[[sku]]
id = "big"
stock = 60
per_user_limit = 2

[[sku]]
id = "gone"
stock = 0
"""

SCENARIO = {
    "flashsale_scenario": 1,
    "name": "against",
    "config": {
        "sku": [{"id": "big", "stock": 60, "per_user_limit": 2}, {"id": "gone", "stock": 0}],
    },
    "traffic": [
        {"at": 0.05, "user": "x", "sku": "gone"},
        {"at": 0.1, "op": "restock", "sku": "big", "qty": 5},
        {"at": 0.4, "op": "pay", "user": "crowd-1", "sku": "big"},
        {"at": 0.5, "op": "expire"},
    ],
    "generators": [
        {
            "name": "crowd",
            "seed": 9,
            "users": 150,
            "sku": "big",
            "qty": [1, 2],
            "clicks": 2,
            "click_gap": 0.05,
            "keys": "per_user",
            "arrival": {"pattern": "burst", "duration": 0.3},
            "pay": {"fraction": 0.3, "after": 0.2},
            "cancel": {"fraction": 0.2, "after": 0.1},
            "retry": {"max": 2, "backoff": 0.05},
        }
    ],
}


async def test_invariants_hold_against_a_live_server(start_server: StartServer, tmp_path: Path) -> None:
    """Every invariant holds; 200s, pays and cancels happen; restock and expire are skipped and counted."""
    server = await start_server(SALE)
    path = tmp_path / "against.json"
    path.write_text(json.dumps(SCENARIO))
    report = await run_against(load_scenario(path), server.url, concurrency=32)
    assert report.violations == []
    assert list(report.checks) == ["no 5xx", "every 200 has its order", "no oversell", "per-user limits"]
    assert report.skipped == {"restock": 1, "expire": 1}
    assert report.answers["409 sold_out"] >= 1  # x, on the SKU with no stock
    assert report.answers["200 reserved"] >= 60  # the stock, plus keyed repeats answered again
    assert report.answers["pay 200 paid"] + report.answers["cancel 200 cancelled"] > 0
    assert report.server_errors == 0
    await server.stop()


async def test_cli_names_a_violated_invariant(start_server: StartServer, tmp_path: Path) -> None:
    """A server that answers 503 under the scenario's load fails `no 5xx`: exit 1, the invariant named."""
    server = await start_server(SALE + "\n[limits]\nmax_inflight = 1\n")
    path = tmp_path / "against.json"
    path.write_text(json.dumps(SCENARIO))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flashsale.transport",
        "replay",
        str(path),
        "--against",
        server.url,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    lines = out.decode().splitlines()
    assert lines[0] == f"scenario   against against {server.url}"
    violated = [line for line in lines if line.startswith("VIOLATED")]
    assert len(violated) == 1
    assert violated[0].startswith("VIOLATED   no 5xx: ")
    assert "answers were 5xx" in violated[0]
    await server.stop()


ROOM_SALE = """
[[sku]]
id = "console"
stock = 3
per_user_limit = 1

[waiting_room]
opens_at = 2025-12-31T00:00:00Z
starts_at = 2026-01-01T00:00:00Z
admit_rate = 1000
admit_burst = 1000
heartbeat = 0.2
"""


async def test_room_traffic_goes_to_a_live_room(start_server: StartServer, tmp_path: Path) -> None:
    """Joins join, polls fetch the pass, purchases carry it (or are turned away without one), a crowd of the room
    joins and waits first; recorded room ticks are the server's own business (skipped)."""
    server = await start_server(ROOM_SALE)
    buyers = ["u1", "u2"]
    scenario = {
        "flashsale_scenario": 1,
        "name": "room-against",
        "config": {
            "sku": [{"id": "console", "stock": 3, "per_user_limit": 1}],
            "waiting_room": {"opens_at": "2025-12-31T00:00:00Z", "starts_at": "2026-01-01T00:00:00Z", "heartbeat": 0.2},
        },
        "traffic": [
            *({"at": 0.05, "op": "join", "user": u, "ticket": "recorded-elsewhere"} for u in buyers),
            {"at": 0.1, "op": "room_tick"},
            *({"at": 0.3, "op": "poll", "user": u} for u in buyers),
            {"at": 0.4, "user": "u1", "sku": "console"},  # with the pass u1's poll returned
            {"at": 0.4, "user": "u2", "sku": "console", "pass": True},
            {"at": 0.4, "user": "bot", "sku": "console"},  # never joined: no pass
            {"at": 0.4, "op": "poll", "user": "bot"},  # no ticket to poll
        ],
        "generators": [
            {"name": "crowd", "seed": 3, "users": 4, "sku": "console", "room": True,
             "arrival": {"pattern": "burst", "start": 0.5, "duration": 0.1}},
        ],
    }  # fmt: skip
    path = tmp_path / "room.json"
    path.write_text(json.dumps(scenario))
    report = await run_against(load_scenario(path), server.url, concurrency=8)
    assert report.violations == []
    assert report.skipped == {"room_tick": 1, "poll: no ticket": 1}
    assert report.answers["403 admission_required"] == 1  # the bot
    assert report.answers["join 201"] == 2 + 4
    assert report.answers["200 reserved"] == 3  # u1, u2 and the first crowd buyer the door let in
    assert report.answers["409 sold_out"] + report.answers["join 409"] >= 1  # the rest: sold out, or a closed room
    await server.stop()
