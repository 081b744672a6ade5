"""Recording a sale with a waiting room: the replay of the file makes the live room's draw and admissions."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp.test_utils import TestClient

from flashsale import (
    Config,
    ManualClock,
    SaleEngine,
    ScenarioRecorder,
    SkuConfig,
    StoreConfig,
    from_datetime,
    load_scenario,
    replay,
    wall_clock,
)
from flashsale._clock import to_datetime
from flashsale.config import RoomConfig
from flashsale.transport import create_app
from tests.scenarios.conftest import StartServer

T0 = 1_767_225_600_000_000
US = 1_000_000
TTL = 60


def _admissions(log: tuple[Any, ...], start: int) -> dict[str, int]:
    """ticket -> when the replayed room admitted it (µs since the epoch), from the decisions."""
    return {t: start + d[1] for d in log if d[2] == "admit" for t in d[8].split(",")}


def _draw(log: tuple[Any, ...]) -> tuple[str, list[str]]:
    (seed, order), *_ = [(d[7], d[8].split(",")) for d in log if d[2] == "draw"]
    return seed, order


async def test_a_recorded_room_replays_its_draw_and_admissions(aiohttp_client: Any, tmp_path: Path) -> None:
    """Joins batched on the loop, polls, ticks and purchases with passes: the replay admits the same tickets then.

    Joins keep arriving while the room admits with credit to spare, where a
    batch of joins must decide as its joins would one by one.
    """
    clock = ManualClock(T0)
    room = RoomConfig(opens_at=T0, starts_at=T0 + 2 * US, admit_rate=3.0, admit_burst=2, heartbeat=0.5, pass_ttl=TTL)
    config = Config(
        skus=(SkuConfig("a", 100, per_user_limit=1),),
        store=StoreConfig(path=str(tmp_path / "live.db")),
        tick_interval=0.0,
        waiting_room=room,
    )
    path = tmp_path / "live.jsonl"
    recorder = ScenarioRecorder(path, config, T0)
    engine = SaleEngine(config, clock=clock, recorder=recorder)
    client: TestClient[Any, Any] = await aiohttp_client(create_app(config, engine=engine))
    tickets: dict[str, str] = {}
    polled: list[tuple[str, str]] = []  # (buyer, state), in order
    ticks: list[tuple[int, tuple[str, ...]]] = []  # (at µs from T0, tickets admitted since the tick before)
    bought: dict[str, str] = {}

    async def tick() -> None:
        report = await engine.room_tick()
        ticks.append((clock.now - T0, report.admitted))

    async def join(user: str) -> None:
        async with client.post("/v1/room/join", json={"user": user}) as resp:
            answer = await resp.json()
        if resp.status in (200, 201):
            tickets[user] = answer["ticket"]
        else:  # the last unit sold: the room closed
            assert (resp.status, answer["error"]) == (409, "room_closed")

    async def poll_and_buy(user: str) -> None:
        async with client.get(f"/v1/room/tickets/{tickets[user]}", params={"user": user}) as resp:
            view = await resp.json()
        polled.append((user, view["state"]))
        if view["pass"] and user not in bought:
            body = {"sku": "a", "user": user}
            async with client.post("/v1/purchase", json=body, headers={"Admission-Pass": view["pass"]}) as resp:
                answer = await resp.json()
            bought[user] = answer.get("result") or answer["error"]

    for n in range(6):  # the pre-queue
        await join(f"early-{n}")
        clock.advance(0.1)
    clock.set(T0 + 2 * US)
    await tick()  # the draw, and the burst
    for step in range(40):
        clock.advance(0.05)
        await asyncio.gather(*(join(f"late-{step}-{k}") for k in range(2)))  # one batch, or two
        if step % 4 == 0:
            await tick()
        if step % 5 == 0:
            for user in list(tickets):
                await poll_and_buy(user)
    clock.advance(3.0)  # silent tickets are dead by now: skipped at their turn
    await tick()
    draw = await (await client.get("/v1/room/draw")).json()
    await client.close()
    recorder.close()

    scenario = load_scenario(path)
    assert scenario.room_seed == bytes.fromhex(draw["seed"])
    result = await replay(scenario, keep_log=True)
    assert _draw(result.log) == (draw["seed"], draw["tickets"])
    reported = {d[1]: tuple(d[8].split(",")) for d in result.log if d[2] == "admit"}
    assert [(at, reported.get(at, ())) for at, _ in ticks] == ticks
    assert sum(len(t) for _, t in ticks) == sum(len(t) for t in reported.values()) > 0
    # A live poll reads the room as last published, which may lag a join batch still on its way to the room:
    # a replayed poll sees every decision of its instant. So each poll shows the same, or an admission early.
    replayed_polls = [(d[3], d[7]) for d in result.log if d[2] == "poll"]
    assert [u for u, _ in replayed_polls] == [u for u, _ in polled]
    for (user, live), (_, again) in zip(polled, replayed_polls, strict=True):
        assert again == live or (live, again) == ("waiting", "admitted"), user
    replayed = {d[3]: d[7] for d in result.log if d[2] == "purchase"}
    assert replayed == bought
    assert set(bought.values()) == {"reserved"}
    assert result.ops["room:expired"] > 0
    assert (await replay(scenario)).digest == result.digest


def _micros(iso: str) -> int:
    return from_datetime(datetime.fromisoformat(iso.replace("Z", "+00:00")))


async def test_serve_record_replays_a_room_on_real_time(start_server: StartServer, tmp_path: Path) -> None:
    """`flashsale serve --record` with a room on real time: buyers join the pre-queue, follow their tickets as
    event streams, buy with the pass pushed to them; the file replays to the live draw, the live admission of
    every ticket to the microsecond, and every live purchase answer."""
    now = wall_clock()
    starts = to_datetime(now + 1_500_000).isoformat().replace("+00:00", "Z")
    opens = to_datetime(now - 60 * US).isoformat().replace("+00:00", "Z")
    server = await start_server(
        f"""
[[sku]]
id = "console"
stock = 6
per_user_limit = 1

[waiting_room]
opens_at = {opens}
starts_at = {starts}
admit_rate = 4
admit_burst = 2
heartbeat = 1
pass_ttl = {TTL}
""",
        "--record",
        "rec.jsonl",
    )
    users = [f"buyer-{n}" for n in range(8)]
    async with aiohttp.ClientSession() as session:
        tickets = {}
        for user in users:
            async with session.post(f"{server.url}/v1/room/join", json={"user": user}) as resp:
                assert resp.status == 201
                tickets[user] = (await resp.json())["ticket"]

        async def admitted(user: str) -> dict[str, Any]:
            url = f"{server.url}/v1/room/tickets/{tickets[user]}/events"
            async with session.get(url, params={"user": user}) as resp:
                async for line in resp.content:
                    if line.startswith(b"data: "):
                        view: dict[str, Any] = orjson.loads(line[6:])
                        if view["state"] == "admitted":
                            return view
            raise AssertionError(f"{user}'s stream ended before admission")

        async with asyncio.timeout(20):
            views = await asyncio.gather(*(admitted(u) for u in users))
        bought = {}
        for user, view in zip(users, views, strict=True):
            body = {"sku": "console", "user": user}
            headers = {"Admission-Pass": view["pass"]}
            async with session.post(f"{server.url}/v1/purchase", json=body, headers=headers) as resp:
                answer = await resp.json()
            bought[user] = answer.get("result") or answer["error"]
        async with session.get(f"{server.url}/v1/room/draw") as resp:
            draw = await resp.json()
    await server.stop()

    scenario = load_scenario(tmp_path / "rec.jsonl")
    result = await replay(scenario, keep_log=True)
    assert _draw(result.log) == (draw["seed"], draw["tickets"])
    admitted_at = _admissions(result.log, scenario.start)
    assert {tickets[u]: admitted_at[tickets[u]] + TTL * US for u in users} == {
        tickets[u]: _micros(v["pass_expires_at"]) for u, v in zip(users, views, strict=True)
    }
    assert {d[3]: d[7] for d in result.log if d[2] == "purchase"} == bought
    assert list(bought.values()).count("reserved") == 6
