"""The waiting room's HTTP tests again, with the room in Redis: every route answers as it does in memory.

The test functions are the memory ones (``tests/transport/room``), collected
here a second time with a ``make_room`` fixture that runs the sale on
``backend = "redis"`` (a real server, this test's own key prefix, no order
sink): bad input, the lifecycle, admission, closing and steering must not
tell the two apart.
"""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from flashsale import Config, ManualClock, RedisConfig, SaleEngine, SkuConfig
from flashsale.actors._room_passes import solve
from flashsale.config import RoomConfig
from flashsale.redis import RedisBackend
from flashsale.transport import create_app
from flashsale.transport._handlers import LANES
from tests.transport.room.conftest import OPENS, STARTS, T0, MakeRoom, join
from tests.transport.room.test_admission import (  # noqa: F401 - collected here, on Redis
    test_admission_never_faster_than_the_rate,
    test_dead_tickets_are_skipped_and_expired,
    test_pause_and_rate_are_engine_calls,
    test_sold_out_closes_every_ticket,
    test_the_end_of_the_sale_closes_the_room,
)
from tests.transport.room.test_lifecycle import (  # noqa: F401
    test_a_pass_is_for_its_buyer_only_and_until_it_expires,
    test_a_pass_is_good_for_every_sku_and_limits_still_apply,
    test_later_joins_queue_behind_the_draw_in_arrival_order,
    test_whole_lifecycle_on_virtual_time,
)
from tests.transport.room.test_pow_and_bad_input import (  # noqa: F401
    test_bad_joins_are_400_and_change_nothing,
    test_draw_route_before_and_after,
    test_no_challenge_without_pow,
    test_proof_of_work_accepted_once_per_challenge,
    test_ticket_routes_answer_only_the_holder,
)


@pytest.fixture
def make_room(aiohttp_client: Any, tmp_path: Path, redis_config: RedisConfig) -> MakeRoom:
    """The memory tests' ``make_room``, on Redis."""

    async def make(
        *skus: SkuConfig,
        clock: ManualClock | None = None,
        real_time: bool = False,
        **room: Any,
    ) -> Any:
        assert not real_time
        settings: dict[str, Any] = {"opens_at": OPENS, "starts_at": STARTS, "admit_rate": 1000.0, "admit_burst": 1000}
        settings.update(room)
        config = Config(
            skus=skus or (SkuConfig("moutai-53", stock=100, per_user_limit=2),),
            tick_interval=0.0,
            backend="redis",
            redis=redis_config,
            waiting_room=RoomConfig(**settings),
        )
        engine = SaleEngine(config, clock=clock or ManualClock(T0), backend=RedisBackend(sink=False))
        return await aiohttp_client(create_app(config, engine=engine))

    return make


async def test_a_challenge_joins_once_across_workers(
    aiohttp_client: Any, tmp_path: Path, redis_config: RedisConfig
) -> None:
    """Two workers, one challenge: it joins on one; on the other (a second worker's own check never saw it) the
    Lua call that places the join refuses it with the 400 a memory room gives, and nothing changes."""
    key = tmp_path / "room.key"
    key.write_bytes(b"a shared room key of 32 bytes...")
    config = Config(
        skus=(SkuConfig("moutai-53", stock=100),),
        tick_interval=0.0,
        backend="redis",
        redis=redis_config,
        waiting_room=RoomConfig(opens_at=OPENS, starts_at=STARTS, pow_bits=8, heartbeat=600.0, secret_file=str(key)),
    )
    clock = ManualClock(OPENS)
    a, b = [
        await aiohttp_client(
            create_app(config, engine=SaleEngine(config, clock=clock, backend=RedisBackend(sink=False)))
        )
        for _ in range(2)
    ]
    c = await (await a.get("/v1/room/challenge")).json()
    nonce = solve(c["challenge"], 8)
    status, _ = await join(a, "alice", challenge=c["challenge"], nonce=nonce)
    assert status == 201
    status, body = await join(b, "bob", challenge=c["challenge"], nonce=nonce)
    assert (status, body["error"]) == (400, "challenge_used")
    status, body = await join(a, "bob", challenge=c["challenge"], nonce=nonce)  # and again on the first
    assert (status, body["error"]) == (400, "challenge_used")
    for client in (a, b):
        room = await (await client.get("/v1/room")).json()
        assert room["waiting"] == 1  # only alice holds a ticket
    c = await (await b.get("/v1/room/challenge")).json()
    status, _ = await join(b, "bob", challenge=c["challenge"], nonce=solve(c["challenge"], 8))
    assert status == 201  # a fresh challenge joins on either worker


async def test_a_shared_rooms_usual_join_takes_the_lane_and_is_answered_once_redis_placed_it(
    aiohttp_client: Any, redis_config: RedisConfig
) -> None:
    """The join lane answers a shared room's usual join after Redis placed it; what it leaves, the route answers."""
    config = Config(
        skus=(SkuConfig("moutai-53", stock=100),),
        tick_interval=0.0,
        backend="redis",
        redis=redis_config,
        waiting_room=RoomConfig(opens_at=OPENS, starts_at=STARTS),
    )
    app = create_app(config, engine=SaleEngine(config, clock=ManualClock(OPENS), backend=RedisBackend(sink=False)))
    purchase_lane, poll_lane, join_lane = app[LANES]
    answered: list[bool] = []

    async def counted(answer: Awaitable[web.StreamResponse | None]) -> web.StreamResponse | None:
        got = await answer
        answered.append(got is not None)
        return got

    def counting(request: web.Request) -> Awaitable[web.StreamResponse | None] | None:
        answer = join_lane(request)
        return None if answer is None else counted(answer)

    app[LANES][:] = [purchase_lane, poll_lane, counting]
    client = await aiohttp_client(app)
    status, body = await join(client, "alice")
    assert (status, body["state"]) == (201, "pre_queue")
    status, again = await join(client, "alice")
    assert (status, again["ticket"]) == (200, body["ticket"])
    resp = await client.post("/v1/room/join", data=b'{"user": ""}', headers={"Content-Type": "application/json"})
    assert (resp.status, (await resp.json())["error"]) == (400, "invalid_request")
    assert answered == [True, True, False]  # the lane answered both joins and left the bad one to the route
    assert (await (await client.get("/v1/room")).json())["waiting"] == 1
