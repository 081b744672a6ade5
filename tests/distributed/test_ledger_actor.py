"""LedgerInventoryActor on a real RedisLedger: batches queued behind a ledger call go out together in the next one."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from flashsale import RedisConfig
from flashsale.actors import (
    Breaker,
    LedgerInventoryActor,
    LedgerSku,
    LoopBridge,
    Outcome,
    Pipeline,
    Purchase,
)
from flashsale.redis._ledger import RedisLedger
from tests.ids import TEST_IDS, minted

T0 = 1_767_225_600_000_000


class GatedLedger(RedisLedger):
    """A real RedisLedger whose first reserve waits for ``release``; records each call's purchase counts."""

    def __init__(self, config: RedisConfig) -> None:
        super().__init__(config, skus=["a", "b"], idempotency_ttl=60.0, ids=TEST_IDS)
        self.calls: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def reserve(self, batches: Sequence[Sequence[Purchase]]) -> list[tuple[list[Outcome], object]]:  # type: ignore[override]
        self.calls.append([len(b) for b in batches])
        self.entered.set()
        self.release.wait(10)
        return super().reserve(batches)  # type: ignore[return-value]


async def test_queued_batches_share_one_ledger_call(redis_config: RedisConfig) -> None:
    """While the first call is in flight two more batches arrive: the next call decides both, per SKU, in order."""
    loop = asyncio.get_running_loop()
    ledger = GatedLedger(redis_config)
    ledger.open([LedgerSku("a", 3, None, None, None, 10), LedgerSku("b", 3, None, None, None, 10)])
    views: dict[str, object] = {}
    pipeline = Pipeline()
    actor = LedgerInventoryActor.start(
        pipeline,
        LoopBridge(loop),
        ledger=ledger,
        skus=["a", "b"],
        views=views,
        breaker=Breaker(3, 1),  # type: ignore[arg-type]
    )
    pipeline.inventory_of = {"a": actor, "b": actor}
    try:
        replies: list[asyncio.Future[Outcome]] = []

        def batch(*wants: tuple[str, str]) -> list[Purchase]:
            items = []
            for sku, user in wants:
                replies.append(loop.create_future())
                items.append(Purchase("", sku, user, 1, T0, None, None, replies[-1]))
            return items

        pipeline.to_inventory(batch(("a", "u1")))
        await asyncio.to_thread(ledger.entered.wait, 10)
        pipeline.to_inventory(batch(("a", "u2"), ("b", "u3")))
        pipeline.to_inventory(batch(("a", "u4"), ("a", "u5"), ("b", "u6")))
        ledger.release.set()
        outcomes = await asyncio.gather(*replies)
    finally:
        actor.stop()
        ledger.close()
    assert ledger.calls == [[1], [3, 2]]  # SKU a: u2, u4, u5; SKU b: u3, u6
    expected = [minted("a", 1), minted("a", 2), minted("b", 1), minted("a", 3), None, minted("b", 2)]
    assert [o.order_id for o in outcomes] == expected  # u5: stock 3 is gone
