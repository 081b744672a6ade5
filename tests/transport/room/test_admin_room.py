"""The admin API's room routes through a real server: auth, absence, bad input, effect, logs, record and replay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from flashsale import (
    Config,
    ManualClock,
    SaleEngine,
    ScenarioError,
    ScenarioRecorder,
    SkuConfig,
    StoreConfig,
    parse_scenario,
    replay,
)
from flashsale.config import AdminConfig, RoomConfig
from flashsale.transport import create_app

from .conftest import STARTS, T0, US, engine_of, join

TOKEN = "s3cret-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROUTES = [
    ("POST", "/v1/admin/room/pause", None),
    ("POST", "/v1/admin/room/resume", None),
    ("PUT", "/v1/admin/room", {"admit_rate": 5}),
]


async def room_client(
    aiohttp_client: Any,
    tmp_path: Path,
    clock: ManualClock,
    *,
    token: str | None = TOKEN,
    record: Callable[[Config], ScenarioRecorder] | None = None,
    **room: Any,
) -> TestClient[Any, Any]:
    settings: dict[str, Any] = {"opens_at": T0, "starts_at": STARTS, "admit_rate": 1.0, "admit_burst": 1}
    settings.update(room)
    config = Config(
        skus=(SkuConfig("moutai-53", stock=100, per_user_limit=2),),
        store=StoreConfig(path=str(tmp_path / "orders.db")),
        tick_interval=0.0,
        waiting_room=RoomConfig(**settings, heartbeat=600.0),
        admin=AdminConfig(token=token),
    )
    engine = SaleEngine(config, clock=clock, recorder=None if record is None else record(config))
    return await aiohttp_client(create_app(config, engine=engine))  # type: ignore[no-any-return]


async def room(client: TestClient[Any, Any]) -> dict[str, Any]:
    return await (await client.get("/v1/room")).json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_room_routes_are_404_without_an_admin_token(
    aiohttp_client: Any, tmp_path: Path, method: str, path: str, body: Any
) -> None:
    """With a room but no [admin] token the room routes do not exist: a JSON 404, and the room is unchanged."""
    client = await room_client(aiohttp_client, tmp_path, ManualClock(STARTS), token=None)
    before = await room(client)
    resp = await client.request(method, path, json=body, headers=AUTH)
    assert (resp.status, (await resp.json())["error"]) == (404, "not_found")
    assert await room(client) == before


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_room_routes_need_the_bearer_token(
    aiohttp_client: Any, tmp_path: Path, method: str, path: str, body: Any
) -> None:
    """Without the exact bearer token each room route is 401 unauthenticated and the room is unchanged."""
    client = await room_client(aiohttp_client, tmp_path, ManualClock(STARTS))
    before = await room(client)
    for header in (None, "Bearer wrong-token-of-some-length", TOKEN, "Basic " + TOKEN):
        headers = {} if header is None else {"Authorization": header}
        resp = await client.request(method, path, json=body, headers=headers)
        assert (resp.status, (await resp.json())["error"]) == (401, "unauthenticated"), header
    assert await room(client) == before


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_room_routes_without_a_room_are_409_not_configured(
    make_client: Any, method: str, path: str, body: Any
) -> None:
    """With an admin token but no [waiting_room], each room route answers 409 not_configured."""
    client = await make_client(admin_token=TOKEN)
    resp = await client.request(method, path, json=body, headers=AUTH)
    answer = await resp.json()
    assert (resp.status, answer["error"]) == (409, "not_configured")
    assert "waiting_room" in answer["detail"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b"{}",
        b'{"admit_rate": 0}',
        b'{"admit_rate": -1}',
        b'{"admit_rate": "5"}',
        b'{"admit_rate": true}',
        b'{"admit_rate": null}',
        b'{"admit_rate": 1000001}',
        b'{"admit_rate": 5, "extra": 1}',
    ],
)
async def test_bad_rate_bodies_are_400_and_change_nothing(aiohttp_client: Any, tmp_path: Path, body: bytes) -> None:
    """PUT /v1/admin/room refuses anything but {"admit_rate": 0 < r <= 1e6} with a JSON 400; the rate stays."""
    client = await room_client(aiohttp_client, tmp_path, ManualClock(STARTS))
    before = await room(client)
    resp = await client.put("/v1/admin/room", data=body, headers=AUTH)
    answer = await resp.json()
    assert (resp.status, answer["error"]) == (400, "invalid_request")
    assert answer["detail"]
    assert await room(client) == before


async def test_pause_admits_nobody_and_resume_and_rate_pace_again(aiohttp_client: Any, tmp_path: Path) -> None:
    """A paused room admits nobody on its next ticks; resumed it admits again; a new rate paces admission."""
    clock = ManualClock(STARTS)
    client = await room_client(aiohttp_client, tmp_path, clock)
    engine = engine_of(client)
    await engine.room_tick()
    for n in range(30):
        assert (await join(client, f"p{n}"))[0] == 201
    assert len((await engine.room_tick()).admitted) == 1  # the burst
    resp = await client.post("/v1/admin/room/pause", headers=AUTH)
    paused = await resp.json()
    assert (resp.status, paused["state"]) == (200, "paused")
    assert paused == await room(client)  # the answer is GET /v1/room's
    for _ in range(5):
        clock.advance(1.0)
        assert (await engine.room_tick()).admitted == ()
    resp = await client.post("/v1/admin/room/resume", headers=AUTH)
    assert (resp.status, (await resp.json())["state"]) == (200, "admitting")
    clock.advance(1.0)
    assert len((await engine.room_tick()).admitted) == 1  # 1/s, nothing saved up while paused
    resp = await client.put("/v1/admin/room", json={"admit_rate": 10}, headers=AUTH)
    changed = await resp.json()
    assert (resp.status, changed["admit_rate"], changed["state"]) == (200, 10.0, "admitting")
    admitted = 0
    for _ in range(10):  # one second at 10/s in 0.1 s steps
        clock.advance(0.1)
        admitted += len((await engine.room_tick()).admitted)
    assert admitted == 10
    assert (await room(client))["admitted"] == 12


async def test_each_room_action_is_one_log_line_and_counted(aiohttp_client: Any, tmp_path: Path) -> None:
    """Each room action logs one 'admin action' (who, what, before, after) and counts in the metrics."""
    client = await room_client(aiohttp_client, tmp_path, ManualClock(STARTS))
    with capture_logs() as logs:
        await client.post("/v1/admin/room/pause", headers={**AUTH, "X-Operator": "alice"})
        await client.post("/v1/admin/room/resume", headers=AUTH)
        await client.put("/v1/admin/room", json={"admit_rate": 2.5}, headers=AUTH)
    actions = [e for e in logs if e["event"] == "admin action"]
    assert [(a["action"], a["target"]) for a in actions] == [
        ("room_pause", "room"),
        ("room_resume", "room"),
        ("room_rate", "room"),
    ]
    assert actions[0]["who"] == {"ip": "127.0.0.1", "operator": "alice"}
    assert (actions[0]["before"]["state"], actions[0]["after"]["state"]) == ("admitting", "paused")
    assert (actions[2]["before"]["admit_rate"], actions[2]["after"]["admit_rate"]) == (1.0, 2.5)
    assert TOKEN not in repr(logs)
    text = await (await client.get("/metrics")).text()
    for action in ("room_pause", "room_resume", "room_rate"):
        assert f'flashsale_admin_actions_total{{action="{action}"}} 1.0' in text


async def test_the_dashboard_session_may_set_the_rate(aiohttp_client: Any, tmp_path: Path) -> None:
    """The dashboard's room-rate form (session cookie + its header) changes the rate; /dashboard/state shows it."""
    client = await room_client(aiohttp_client, tmp_path, ManualClock(STARTS))
    assert (await client.post("/dashboard/session", json={"token": TOKEN})).status == 204
    resp = await client.put("/v1/admin/room", json={"admit_rate": 40}, headers={"X-Flashsale-Dashboard": "1"})
    assert (resp.status, (await resp.json())["admit_rate"]) == (200, 40.0)
    state = await (await client.get("/dashboard/state")).json()
    assert state["room"]["admit_rate"] == 40.0


async def test_dashboard_state_shows_the_room(aiohttp_client: Any, tmp_path: Path) -> None:
    """/dashboard/state's room: state, waiting, admitted, admit_rate, admitted per second, time to clear the queue."""
    clock = ManualClock(STARTS)
    client = await room_client(aiohttp_client, tmp_path, clock, admit_rate=4.0)
    engine = engine_of(client)
    await engine.room_tick()
    for n in range(9):
        await join(client, f"w{n}")
    await engine.room_tick()  # the burst: one admitted, eight waiting
    assert (await client.post("/dashboard/session", json={"token": TOKEN})).status == 204
    state = await (await client.get("/dashboard/state")).json()
    assert state["room"] == {
        "state": "admitting",
        "paused": False,
        "admit_rate": 4.0,
        "waiting": 8,
        "admitted": 1,
        "admitted_per_second": 0.0,
        "clear_seconds": 2.0,
    }
    await client.post("/v1/admin/room/pause", headers=AUTH)
    state = await (await client.get("/dashboard/state")).json()
    assert (state["room"]["state"], state["room"]["paused"], state["room"]["clear_seconds"]) == ("paused", True, None)
    overview = await (await client.get("/v1/admin/overview", headers=AUTH)).json()
    assert overview["room"] == state["room"]


async def test_recorded_room_actions_replay_the_same(aiohttp_client: Any, tmp_path: Path) -> None:
    """serve --record writes room_pause, room_resume and room_rate; a replay takes them at the same instants."""
    path = tmp_path / "live.jsonl"
    clock = ManualClock(STARTS)
    recorders: list[ScenarioRecorder] = []

    def record(config: Config) -> ScenarioRecorder:
        recorders.append(ScenarioRecorder(path, config, clock()))
        return recorders[0]

    client = await room_client(aiohttp_client, tmp_path, clock, record=record)
    await client.post("/v1/admin/room/pause", headers=AUTH)
    clock.advance(2.0)
    await client.put("/v1/admin/room", json={"admit_rate": 0}, headers=AUTH)  # refused: not recorded
    await client.put("/v1/admin/room", json={"admit_rate": 7.5}, headers=AUTH)
    clock.advance(1.5)
    await client.post("/v1/admin/room/resume", headers=AUTH)
    await client.close()
    recorders[0].close()
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()[1:]]
    seed = lines[-1].pop("seed")  # the recording ends on a tick; at or after starts_at it carries the seed
    assert lines == [
        {"at": 0.0, "op": "room_pause"},
        {"at": 2.0, "op": "room_rate", "rate": 7.5},
        {"at": 3.5, "op": "room_resume"},
        {"at": 3.5, "op": "room_tick"},
    ]
    scenario = parse_scenario(path.read_text(encoding="utf-8"), str(path), jsonl=True)
    assert scenario.room_seed == bytes.fromhex(seed)
    first, second = await replay(scenario, keep_log=True), await replay(scenario)
    assert first.digest == second.digest
    assert first.ops == {"room_pause:paused": 1, "room_rate:changed": 1, "room_resume:resumed": 1}
    steered = [(d[1], d[2], d[7], d[8]) for d in first.log]
    assert steered == [
        (0, "room_pause", "paused", "1.0 paused=True"),
        (2 * US, "room_rate", "changed", "7.5 paused=True"),
        (3_500_000, "room_resume", "resumed", "7.5 paused=False"),
        (3_500_000, "draw", seed, None),
    ]


def _scenario(traffic: list[dict[str, Any]]) -> str:
    return orjson.dumps(
        {
            "flashsale_scenario": 1,
            "name": "room-steered",
            "start": "2026-01-01T00:00:00Z",
            "config": {
                "sku": [{"id": "a", "stock": 100}],
                "waiting_room": {
                    "opens_at": "2026-01-01T00:00:00Z",
                    "starts_at": "2026-01-01T00:00:01Z",
                    "admit_rate": 1,
                    "admit_burst": 1,
                    "heartbeat": 600,
                },
                "engine": {"tick_interval": 0},
            },
            "traffic": [{"at": 0.5, "op": "join", "user": f"j{n}"} for n in range(20)] + traffic,
        }
    ).decode()


async def test_replayed_room_steering_changes_admissions() -> None:
    """In a replay a paused room admits nobody until resumed, and a new rate paces what follows."""
    steered = parse_scenario(
        _scenario(
            [
                {"at": 1.5, "op": "room_pause"},
                {"at": 5.05, "op": "room_resume"},
                {"at": 5.05, "op": "room_rate", "rate": 10},
                {"at": 6.55, "op": "room_pause"},
            ]
        ),
        "steered.json",
    )
    result = await replay(steered, keep_log=True)
    admits = [(d[1], d[5]) for d in result.log if d[2] == "admit"]
    assert admits[0] == (US, 1)  # the burst at the draw
    assert all(not 1_500_000 < at < 5_050_000 for at, _ in admits)  # paused
    assert all(at <= 6_550_000 for at, _ in admits)  # paused again, for good
    assert sum(n for at, n in admits if at > 5_050_000) == 15  # 1.5 s at 10/s
    plain = await replay(parse_scenario(_scenario([]), "plain.json"))
    assert plain.digest != result.digest


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"at": 1, "op": "room_rate"}, "needs 'rate'"),
        ({"at": 1, "op": "room_rate", "rate": 0}, "must be a number > 0"),
        ({"at": 1, "op": "room_pause", "sku": "a"}, "is not a field of a 'room_pause' event"),
    ],
)
def test_bad_room_events_are_refused(event: dict[str, Any], message: str) -> None:
    """A room_rate without a positive rate, or a room event with a foreign field, is a scenario error."""
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(_scenario([event]), "bad.json")
