"""The waiting room on Redis through the embedded API: several engines (workers) share one room on a real server."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from flashsale import Config, ManualClock, RedisConfig, SaleEngine, SkuConfig, Unavailable
from flashsale.actors import RoomParams
from flashsale.config import RoomConfig
from flashsale.redis import RedisBackend, RedisRoomLedger
from flashsale.room import RoomRefused, UnknownTicket
from flashsale.room._base import MAX_JOINS_PER_CALL
from flashsale.testing import RedisServer
from tests.distributed.conftest import client

T0 = 1_767_225_600_000_000
STARTS = T0 + 10_000_000
ENDS = T0 + 60_000_000

Engines = Callable[..., AsyncIterator[list[SaleEngine]]]


class SmallLog(RedisBackend):
    """The redis backend with a room log of 3 entries: a worker that sleeps through more loads the whole room."""

    def room_ledger(self, config: Config) -> RedisRoomLedger:
        return RedisRoomLedger(config.redis, max_log=3)


@pytest.fixture
def key(tmp_path: Path) -> str:
    path = tmp_path / "room.key"
    path.write_bytes(b"a shared room key of 32 bytes...")
    return str(path)


def _config(redis_config: RedisConfig, key: str, **room: object) -> Config:
    return Config(
        skus=(SkuConfig("a", 5, ends_at=ENDS),),
        tick_interval=0.0,
        backend="redis",
        redis=redis_config,
        waiting_room=RoomConfig(starts_at=STARTS, opens_at=T0, secret_file=key, **room),  # type: ignore[arg-type]
    )


async def _engines(config: Config, clock: ManualClock, n: int = 2, small_log: bool = False) -> list[SaleEngine]:
    engines = [
        SaleEngine(config, clock=clock, backend=(SmallLog if small_log else RedisBackend)(sink=False)) for _ in range(n)
    ]
    for e in engines:
        await e.start()
    return engines


async def _stop(engines: list[SaleEngine]) -> None:
    for e in engines:
        await e.stop()


async def _paced_worker(redis_config: RedisConfig, key: str) -> tuple[ManualClock, Config, list[SaleEngine]]:
    """One worker on a room admitting 2 a second (burst 2) where nobody dies: its clock, config and engines."""
    clock = ManualClock(T0)
    config = _config(redis_config, key, admit_rate=2.0, admit_burst=2, heartbeat=600.0)
    return clock, config, await _engines(config, clock, n=1)


async def test_two_workers_share_one_queue_one_draw_and_one_pace(redis_config: RedisConfig, key: str) -> None:
    """Joins on both land in one queue; one seed, one drawn order; admissions across both never beat the rate."""
    clock = ManualClock(T0)
    a, b = engines = await _engines(_config(redis_config, key, admit_rate=2.0, admit_burst=1), clock)
    try:
        assert a.room_status().commitment == b.room_status().commitment  # the first start's seed, for both
        tickets = {}
        for n in range(20):
            status, created = await (a if n % 2 else b).join(f"u{n}")
            assert created
            tickets[f"u{n}"] = status.ticket
        again, created = await a.join("u0")  # joined on b: a knows the ticket
        assert (again.ticket, created) == (tickets["u0"], False)
        await a.room_tick()
        await b.room_tick()
        assert a.room_status().waiting == b.room_status().waiting == 20
        assert a.room_status().seed is None

        clock.set(STARTS)
        report = await a.room_tick()
        assert report.drawn
        assert (await b.room_tick()).drawn  # b saw the draw in the log
        draw = a.room_draw()
        assert b.room_draw() == draw
        seed = bytes.fromhex(draw.seed)
        assert hashlib.sha256(seed).hexdigest() == draw.commitment
        assert sorted(draw.tickets) == sorted(tickets.values())
        assert list(draw.tickets) == sorted(draw.tickets, key=lambda t: hashlib.sha256(seed + t.encode()).digest())

        # Each worker reports what it saw in the log since its last tick: both see every admission.
        admitted = dict.fromkeys(report.admitted)
        for step in range(1, 31):  # 3 s, the two workers ticking in turn, every heartbeat kept fresh
            clock.set(STARTS + step * 100_000)
            for user, ticket in tickets.items():
                (a if step % 2 else b).ticket(ticket, user)
            admitted.update(dict.fromkeys((await (a if step % 2 else b).room_tick()).admitted))
            assert len(admitted) <= 1 + 2 * step / 10, step
        assert len(admitted) == 7  # burst 1 + 2 a second for 3 s
        assert list(admitted) == list(draw.tickets[:7])  # in drawn order
        admitted_ids = list(admitted)
        await a.room_tick()
        await b.room_tick()
        assert a.waiting_room is not None
        assert b.waiting_room is not None
        assert a.waiting_room.board.tickets == b.waiting_room.board.tickets  # one room, two mirrors
        first = next(u for u, t in tickets.items() if t == admitted_ids[0])
        token = a.ticket(admitted_ids[0], first).admission_pass
        assert token is not None
        assert token == b.ticket(admitted_ids[0], first).admission_pass
        assert b.check_pass(token, first) == ("", "")
        assert b.check_pass(token, "someone-else")[0] == "invalid_pass"
    finally:
        await _stop(engines)


async def test_the_operator_steers_every_worker(redis_config: RedisConfig, key: str) -> None:
    """A pause on one worker stops admission on all; a resume or a new rate on the other holds everywhere."""
    clock = ManualClock(STARTS)
    a, b = engines = await _engines(_config(redis_config, key, admit_rate=10.0, admit_burst=1, heartbeat=600.0), clock)
    try:
        for n in range(30):
            await (a if n % 2 else b).join(f"u{n}")
        view = await a.pause_room()
        assert view.paused
        await b.room_tick()
        assert b.room_status().state == "paused"
        clock.advance(2)
        assert (await b.room_tick()).admitted == ()
        await b.resume_room()
        await a.room_tick()
        assert a.room_status().state == "admitting"
        clock.advance(1)
        assert len((await a.room_tick()).admitted) == 1  # the pace starts from the resume: one burst's worth
        await a.set_admit_rate(50.0)
        await b.room_tick()
        assert b.room_status().admit_rate == 50.0
        with pytest.raises(Exception, match="admit_rate"):
            await b.set_admit_rate(0)
    finally:
        await _stop(engines)


async def test_closing_reaches_every_ticket_on_every_worker(redis_config: RedisConfig, key: str) -> None:
    """The sale ends: the worker that hears it first closes the room; every ticket reads closed on both."""
    clock = ManualClock(STARTS)
    a, b = engines = await _engines(_config(redis_config, key, admit_rate=1.0, admit_burst=1, heartbeat=600.0), clock)
    try:
        joined = [(f"u{n}", (await (a if n % 2 else b).join(f"u{n}"))[0].ticket) for n in range(6)]
        clock.set(ENDS)
        assert (await a.room_tick()).closed == "ended"
        assert (await b.room_tick()).closed == "ended"  # b learns it from the log, once
        for e in engines:
            states = {e.ticket(t, u).state for u, t in joined}
            assert states == {"admitted", "closed"}
            assert e.room_status().closed_reason == "ended"
            with pytest.raises(RoomRefused, match="sale is over"):
                await e.join("late")
    finally:
        await _stop(engines)


async def test_a_worker_behind_the_log_loads_the_whole_room(redis_config: RedisConfig, key: str) -> None:
    """With a log of 3 entries, a worker that missed more loads the room again and mirrors it exactly."""
    clock = ManualClock(T0)
    config = _config(redis_config, key, admit_rate=5.0, admit_burst=2, heartbeat=600.0)
    a, b = engines = await _engines(config, clock, small_log=True)
    try:
        for n in range(12):
            await a.join(f"u{n}")
        clock.set(STARTS + 500_000)
        await a.room_tick()
        late = await b.room_tick()  # the log holds only a's last entries: b resyncs
        assert late.admitted == ()  # what b missed is not news in its report
        assert a.waiting_room is not None
        assert b.waiting_room is not None
        assert b.waiting_room.board.tickets == a.waiting_room.board.tickets
        assert b.waiting_room.board.by_user == a.waiting_room.board.by_user
        assert b.room_draw() == a.room_draw()
        assert b.room_status() == a.room_status()
        third = (await _engines(config, clock, 1))[0]  # a worker started now loads the room too
        engines.append(third)
        assert third.room_draw() == a.room_draw()
        assert third.room_status().admitted == a.room_status().admitted == 2  # the burst: full at the draw
    finally:
        await _stop(engines)


def test_max_tickets_holds_across_workers(redis_config: RedisConfig) -> None:
    """The bound on tickets is checked in Lua, so two workers together cannot pass it."""
    ledgers = [RedisRoomLedger(redis_config) for _ in range(2)]
    params = RoomParams(None, STARTS, 1000, 1, 60_000_000, 60_000_000, 3)
    seeds = [ledger.open(bytes([n]) * 32, params)[0] for n, ledger in enumerate(ledgers)]
    assert seeds == [bytes(32), bytes(32)]  # the first open's seed
    try:
        first = ledgers[0].join(0, [("u0", "t0", T0, "", 0), ("u1", "t1", T0, "", 0)])
        second = ledgers[1].join(0, [("u2", "t2", T0, "", 0), ("u3", "t3", T0, "", 0), ("u0", "t9", T0, "", 0)])
        assert [r for r, _ in first.results] == ["created", "created"]
        assert second.results == (("created", "t2"), ("room_full", ""), ("existing", "t0"))
        assert second.entries is not None
        assert len(second.entries) == 3
        assert second.counters.tickets == 3
    finally:
        for ledger in ledgers:
            ledger.close()


def test_the_dead_of_the_pre_queue_expire_in_arrival_order(redis_config: RedisConfig) -> None:
    """A sweep finds the dead by heartbeat and expires them as the actor walks the pre-queue: by arrival."""
    ledger = RedisRoomLedger(redis_config)
    ledger.open(bytes(32), RoomParams(None, STARTS, 1000, 1, 60_000_000, 6_000_000, 100))
    try:
        joined = ["t-c", "t-a", "t-e", "t-b", "t-d"]
        answer = ledger.join(0, [(f"u-{t}", t, T0 + n, "", 0) for n, t in enumerate(joined)])
        answer = ledger.tick(answer.seq, T0 + 1_000_000, [("t-e", T0 + 1_000_000), ("t-zz", T0)], None)
        answer = ledger.tick(answer.seq, T0 + 6_500_000, [], None)
        assert answer.entries == ("E|t-c", "E|t-a", "E|t-b", "E|t-d", "S")
        assert answer.counters.waiting == 1  # t-e polled: alive until 7 s after T0
        answer = ledger.tick(answer.seq, T0 + 7_500_000, [], None)
        assert answer.entries == ("E|t-e", "S")
        assert answer.counters.waiting == 0
    finally:
        ledger.close()


def _lose(server: RedisServer, prefix: str) -> None:
    """What a Redis without persistence does on a restart: every key of the sale, the room's included, is gone."""
    r = client(server)
    gone = list(r.scan_iter(f"{prefix}:*", count=1000))
    assert any(":{:room}:" in k for k in gone)
    r.delete(*gone)


async def test_a_room_lost_with_redis_is_never_made_again_by_running_workers(
    redis_server: RedisServer, redis_config: RedisConfig, key: str
) -> None:
    """Redis comes back empty: running workers refuse joins and the room's tick, and a pass given before still admits.

    The tickets lived only in Redis, so nothing can bring them back. A worker
    that is running answers polls from its own mirror and never opens a new
    room over the lost one (others may have admitted from it). Without
    PostgreSQL to keep the seed (this backend runs without the order sink),
    a worker started afterwards opens a new room: a new commitment, and the
    old tickets and passes are not its own. With PostgreSQL the room opens
    again under its commitment (tests/distributed/test_redis_loss.py).
    """
    clock = ManualClock(T0)
    config = _config(redis_config, key, admit_rate=10.0, admit_burst=5)
    [a] = await _engines(config, clock, n=1)
    try:
        committed = a.room_status().commitment
        held, _ = await a.join("u0")
        clock.set(STARTS)
        await a.room_tick()
        held = a.ticket(held.ticket, "u0")
        assert held.state == "admitted"
        assert held.admission_pass is not None
        _lose(redis_server, redis_config.prefix)
        with pytest.raises(Unavailable, match="no_room"):
            await a.join("u1")
        with pytest.raises(Unavailable, match="no_room"):
            await a.room_tick()
        assert a.ticket(held.ticket, "u0").state == "admitted"  # the worker's mirror, as last heard
        assert a.check_pass(held.admission_pass, "u0") == ("", "")
    finally:
        await _stop([a])
    [b] = await _engines(config, clock, n=1)
    try:
        assert b.room_status().commitment != committed
        with pytest.raises(UnknownTicket):
            b.ticket(held.ticket, "u0")
        assert b.check_pass(held.admission_pass, "u0")[0] == "invalid_pass"  # a pass names the room it came from
        fresh, created = await b.join("u1")
        assert created
        await b.room_tick()
        assert b.ticket(fresh.ticket, "u1").state == "admitted"
        assert b.room_status().seed is not None  # drawn at once: starts_at has passed
    finally:
        await _stop([b])


async def _join_and_draw(engine: SaleEngine, clock: ManualClock, buyers: int) -> tuple[str, ...]:
    """``buyers`` join the pre-queue, then the tick at ``starts_at`` draws; the drawn order."""
    for n in range(buyers):
        await engine.join(f"u{n}")
    clock.set(STARTS)
    await engine.room_tick()
    return engine.room_draw().tickets


async def test_a_worker_started_mid_queue_or_after_the_closing_mirrors_the_room(
    redis_config: RedisConfig, key: str
) -> None:
    """Neither the draw nor the closing rewrites tickets in Redis: a worker loading the room reads them as they are.

    Started between admissions, a worker's mirror numbers the same queue and
    admits in the same turn as the others; started after the closing, it
    reads every ticket that was still waiting as closed.
    """
    clock, config, engines = await _paced_worker(redis_config, key)
    a = engines[0]
    try:
        drawn = await _join_and_draw(a, clock, 10)  # and the burst's two admissions
        clock.set(STARTS + 1_000_000)
        await a.room_tick()  # two more: 2 a second
        engines += await _engines(config, clock, n=1)
        b = engines[1]
        assert a.waiting_room is not None
        assert b.waiting_room is not None
        assert b.waiting_room.board.tickets == a.waiting_room.board.tickets
        states = [a.waiting_room.board.tickets[t].state for t in drawn]
        assert states == ["admitted"] * 4 + ["waiting"] * 6  # admitted in drawn order
        clock.set(STARTS + 2_000_000)
        report = await b.room_tick()  # the next two, decided by the worker that loaded the room mid-queue
        await a.room_tick()
        assert list(report.admitted) == list(drawn[4:6])
        assert b.waiting_room.board.tickets == a.waiting_room.board.tickets
        assert [b.waiting_room.board.tickets[t].position for t in drawn[6:]] == [1, 2, 3, 4]

        clock.set(ENDS)
        await a.room_tick()  # the bucket's two, then the closing: the sale has ended
        engines += await _engines(config, clock, n=1)
        c = engines[2]
        assert c.waiting_room is not None
        assert c.waiting_room.board.tickets == a.waiting_room.board.tickets
        assert [c.waiting_room.board.tickets[t].state for t in drawn] == ["admitted"] * 8 + ["closed"] * 2
        assert c.room_status().closed_reason == "ended"
    finally:
        await _stop(engines)


async def test_a_room_drawn_before_the_draw_cursor_goes_on_in_turn(
    redis_server: RedisServer, redis_config: RedisConfig, key: str
) -> None:
    """A room drawn by an earlier version (the drawn moved to the queue list, no ``dq``) goes on as it was."""
    clock, config, engines = await _paced_worker(redis_config, key)
    a = engines[0]
    try:
        drawn = await _join_and_draw(a, clock, 6)  # and the burst's two admissions
        r = client(redis_server)  # what the earlier draw left: the rest of the drawn in the queue list, as waiting
        base = f"{redis_config.prefix}:{{:room}}:"
        r.rpush(base + "queue", *drawn[2:])
        r.hset(base + "st", mapping=dict.fromkeys(drawn[2:], "waiting"))
        r.hdel(base + "meta", "dq")
        engines += await _engines(config, clock, n=1)  # loads the room as it is in Redis
        b = engines[1]
        assert a.waiting_room is not None
        assert b.waiting_room is not None
        assert b.waiting_room.board.tickets == a.waiting_room.board.tickets
        assert [b.waiting_room.board.tickets[t].position for t in drawn[2:]] == [1, 2, 3, 4]
        clock.set(STARTS + 1_000_000)
        report = await b.room_tick()
        await a.room_tick()
        assert list(report.admitted) == list(drawn[2:4])  # in turn, each once
        clock.set(STARTS + 2_000_000)
        assert list((await a.room_tick()).admitted) == list(drawn[4:6])
        await b.room_tick()
        assert b.waiting_room.board.tickets == a.waiting_room.board.tickets
        assert a.room_status().admitted == 6
    finally:
        await _stop(engines)


def test_a_large_room_loads_past_the_usual_deadline(redis_config: RedisConfig) -> None:
    """``SNAPSHOT`` reads the whole room, longer than ``[redis] timeout`` allows a call: it has its own deadline.

    A worker that starts, or falls behind the log, while the room is large
    must still load it; here every other call's deadline is 5 ms.
    """
    filler = RedisRoomLedger(redis_config)
    filler.open(bytes(32), RoomParams(None, STARTS, 1000, 1, 60_000_000, 60_000_000, 1_000_000))
    hurried = RedisRoomLedger(replace(redis_config, timeout=0.005))
    try:
        for n in range(0, 20_000, 1000):
            filler.join(0, [(f"u{i}", f"t{i:06d}", T0, "", 0) for i in range(n, n + 1000)])
        room = hurried.snapshot()
        assert len(room.tickets) == len(room.pre) == 20_000
    finally:
        filler.close()
        hurried.close()


async def _next_pass() -> None:
    """Return in the event loop's next pass (after every callback scheduled so far)."""
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(done.set_result, None)
    await done


async def test_joins_that_arrive_while_a_batch_is_in_redis_travel_in_the_next_call_together(
    redis_config: RedisConfig, redis_server: RedisServer, key: str
) -> None:
    """32 buyers joining one after another, each arriving in a loop pass of its own (as HTTP clients do).

    One Lua call per loop pass would carry a join or two each; held while a
    batch is in Redis, the joins of many passes share the next call.
    """
    (engine,) = await _engines(_config(redis_config, key), ManualClock(T0), n=1)
    redis = client(redis_server)
    try:
        redis.config_resetstat()

        async def buyer(n: int) -> None:
            for i in range(20):
                for _ in range(n):
                    await _next_pass()
                _, created = await engine.join(f"b{n}-{i}")
                assert created

        await asyncio.gather(*(buyer(n) for n in range(32)))
        calls = int(redis.info("commandstats")["cmdstat_evalsha"]["calls"])  # every JOIN, and the room's ticks
        assert engine.room_status().waiting == 640
        assert calls <= 640 // 4, f"{calls} Lua calls for 640 joins"
    finally:
        await _stop([engine])


async def test_a_batch_to_redis_carries_at_most_max_joins_per_call(redis_config: RedisConfig, key: str) -> None:
    """2,500 joins in one loop pass: 1,000 go to Redis, the rest wait for that call's answer, then go in turn."""
    (engine,) = await _engines(_config(redis_config, key), ManualClock(T0), n=1)
    room = engine.waiting_room
    assert room is not None
    try:
        joins = [asyncio.create_task(engine.join(f"c{i}")) for i in range(2_500)]
        await _next_pass()  # every join asked for its place
        await _next_pass()  # the pass's flush: one call in Redis
        assert (room._placing, len(room._pending)) == (1, 2_500 - MAX_JOINS_PER_CALL)
        assert all(created for _, created in await asyncio.gather(*joins))
        assert (room._placing, len(room._pending)) == (0, 0)
        assert engine.room_status().waiting == 2_500
    finally:
        await _stop([engine])
