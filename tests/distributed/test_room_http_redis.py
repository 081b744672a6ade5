"""The waiting room's HTTP tests again, with the room in Redis: every route answers as it does in memory.

The test functions are the memory ones (``tests/transport/room``), collected
here a second time with a ``make_room`` fixture that runs the sale on
``backend = "redis"`` (a real server, this test's own key prefix, no order
sink): bad input, the lifecycle, admission, closing and steering must not
tell the two apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flashsale import Config, ManualClock, RedisConfig, SaleEngine, SkuConfig
from flashsale.config import RoomConfig
from flashsale.redis import RedisBackend
from flashsale.transport import create_app
from tests.transport.room.conftest import OPENS, STARTS, T0, MakeRoom
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
