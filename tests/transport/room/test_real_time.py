"""The waiting room on real time: the room ticks itself, event streams push admission and closing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from flashsale import SkuConfig, wall_clock

from .conftest import US, MakeRoom, buy, join, verify_draw


async def _events(client: TestClient[Any, Any], ticket: str, user: str) -> ClientResponse:
    resp = await client.get(f"/v1/room/tickets/{ticket}/events", params={"user": user})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return resp


async def _until(resp: ClientResponse, states: set[str]) -> dict[str, Any]:
    """Read events until one has a state in ``states``; returns it."""
    while True:
        line = await resp.content.readline()
        assert line, "the stream ended first"
        if line.startswith(b"data: "):
            event: dict[str, Any] = orjson.loads(line[6:])
            if event["state"] in states:
                return event


async def test_whole_lifecycle_on_real_time(make_room: MakeRoom) -> None:
    """Join the pre-queue, the draw at starts_at, admission pushed on the stream, a purchase with the pass."""
    now = wall_clock()
    client = await make_room(
        real_time=True, opens_at=now - US, starts_at=now + 300_000, admit_rate=4.0, admit_burst=1, heartbeat=5.0
    )
    tickets = {}
    for user in ("a", "b", "c"):
        status, body = await join(client, user)
        assert (status, body["state"]) == (201, "pre_queue")
        tickets[user] = body["ticket"]
    streams = {u: await _events(client, t, u) for u, t in tickets.items()}
    admitted: dict[str, tuple[float, dict[str, Any]]] = {}
    async with asyncio.timeout(10):
        for user, resp in streams.items():
            event = await _until(resp, {"admitted"})
            admitted[user] = (time.monotonic(), event)
    room = await (await client.get("/v1/room")).json()
    assert (room["state"], room["admitted"], room["waiting"]) == ("admitting", 3, 0)
    draw = await (await client.get("/v1/room/draw")).json()
    assert verify_draw(draw["seed"], room["commitment"], draw["tickets"])
    for user, (_, event) in admitted.items():
        resp = await buy(client, user, event["pass"])
        assert (resp.status, (await resp.json())["result"]) == (200, "reserved")


async def test_sold_out_is_pushed_to_every_stream_within_a_second(make_room: MakeRoom) -> None:
    """When the last unit sells, every waiting ticket's stream reads closed/sold_out within one second."""
    now = wall_clock()
    client = await make_room(
        SkuConfig("moutai-53", stock=1),
        real_time=True,
        opens_at=now - US,
        starts_at=now - US // 2,
        admit_rate=0.001,
        admit_burst=1,
    )
    status, first = await join(client, "first")
    assert status == 201
    tickets = {f"w{n}": (await join(client, f"w{n}"))[1]["ticket"] for n in range(20)}
    streams = {u: await _events(client, t, u) for u, t in tickets.items()}
    for resp in streams.values():
        assert (await _until(resp, {"waiting"}))["state"] == "waiting"
    async with asyncio.timeout(5):  # placed and admitted with the room's next tick
        ticket = await _until(await _events(client, first["ticket"], "first"), {"admitted"})
    assert (await buy(client, "first", ticket["pass"])).status == 200
    sold = time.monotonic()
    async with asyncio.timeout(5):
        for resp in streams.values():
            event = await _until(resp, {"closed"})
            assert event["closed_reason"] == "sold_out"
            assert await resp.content.read() == b"\n"  # the event's blank line, then the stream ends
    assert time.monotonic() - sold < 1.0


async def test_closing_reaches_an_http_1_0_stream_unframed(make_room: MakeRoom) -> None:
    """An HTTP/1.0 ticket stream (no chunked framing) reads its closed event as plain bytes, then the end."""
    now = wall_clock()
    client = await make_room(
        SkuConfig("moutai-53", stock=1), real_time=True, opens_at=now - US, starts_at=now - US // 2,
        admit_rate=0.001, admit_burst=1,
    )  # fmt: skip
    _, first = await join(client, "first")
    _, waiting = await join(client, "w")
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET /v1/room/tickets/{waiting['ticket']}/events?user=w HTTP/1.0\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0]
    assert b"chunked" not in head.lower()
    assert (await reader.readuntil(b"\n\n")).startswith(b'data: {"ticket"')
    async with asyncio.timeout(10):
        admitted = await _until(await _events(client, first["ticket"], "first"), {"admitted"})
    assert (await buy(client, "first", admitted["pass"])).status == 200
    try:
        async with asyncio.timeout(5):
            rest = await reader.read()  # up to the end: the server closes an HTTP/1.0 stream
    finally:
        writer.close()
    events = rest.split(b"\n\n")
    assert events.pop() == b""  # the stream ends right after the last event's blank line
    assert all(e.startswith(b"data: ") for e in events), events  # plain events, no chunk framing
    assert [orjson.loads(e[6:])["state"] for e in events][-1] == "closed"
