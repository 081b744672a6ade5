"""The waiting room through a real server on virtual time: open, pre-queue, draw, admission, passes."""

from __future__ import annotations

import hashlib

from flashsale import ManualClock, SkuConfig

from .conftest import OPENS, STARTS, T0, MakeRoom, buy, engine_of, join, poll, verify_draw


async def test_whole_lifecycle_on_virtual_time(make_room: MakeRoom) -> None:
    """not_open → pre_queue (commitment, no seed) → draw at starts_at (seed revealed) → passes → purchases."""
    clock = ManualClock(T0)
    client = await make_room(clock=clock, admit_rate=2.0, admit_burst=2, heartbeat=60.0)
    engine = engine_of(client)
    room = await (await client.get("/v1/room")).json()
    assert (room["state"], room["seed"], room["closed_reason"]) == ("not_open", None, None)
    commitment = room["commitment"]
    assert len(commitment) == 64
    status, body = await join(client, "early")
    assert (status, body["error"]) == (409, "room_not_open")

    clock.set(OPENS)
    tickets = {}
    for n in range(5):
        status, body = await join(client, f"u{n}")
        assert status == 201
        assert body["state"] == "pre_queue"
        assert body["poll_after"] == 60.0
        tickets[f"u{n}"] = body["ticket"]
    status, again = await join(client, "u0")
    assert (status, again["ticket"]) == (200, tickets["u0"])
    await engine.room_tick()  # the room hears the time (every 0.1 s on a live server): the joins are placed
    room = await (await client.get("/v1/room")).json()
    assert (room["state"], room["commitment"], room["seed"], room["waiting"]) == ("pre_queue", commitment, None, 5)
    resp = await client.get("/v1/room/draw")
    assert (resp.status, (await resp.json())["error"]) == (409, "draw_not_done")

    clock.set(STARTS)
    report = await engine.room_tick()
    assert report.drawn
    assert len(report.admitted) == 2  # the burst
    draw = await (await client.get("/v1/room/draw")).json()
    assert draw["commitment"] == commitment
    assert sorted(draw["tickets"]) == sorted(tickets.values())
    assert verify_draw(draw["seed"], commitment, draw["tickets"])
    room = await (await client.get("/v1/room")).json()
    assert (room["state"], room["seed"], room["admitted"], room["waiting"]) == ("admitting", draw["seed"], 2, 3)

    holder = {t: u for u, t in tickets.items()}
    first, _, third = draw["tickets"][:3]
    status, t1 = await poll(client, first, holder[first])
    assert (status, t1["state"], t1["position"]) == (200, "admitted", None)
    assert t1["pass"]
    assert t1["pass_expires_at"]
    assert t1["remaining_units"] == 100
    status, t3 = await poll(client, third, holder[third])
    assert (t3["state"], t3["position"], t3["ahead"], t3["pass"]) == ("waiting", 1, 0, None)
    assert t3["eta_seconds"] == 0.0

    resp = await buy(client, holder[first], t1["pass"])
    assert (resp.status, (await resp.json())["result"]) == (200, "reserved")
    status, t1 = await poll(client, first, holder[first])
    assert t1["remaining_units"] == 99

    clock.advance(1.0)
    report = await engine.room_tick()
    assert len(report.admitted) == 2
    assert report.admitted[0] == third  # drawn order


async def test_later_joins_queue_behind_the_draw_in_arrival_order(make_room: MakeRoom) -> None:
    """Joins after the draw are FIFO behind every drawn ticket; positions count live tickets ahead."""
    clock = ManualClock(STARTS)
    client = await make_room(clock=clock, admit_rate=1.0, admit_burst=1)
    engine = engine_of(client)
    await engine.room_tick()  # the draw, of an empty pre-queue
    order = []
    for n in range(4):
        status, body = await join(client, f"late{n}")
        assert status == 201
        order.append(body["ticket"])
    clock.advance(0.5)
    report = await engine.room_tick()
    assert report.admitted == (order[0],)  # the first join took the one token at once, reported at this tick
    status, t = await poll(client, order[0], "late0")
    assert t["state"] == "admitted"
    status, t = await poll(client, order[3], "late3")
    assert (t["state"], t["position"], t["ahead"]) == ("waiting", 3, 2)
    clock.advance(1.0)
    assert (await engine.room_tick()).admitted == (order[1],)


async def test_a_pass_is_for_its_buyer_only_and_until_it_expires(make_room: MakeRoom) -> None:
    """No pass: 403 admission_required; forged, another buyer's or expired: 403 invalid_pass; nothing sold."""
    clock = ManualClock(STARTS)
    client = await make_room(clock=clock, pass_ttl=60.0)
    await engine_of(client).room_tick()
    _, body = await join(client, "alice")
    await engine_of(client).room_tick()
    _, ticket = await poll(client, body["ticket"], "alice")
    good = ticket["pass"]
    resp = await buy(client, "alice", None)
    assert (resp.status, (await resp.json())["error"]) == (403, "admission_required")
    head, exp, sig = good.split(".")
    forged = [
        f"{head}.{int(exp) + 10**9}.{sig}",  # a later expiry, same signature
        f"{head}.{exp}.{sig[:-2]}AA",
        "not-a-pass",
        "a.b.c",
    ]
    for token in forged:
        resp = await buy(client, "alice", token)
        assert (resp.status, (await resp.json())["error"]) == (403, "invalid_pass"), token
    resp = await buy(client, "mallory", good)
    body = await resp.json()
    assert (resp.status, body["error"]) == (403, "invalid_pass")
    assert "another buyer" in body["detail"]
    assert good not in body["detail"]
    sku = await (await client.get("/v1/skus/moutai-53")).json()
    assert sku["remaining"] == 100
    clock.advance(60.0)
    resp = await buy(client, "alice", good)
    assert (resp.status, (await resp.json())["detail"]) == (403, "the pass has expired")


async def test_a_pass_is_good_for_every_sku_and_limits_still_apply(make_room: MakeRoom) -> None:
    """One pass buys on every SKU of the sale; per-user limits still hold."""
    clock = ManualClock(STARTS)
    client = await make_room(
        SkuConfig("moutai-53", stock=10, per_user_limit=1), SkuConfig("tshirt", stock=10), clock=clock
    )
    await engine_of(client).room_tick()
    _, body = await join(client, "alice")
    await engine_of(client).room_tick()
    _, ticket = await poll(client, body["ticket"], "alice")
    assert (await buy(client, "alice", ticket["pass"], "moutai-53")).status == 200
    assert (await buy(client, "alice", ticket["pass"], "tshirt")).status == 200
    resp = await buy(client, "alice", ticket["pass"], "moutai-53")
    assert (resp.status, (await resp.json())["error"]) == (409, "limit_reached")


def test_verify_draw_rejects_a_shuffled_order() -> None:
    """The outside check fails on an order that does not follow from the seed."""
    seed = bytes(range(32))
    tickets = sorted(["a", "b", "c", "d"], key=lambda t: hashlib.sha256(seed + t.encode()).digest())
    assert verify_draw(seed.hex(), hashlib.sha256(seed).hexdigest(), tickets)
    assert not verify_draw(seed.hex(), hashlib.sha256(seed).hexdigest(), tickets[::-1])
