"""The poll lane: the usual ticket poll answered before routing, everything else left to the routed handler.

The lane (transport/_room.py, ``poll_lane``) must answer exactly what the
routed ``GET /v1/room/tickets/{ticket}`` answers, and must leave every
request it does not fully understand, and every refusal, to that handler
without changing anything first. Each test counts what the lane answered.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from flashsale import AuthConfig, Config, ManualClock, SaleEngine, ServerConfig, SkuConfig, StoreConfig
from flashsale.config import RoomConfig
from flashsale.transport import create_app
from flashsale.transport._handlers import LANES

from .conftest import OPENS, STARTS, engine_of, join

Counted = tuple[TestClient[Any, Any], list[int]]


async def _client(aiohttp_client: Any, tmp_path: Path, clock: ManualClock, **config: Any) -> Counted:
    """A room server whose lane counts the polls it answered (``counts[0]``) and the polls it left (``counts[1]``)."""
    cfg = Config(
        skus=(SkuConfig("moutai-53", stock=100),),
        store=StoreConfig(path=str(tmp_path / "orders.db")),
        tick_interval=0.0,
        waiting_room=RoomConfig(opens_at=OPENS, starts_at=STARTS, admit_rate=1.0, admit_burst=1),
        **config,
    )
    app = create_app(cfg, engine=SaleEngine(cfg, clock=clock))
    counts = [0, 0]
    (lane,) = app[LANES]

    def counting(request: web.Request) -> web.StreamResponse | None:
        answer = lane(request)
        if request.path.startswith("/v1/room/tickets/"):
            counts[answer is None] += 1
        return answer

    app[LANES][0] = counting
    return await aiohttp_client(app), counts


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(OPENS)


async def test_the_usual_poll_takes_the_lane_and_answers_as_the_route(
    aiohttp_client: Any, tmp_path: Path, clock: ManualClock
) -> None:
    """Same status, body and request id whether the lane or the router answers; the poll is a heartbeat either way."""
    client, counts = await _client(aiohttp_client, tmp_path, clock)
    status, joined = await join(client, "alice")
    assert status == 201
    ticket = joined["ticket"]
    lane = await client.get(f"/v1/room/tickets/{ticket}?user=alice", headers={"X-Request-Id": "poll-1"})
    assert counts == [1, 0]
    # A second query parameter is not the lane's: the router answers, from the same published board.
    routed = await client.get(f"/v1/room/tickets/{ticket}?user=alice&_=1", headers={"X-Request-Id": "poll-2"})
    assert counts == [1, 1]
    assert (lane.status, routed.status) == (200, 200)
    assert await lane.read() == await routed.read()
    assert (lane.headers["X-Request-Id"], routed.headers["X-Request-Id"]) == ("poll-1", "poll-2")
    assert lane.headers["Content-Type"] == routed.headers["Content-Type"] == "application/json"
    # A request id that is not sane is replaced, as on every route.
    fresh = await client.get(f"/v1/room/tickets/{ticket}?user=alice", headers={"X-Request-Id": "x" * 129})
    assert counts == [2, 1]
    assert fresh.headers["X-Request-Id"] != "x" * 129
    assert 0 < len(fresh.headers["X-Request-Id"]) <= 128
    # The lane's polls count on /metrics as the route's.
    text = await (await client.get("/metrics")).text()
    counted = [
        s
        for s in text.splitlines()
        if s.startswith("flashsale_http_request_duration_seconds_count{") and 'route="ticket"' in s
    ]
    assert counted == ['flashsale_http_request_duration_seconds_count{result="200",route="ticket"} 3.0']


async def test_a_lane_poll_is_the_tickets_heartbeat(aiohttp_client: Any, tmp_path: Path, clock: ManualClock) -> None:
    """Polled through the lane, a ticket stays live past three heartbeats; one never polled expires."""
    client, counts = await _client(aiohttp_client, tmp_path, clock)
    engine = engine_of(client)
    tickets = {}
    for user in ("first", "alive", "silent"):
        tickets[user] = (await join(client, user))[1]["ticket"]
    clock.set(STARTS)
    await engine.room_tick()  # the draw; one admission a second from here
    heartbeat = engine.config.waiting_room.heartbeat  # type: ignore[union-attr]
    for _ in range(4):
        clock.advance(heartbeat)
        for user in ("first", "alive"):
            resp = await client.get(f"/v1/room/tickets/{tickets[user]}?user={user}")
            assert resp.status == 200
        await engine.room_tick()
    assert counts[0] == 8
    states = {}
    for user in ("first", "alive", "silent"):
        states[user] = (await (await client.get(f"/v1/room/tickets/{tickets[user]}?user={user}")).json())["state"]
    assert states["silent"] == "expired"
    assert states["alive"] in ("waiting", "admitted")


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/v1/room/tickets/{t}?user=bob", 404, "unknown_ticket"),  # another buyer's ticket
        ("/v1/room/tickets/nosuchticket?user=alice", 404, "unknown_ticket"),
        ("/v1/room/tickets/{t}", 400, "invalid_request"),  # no buyer named (trusted mode)
        ("/v1/room/tickets/{t}?user=", 400, "invalid_request"),
        ("/v1/room/tickets/", 404, "not_found"),
        ("/v1/room/tickets/{t}/", 404, "not_found"),
    ],
)
async def test_refusals_are_left_to_the_route(
    aiohttp_client: Any, tmp_path: Path, clock: ManualClock, path: str, status: int, error: str
) -> None:
    """The lane answers no refusal: the routed handler gives each its JSON error, and nothing changed."""
    client, counts = await _client(aiohttp_client, tmp_path, clock)
    ticket = (await join(client, "alice"))[1]["ticket"]
    before = engine_of(client).room_status()
    resp = await client.get(path.format(t=ticket))
    assert (resp.status, (await resp.json())["error"]) == (status, error)
    assert counts[0] == 0
    assert engine_of(client).room_status() == before


@pytest.mark.parametrize(
    "shape",
    [
        "/v1/room/tickets/{t}?user=al%2Bce",  # an escaped query ("al+ce"): the full parser's
        "/v1/room/tickets/{t}?user=alice&x=1",
        "/v1/room/tickets/%7Bt%7D?user=alice",  # an escaped path
    ],
)
async def test_unusual_shapes_are_left_to_the_route(
    aiohttp_client: Any, tmp_path: Path, clock: ManualClock, shape: str
) -> None:
    client, counts = await _client(aiohttp_client, tmp_path, clock)
    buyer = "al+ce" if "%2B" in shape else "alice"
    ticket = (await join(client, buyer))[1]["ticket"]
    resp = await client.get(shape.replace("{t}", ticket))
    assert counts == [0, 1]
    assert resp.status == (404 if "%7B" in shape else 200)
    assert resp.headers["Content-Type"] == "application/json"


async def test_other_methods_and_event_streams_are_not_the_lanes(
    aiohttp_client: Any, tmp_path: Path, clock: ManualClock
) -> None:
    client, counts = await _client(aiohttp_client, tmp_path, clock)
    ticket = (await join(client, "alice"))[1]["ticket"]
    resp = await client.post(f"/v1/room/tickets/{ticket}?user=alice")
    assert (resp.status, (await resp.json())["error"]) == (405, "method_not_allowed")
    resp = await client.head(f"/v1/room/tickets/{ticket}?user=alice")
    assert resp.status == 200
    assert counts[0] == 0


async def test_header_mode_polls_take_the_lane(aiohttp_client: Any, tmp_path: Path, clock: ManualClock) -> None:
    """In header mode the lane names the buyer from the trusted header; a poll without it goes to the route's 401."""
    client, counts = await _client(
        aiohttp_client,
        tmp_path,
        clock,
        server=ServerConfig(trusted_proxies=("127.0.0.1",)),
        auth=AuthConfig(mode="header"),
    )
    alice = {"X-User-Id": "alice"}
    ticket = (await (await client.post("/v1/room/join", json={}, headers=alice)).json())["ticket"]
    resp = await client.get(f"/v1/room/tickets/{ticket}", headers=alice)
    assert (resp.status, counts) == (200, [1, 0])
    resp = await client.get(f"/v1/room/tickets/{ticket}")
    assert (resp.status, (await resp.json())["error"]) == (401, "unauthenticated")
    resp = await client.get(f"/v1/room/tickets/{ticket}?user=bob", headers=alice)
    assert (resp.status, (await resp.json())["error"]) == (403, "forbidden")
    assert counts[0] == 1


async def test_a_sale_without_a_room_has_no_lane(make_client: Callable[..., Any]) -> None:
    client = await make_client()
    assert client.app[LANES] == []
    resp = await client.get("/v1/room/tickets/abc?user=alice")
    assert (resp.status, (await resp.json())["error"]) == (404, "not_found")
