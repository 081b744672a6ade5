"""Proof of work to join, and bad input on every room route: a JSON 4xx that changes nothing."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from flashsale import ManualClock
from flashsale.actors._room_passes import proves_work, solve

from .conftest import OPENS, STARTS, MakeRoom, engine_of, join, poll


async def _challenge(client: TestClient[Any, Any]) -> dict[str, Any]:
    resp = await client.get("/v1/room/challenge")
    assert resp.status == 200
    return await resp.json()  # type: ignore[no-any-return]


async def test_proof_of_work_accepted_once_per_challenge(make_room: MakeRoom) -> None:
    """A solved challenge joins once; reused, unsolved, forged, expired or missing proofs get 400."""
    clock = ManualClock(OPENS)
    client = await make_room(clock=clock, pow_bits=10, heartbeat=600.0)
    c = await _challenge(client)
    assert c["bits"] == 10
    nonce = solve(c["challenge"], 10)
    status, body = await join(client, "alice", challenge=c["challenge"], nonce=nonce)
    assert status == 201
    status, body = await join(client, "bob", challenge=c["challenge"], nonce=nonce)
    assert (status, body["error"]) == (400, "challenge_used")

    c = await _challenge(client)
    bad = next(str(n) for n in range(10_000) if not proves_work(c["challenge"], str(n), 10))
    status, body = await join(client, "bob", challenge=c["challenge"], nonce=bad)
    assert (status, body["error"]) == (400, "invalid_proof")
    expires, rand, sig = c["challenge"].split(".")
    forged = f"{int(expires) + 10**9}.{rand}.{sig}"
    status, body = await join(client, "bob", challenge=forged, nonce=solve(forged, 10))
    assert (status, body["error"]) == (400, "invalid_proof")
    status, body = await join(client, "bob")
    assert (status, body["error"]) == (400, "invalid_proof")
    clock.advance(61.0)
    status, body = await join(client, "bob", challenge=c["challenge"], nonce=solve(c["challenge"], 10))
    assert (status, body["error"], body["detail"]) == (400, "invalid_proof", "the challenge has expired; get a new one")
    await engine_of(client).room_tick()  # every join the room took is placed by now
    room = await (await client.get("/v1/room")).json()
    assert room["waiting"] + room["admitted"] == 1  # only alice holds a ticket (drawn by now: starts_at has passed)


async def test_no_challenge_without_pow(make_room: MakeRoom) -> None:
    """With pow_bits = 0 the challenge route is 404 and a join carrying a proof, even an empty one, is 400.

    The served document says the same: the join body is ``{"user"}`` alone.
    """
    client = await make_room(clock=ManualClock(OPENS))
    resp = await client.get("/v1/room/challenge")
    assert (resp.status, (await resp.json())["error"]) == (404, "no_challenge")
    for proof in ({"challenge": "x", "nonce": "1"}, {"challenge": ""}, {"nonce": ""}, {"challenge": None}):
        status, body = await join(client, "alice", **proof)
        assert (status, body["error"]) == (400, "invalid_request"), proof
    assert engine_of(client).room.board.room.tickets == 0
    join_body = (await (await client.get("/openapi.json")).json())["paths"]["/v1/room/join"]["post"]["requestBody"]
    schema = join_body["content"]["application/json"]["schema"]
    assert (schema["required"], list(schema["properties"]), schema["additionalProperties"]) == (
        ["user"],
        ["user"],
        False,
    )


async def test_the_document_asks_a_proof_when_the_room_does(make_room: MakeRoom) -> None:
    """With pow_bits > 0 the served document requires challenge and nonce in the join body."""
    client = await make_room(clock=ManualClock(OPENS), pow_bits=4)
    document = await (await client.get("/openapi.json")).json()
    schema = document["paths"]["/v1/room/join"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["user", "challenge", "nonce"]
    poll = document["paths"]["/v1/room/tickets/{ticket}"]["get"]["parameters"]
    assert [(p["name"], p["required"]) for p in poll] == [("ticket", True), ("user", True)]


async def test_bad_joins_are_400_and_change_nothing(make_room: MakeRoom) -> None:
    """Malformed JSON, wrong shapes, unknown fields, bad users: each a JSON 400; no ticket is made."""
    client = await make_room(clock=ManualClock(OPENS))
    bodies: list[Any] = [b"{", b"[]", b'"alice"', b"null"]
    for raw in bodies:
        resp = await client.post("/v1/room/join", data=raw, headers={"Content-Type": "application/json"})
        body = await resp.json()
        assert (resp.status, body["error"]) == (400, "invalid_request"), raw
        assert body["detail"]
    for payload in (
        {},
        {"user": ""},
        {"user": 7},
        {"user": None},
        {"user": "x" * 129},
        {"user": "a\nb"},
        {"user": "alice", "sku": "moutai-53"},
        {"user": "alice", "challenge": 5},
    ):
        resp = await client.post("/v1/room/join", json=payload)
        assert (resp.status, (await resp.json())["error"]) == (400, "invalid_request"), payload
    resp = await client.post("/v1/room/join", data=b"x" * 5000)
    assert (resp.status, (await resp.json())["error"]) == (413, "payload_too_large")
    room = await (await client.get("/v1/room")).json()
    assert room["waiting"] == 0
    assert engine_of(client).room.board.room.tickets == 0


async def test_ticket_routes_answer_only_the_holder(make_room: MakeRoom) -> None:
    """Another buyer or an unknown id is the same 404; no ?user= is 400; neither counts as a heartbeat."""
    client = await make_room(clock=ManualClock(OPENS))
    _, body = await join(client, "alice")
    ticket = body["ticket"]
    for t, user in ((ticket, "mallory"), ("no-such-ticket", "alice"), (ticket, "Alice")):
        status, answer = await poll(client, t, user)
        assert (status, answer["error"]) == (404, "unknown_ticket")
        resp = await client.get(f"/v1/room/tickets/{t}/events", params={"user": user})
        assert (resp.status, (await resp.json())["error"]) == (404, "unknown_ticket")
    for path in (f"/v1/room/tickets/{ticket}", f"/v1/room/tickets/{ticket}/events"):
        resp = await client.get(path)
        assert (resp.status, (await resp.json())["error"]) == (400, "invalid_request")
    assert engine_of(client).room._beats == {}  # no heartbeat was recorded for anyone
    resp = await client.post(f"/v1/room/tickets/{ticket}", params={"user": "alice"})
    assert (resp.status, (await resp.json())["error"]) == (405, "method_not_allowed")


async def test_routes_without_a_room_are_404(make_room: MakeRoom, aiohttp_client: Any, tmp_path: Any) -> None:
    """A sale configured without [waiting_room] answers its room routes 404 and buys without a pass."""
    from flashsale import Config, SkuConfig, StoreConfig  # noqa: PLC0415
    from flashsale.transport import create_app  # noqa: PLC0415

    config = Config(skus=(SkuConfig("a", 5),), store=StoreConfig(path=str(tmp_path / "x.db")))
    client = await aiohttp_client(create_app(config))
    for method, path in (
        ("GET", "/v1/room"),
        ("GET", "/v1/room/challenge"),
        ("POST", "/v1/room/join"),
        ("GET", "/v1/room/tickets/t?user=a"),
        ("GET", "/v1/room/draw"),
    ):
        resp = await client.request(method, path, json={"user": "a"} if method == "POST" else None)
        assert (resp.status, (await resp.json())["error"]) == (404, "not_found"), path
    resp = await client.post("/v1/purchase", json={"sku": "a", "user": "u"})
    assert resp.status == 200


async def test_draw_route_before_and_after(make_room: MakeRoom) -> None:
    """GET /v1/room/draw is 409 draw_not_done before starts_at, the draw after."""
    clock = ManualClock(OPENS)
    client = await make_room(clock=clock)
    resp = await client.get("/v1/room/draw")
    assert (resp.status, (await resp.json())["error"]) == (409, "draw_not_done")
    clock.set(STARTS)
    await engine_of(client).room_tick()
    resp = await client.get("/v1/room/draw")
    assert resp.status == 200
    assert (await resp.json())["tickets"] == []
