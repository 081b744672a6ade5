"""The room's fast lanes: the usual poll and the usual join answered before routing, the rest left to the route.

A lane (transport/_room.py, ``poll_lane`` and ``join_lane``) must answer
exactly what its routed handler answers, and must leave every request it
does not fully understand, and every refusal, to that handler without
changing anything first. Each test counts what the lanes answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request

from flashsale import AuthConfig, Config, ManualClock, SaleEngine, ServerConfig, SkuConfig, StoreConfig
from flashsale.actors._room_passes import solve
from flashsale.config import RoomConfig
from flashsale.transport import create_app
from flashsale.transport._handlers import LANES

from .conftest import OPENS, STARTS, engine_of, join

Counted = tuple[TestClient[Any, Any], list[int]]
ROOM: dict[str, Any] = {"opens_at": OPENS, "starts_at": STARTS, "admit_rate": 1.0, "admit_burst": 1}
JOINS: dict[int, list[int]] = {}
"""Per client (by id): the joins its join lane answered and those it left."""


async def _client(
    aiohttp_client: Any, tmp_path: Path, clock: ManualClock, room: dict[str, Any] | None = None, **config: Any
) -> Counted:
    """A room server whose poll lane counts the polls it answered (``counts[0]``) and left (``counts[1]``).

    Its join lane counts in ``JOINS[id(client)]`` the same way.
    """
    cfg = Config(
        skus=(SkuConfig("moutai-53", stock=100),),
        store=StoreConfig(path=str(tmp_path / "orders.db")),
        tick_interval=0.0,
        waiting_room=RoomConfig(**{**ROOM, **(room or {})}),
        **config,
    )
    app = create_app(cfg, engine=SaleEngine(cfg, clock=clock))
    counts, joins = [0, 0], [0, 0]
    purchase_lane, poll_lane, join_lane = app[LANES]

    def counting(request: web.Request) -> web.StreamResponse | None:
        answer = poll_lane(request)
        assert answer is None or isinstance(answer, web.StreamResponse)
        if request.path.startswith("/v1/room/tickets/"):
            counts[answer is None] += 1
        return answer

    async def joined(answer: Awaitable[web.StreamResponse | None]) -> web.StreamResponse | None:
        got = await answer
        joins[got is None] += 1
        return got

    def counting_joins(request: web.Request) -> Awaitable[web.StreamResponse | None] | None:
        answer = join_lane(request)
        assert not isinstance(answer, web.StreamResponse)
        if answer is None:
            if request.path == "/v1/room/join":
                joins[1] += 1
            return None
        return joined(answer)

    app[LANES][:] = [purchase_lane, counting, counting_joins]
    client = await aiohttp_client(app)
    JOINS[id(client)] = joins
    return client, counts


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
    """Polled through the lane, a waiting ticket stays live past three heartbeats; one never polled expires."""
    client, counts = await _client(aiohttp_client, tmp_path, clock, room={"admit_rate": 0.001})
    engine = engine_of(client)
    await join(client, "first")
    clock.set(STARTS)
    await engine.room_tick()  # the draw: "first" takes the one admission of the burst; the next is 1,000 s away
    tickets = {user: (await join(client, user))[1]["ticket"] for user in ("alive", "silent")}
    heartbeat = engine.config.waiting_room.heartbeat  # type: ignore[union-attr]
    for _ in range(4):
        clock.advance(heartbeat)
        resp = await client.get(f"/v1/room/tickets/{tickets['alive']}?user=alive")
        assert resp.status == 200
        await engine.room_tick()
    assert counts == [4, 0]
    states = {}
    for user, ticket in tickets.items():
        states[user] = (await (await client.get(f"/v1/room/tickets/{ticket}?user={user}")).json())["state"]
    assert states == {"alive": "waiting", "silent": "expired"}


@pytest.mark.parametrize(
    "case",
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
    aiohttp_client: Any, tmp_path: Path, clock: ManualClock, case: tuple[str, int, str]
) -> None:
    """The lane answers no refusal: the routed handler gives each its JSON error, and nothing changed."""
    path, status, error = case
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


async def test_a_sale_without_a_room_has_no_room_lanes(make_client: Callable[..., Any]) -> None:
    client = await make_client()
    assert len(client.app[LANES]) == 1  # the purchase's
    resp = await client.get("/v1/room/tickets/abc?user=alice")
    assert (resp.status, (await resp.json())["error"]) == (404, "not_found")


# -- joins -------------------------------------------------------------------------


async def _chunked(body: bytes) -> AsyncIterator[bytes]:
    yield body  # sent with Transfer-Encoding: chunked: no Content-Length, so not the lane's


async def test_the_usual_join_takes_the_lane_and_answers_as_the_route(
    aiohttp_client: Any, tmp_path: Path, clock: ManualClock
) -> None:
    """201 with a new ticket, 200 with the same ticket again; the route's joins queue behind the lane's."""
    client, _ = await _client(aiohttp_client, tmp_path, clock)
    joins = JOINS[id(client)]
    first = await client.post("/v1/room/join", json={"user": "alice"}, headers={"X-Request-Id": "join-1"})
    again = await client.post("/v1/room/join", json={"user": "alice"})
    assert joins == [2, 0]
    routed = await client.post("/v1/room/join", data=_chunked(b'{"user": "bob"}'), headers={"X-Request-Id": "join-2"})
    assert joins == [2, 1]
    a, b, c = await first.json(), await again.json(), await routed.json()
    assert (first.status, again.status, routed.status) == (201, 200, 201)
    assert (first.headers["X-Request-Id"], routed.headers["X-Request-Id"]) == ("join-1", "join-2")
    assert a == b
    assert a.keys() == c.keys() == {"ticket", "state", "position", "eta_seconds", "poll_after"}
    assert (a["state"], c["state"]) == ("pre_queue", "pre_queue")
    await engine_of(client).room_tick()
    assert engine_of(client).room_status().waiting == 2
    text = await (await client.get("/metrics")).text()
    counted = sorted(
        s
        for s in text.splitlines()
        if s.startswith("flashsale_http_request_duration_seconds_count{") and 'route="join"' in s
    )
    assert counted == [
        'flashsale_http_request_duration_seconds_count{result="200",route="join"} 1.0',
        'flashsale_http_request_duration_seconds_count{result="201",route="join"} 2.0',
    ]


@pytest.mark.parametrize(
    "case",
    [
        (b"{not json", 400, "invalid_request"),
        (b'["alice"]', 400, "invalid_request"),
        (b'{"user": "alice", "shoe": 1}', 400, "invalid_request"),
        (b'{"user": ""}', 400, "invalid_request"),
        (b'{"user": 7}', 400, "invalid_request"),
        (b'{"user": "x' + b"y" * 200 + b'"}', 400, "invalid_request"),
        (b'{"user": "alice", "challenge": "c", "nonce": "1"}', 400, "invalid_request"),  # no proof of work here
        (b'{"user": "' + b"z" * 5000 + b'"}', 413, "payload_too_large"),
    ],
)
async def test_join_refusals_are_left_to_the_route(
    aiohttp_client: Any, tmp_path: Path, clock: ManualClock, case: tuple[bytes, int, str]
) -> None:
    """Each bad join gets the route's JSON error; the lane answered none and the room is as it was."""
    body, status, error = case
    client, _ = await _client(aiohttp_client, tmp_path, clock)
    before = engine_of(client).room_status()
    resp = await client.post("/v1/room/join", data=body, headers={"Content-Type": "application/json"})
    assert (resp.status, (await resp.json())["error"]) == (status, error)
    assert JOINS[id(client)][0] == 0
    await engine_of(client).room_tick()
    assert engine_of(client).room_status() == before


async def test_a_join_before_the_room_opens_is_the_routes_409(aiohttp_client: Any, tmp_path: Path) -> None:
    client, _ = await _client(aiohttp_client, tmp_path, ManualClock(OPENS - 1))
    status, body = await join(client, "alice")
    assert (status, body["error"]) == (409, "room_not_open")
    assert JOINS[id(client)] == [0, 1]


async def test_joins_with_proof_of_work_take_the_route(aiohttp_client: Any, tmp_path: Path, clock: ManualClock) -> None:
    """With ``pow_bits`` a join without a proof is refused by the route; one with a proof is the route's too."""
    client, _ = await _client(aiohttp_client, tmp_path, clock, room={"pow_bits": 4})
    status, body = await join(client, "alice")
    assert (status, body["error"]) == (400, "invalid_proof")
    c = await (await client.get("/v1/room/challenge")).json()
    status, body = await join(client, "alice", challenge=c["challenge"], nonce=solve(c["challenge"], 4))
    assert status == 201
    assert JOINS[id(client)] == [0, 2]


async def test_the_join_lane_takes_a_memory_rooms_join_before_reading_it(
    aiohttp_client: Any, tmp_path: Path, clock: ManualClock
) -> None:
    """Its first look decides on the method, path and size alone (a shared room's lane: tests/distributed)."""
    client, _ = await _client(aiohttp_client, tmp_path, clock)
    lane = client.app[LANES][2]
    taken = lane(make_mocked_request("POST", "/v1/room/join", headers={"Content-Length": "0"}, app=client.app))
    assert taken is not None
    assert not isinstance(taken, web.StreamResponse)
    assert await taken is None  # an empty body is not JSON: left to the route, nothing changed
    for method, path in (("GET", "/v1/room/join"), ("POST", "/v1/room/join?x=1"), ("POST", "/v1/purchase")):
        assert lane(make_mocked_request(method, path, headers={"Content-Length": "0"}, app=client.app)) is None
