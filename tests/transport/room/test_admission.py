"""Paced admission, dead tickets, and the room closing when the sale is over, through a real server."""

from __future__ import annotations

from flashsale import ManualClock, SkuConfig

from .conftest import STARTS, T0, US, MakeRoom, buy, engine_of, join, poll


async def test_admission_never_faster_than_the_rate(make_room: MakeRoom) -> None:
    """Over every window from starts_at, admitted ≤ burst + rate × elapsed; the bucket is used in full."""
    clock = ManualClock(STARTS)
    client = await make_room(clock=clock, admit_rate=7.0, admit_burst=3, heartbeat=60.0)
    engine = engine_of(client)
    await engine.room_tick()
    users = [f"b{n}" for n in range(60)]
    for user in users:
        assert (await join(client, user))[0] == 201
    admitted_at: list[int] = []
    for step in range(51):  # 5 s in 0.1 s steps; the first report has the burst, let in on the joins
        clock.set(STARTS + step * 100_000)
        report = await engine.room_tick()
        admitted_at += [clock()] * len(report.admitted)
    assert admitted_at[:4] == [STARTS] * 3 + [STARTS + 200_000]
    for i, at in enumerate(admitted_at):
        elapsed = (at - STARTS) / US
        assert i + 1 <= 3 + 7.0 * elapsed + 1e-9, (i, elapsed)
    assert len(admitted_at) == 3 + 35  # 7/s for 5 s after the burst: nothing withheld either
    room = await (await client.get("/v1/room")).json()
    assert (room["admitted"], room["waiting"]) == (38, 22)


async def test_dead_tickets_are_skipped_and_expired(make_room: MakeRoom) -> None:
    """A ticket silent for 3 heartbeats reads expired, uses no admission, and is not counted as waiting."""
    clock = ManualClock(STARTS - 5 * US)
    client = await make_room(clock=clock, opens_at=T0, admit_rate=1.0, admit_burst=1, heartbeat=1.0)
    engine = engine_of(client)
    tickets = {u: (await join(client, u))[1]["ticket"] for u in ("alive1", "dead", "alive2", "alive3")}
    live = [u for u in tickets if u != "dead"]

    async def beat() -> None:
        for u in live:
            assert (await poll(client, tickets[u], u))[0] == 200

    for _ in range(5):
        clock.advance(1.0)
        await beat()
        await engine.room_tick()
    # The draw happened at the last tick; "dead" was last heard 5 s before it.
    status, dead = await poll(client, tickets["dead"], "dead")
    assert (status, dead["state"], dead["pass"]) == (200, "expired", None)
    room = await (await client.get("/v1/room")).json()
    assert (room["admitted"], room["waiting"]) == (1, 2)  # the burst's one, and the two live ones still waiting
    admitted: list[str] = []
    for _ in range(4):
        clock.advance(1.0)
        await beat()
        admitted += (await engine.room_tick()).admitted
    assert len(admitted) == 2
    room = await (await client.get("/v1/room")).json()
    assert (room["admitted"], room["waiting"]) == (3, 0)
    states = {u: (await poll(client, tickets[u], u))[1]["state"] for u in tickets}
    assert states == {"alive1": "admitted", "dead": "expired", "alive2": "admitted", "alive3": "admitted"}
    status, body = await join(client, "dead")
    # A dead ticket's buyer may queue again, at the back. A shared room (Redis) places the join before it
    # answers, and the bucket has a token for it by then: the answer may already be the admission.
    assert status == 201
    assert body["state"] == ("admitted" if engine.room.shared else "waiting")
    assert body["ticket"] != tickets["dead"]


async def test_sold_out_closes_every_ticket(make_room: MakeRoom) -> None:
    """When every SKU is sold out: each waiting ticket reads closed/sold_out, joins get 409 room_closed."""
    clock = ManualClock(STARTS)
    client = await make_room(SkuConfig("moutai-53", stock=2), clock=clock, admit_rate=2.0, admit_burst=2)
    engine = engine_of(client)
    await engine.room_tick()
    tickets = {u: (await join(client, u))[1]["ticket"] for u in ("a", "b", "c", "d", "e")}
    await engine.room_tick()
    for user in ("a", "b"):
        _, t = await poll(client, tickets[user], user)
        assert t["state"] == "admitted"
        assert (await buy(client, user, t["pass"])).status == 200
    _, c = await poll(client, tickets["c"], "c")
    assert (c["state"], c["closed_reason"], c["remaining_units"]) == ("closed", "sold_out", 0)  # at once, on the loop
    status, body = await join(client, "late")
    assert (status, body["error"]) == (409, "room_closed")  # at once too, before the room has heard
    await engine.room_tick()  # the last sale already told the room (the purchase route nudges it); this waits for it
    assert engine.room.board.room.closed_reason == "sold_out"
    for user in ("c", "d", "e"):
        _, t = await poll(client, tickets[user], user)
        assert (t["state"], t["closed_reason"], t["position"]) == ("closed", "sold_out", None)
    _, a = await poll(client, tickets["a"], "a")
    assert a["state"] == "admitted"  # a buyer already in keeps the pass
    status, body = await join(client, "late")
    assert (status, body["error"]) == (409, "room_closed")
    room = await (await client.get("/v1/room")).json()
    assert (room["state"], room["closed_reason"], room["waiting"], room["remaining_units"]) == (
        "closed",
        "sold_out",
        0,
        0,
    )


async def test_the_end_of_the_sale_closes_the_room(make_room: MakeRoom) -> None:
    """When every SKU's sale has ended, the room reads closed/ended and so does every waiting ticket."""
    clock = ManualClock(STARTS)
    client = await make_room(
        SkuConfig("moutai-53", stock=100, ends_at=STARTS + 10 * US), clock=clock, admit_rate=1.0, admit_burst=1
    )
    engine = engine_of(client)
    await engine.room_tick()
    tickets = {u: (await join(client, u))[1]["ticket"] for u in ("a", "b", "c")}
    clock.advance(10.0)
    report = await engine.room_tick()
    assert report.closed == "ended"
    _, t = await poll(client, tickets["c"], "c")
    assert (t["state"], t["closed_reason"]) == ("closed", "ended")
    room = await (await client.get("/v1/room")).json()
    assert (room["state"], room["closed_reason"]) == ("closed", "ended")


async def test_pause_and_rate_are_engine_calls(make_room: MakeRoom) -> None:
    """pause_room stops admissions, resume_room restarts them from now, set_admit_rate changes the pace."""
    clock = ManualClock(STARTS)
    client = await make_room(clock=clock, admit_rate=1.0, admit_burst=1, heartbeat=600.0)
    engine = engine_of(client)
    await engine.room_tick()
    for n in range(20):
        await join(client, f"p{n}")
    assert len((await engine.room_tick()).admitted) == 1  # the burst, let in on the first join
    view = await engine.pause_room()
    assert view.paused
    assert (await (await client.get("/v1/room")).json())["state"] == "paused"
    clock.advance(5.0)
    assert (await engine.room_tick()).admitted == ()
    await engine.resume_room()
    clock.advance(1.0)
    assert len((await engine.room_tick()).admitted) == 1  # nothing saved up while paused
    view = await engine.set_admit_rate(5.0)
    assert view.admit_rate == 5.0
    clock.advance(1.0)
    assert len((await engine.room_tick()).admitted) == 1  # burst 1 caps what one tick lets in
    clock.advance(0.2)
    assert len((await engine.room_tick()).admitted) == 1
