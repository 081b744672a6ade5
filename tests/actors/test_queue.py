"""PurchaseQueue: batches that pile up behind a round trip are taken together, in order, with no lost wake-up."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from flashsale.actors import LoopBridge, Outcome, Pipeline, Purchase, PurchaseQueue, PurchasesWaiting, Stage
from tests.conftest import T0


def _purchase(reply: Any, user: str) -> Purchase:
    return Purchase("", "a", user, 1, T0, None, None, reply)


def test_put_says_when_a_wake_up_is_needed() -> None:
    """Only a put into an empty queue asks for a wake-up; take honours its limit and says what is left."""
    q = PurchaseQueue()
    ps = [_purchase(None, f"u{i}") for i in range(5)]
    assert q.put(ps[:2]) is True
    assert q.put(ps[2:]) is False
    assert q.take(3) == (tuple(ps[:3]), True)
    assert q.take(3) == (tuple(ps[3:]), False)
    assert q.put(ps[:1]) is True


class _Recording(Stage):
    """Takes at most two purchases per wake-up, answers each with the size of its take; can be gated."""

    def __init__(self, pipeline: Pipeline, bridge: LoopBridge, gate: threading.Event, fail: bool = False) -> None:
        super().__init__(pipeline, bridge)
        self.queue = pipeline.queues[self.actor_ref] = PurchaseQueue()
        self.gate = gate
        self.fail = fail

    def handle(self, message: PurchasesWaiting) -> None:
        self.gate.wait(10)
        items = self.take_queued(self.queue, 2)
        if self.fail:
            raise RuntimeError("bug in a handler")
        self._bridge.resolve([(p.reply, Outcome("reserved", p.sku, len(items), detail=p.user)) for p in items])


async def test_queued_purchases_are_taken_together_in_order() -> None:
    """Purchases delivered while the stage is busy go in its next takes, two at a time, none forgotten."""
    loop = asyncio.get_running_loop()
    pipeline = Pipeline()
    gate = threading.Event()
    ref = _Recording.start(pipeline, LoopBridge(loop), gate)
    try:
        replies = [loop.create_future() for _ in range(5)]
        for i, reply in enumerate(replies):
            pipeline.deliver(ref, [_purchase(reply, f"u{i}")])
        gate.set()
        outcomes = await asyncio.gather(*replies)
    finally:
        ref.stop()
    assert [o.detail for o in outcomes] == ["u0", "u1", "u2", "u3", "u4"]
    assert [o.qty for o in outcomes] == [2, 2, 2, 2, 1]  # five purchases in three takes of at most two


async def test_failure_answers_the_purchases_in_hand(caplog: pytest.LogCaptureFixture) -> None:
    """A handler that raises after taking purchases answers exactly those unavailable; the rest still come."""
    loop = asyncio.get_running_loop()
    pipeline = Pipeline()
    open_gate = threading.Event()
    open_gate.set()
    ref = _Recording.start(pipeline, LoopBridge(loop), open_gate, fail=True)
    try:
        replies = [loop.create_future() for _ in range(3)]
        pipeline.deliver(ref, [_purchase(r, f"u{i}") for i, r in enumerate(replies)])
        outcomes = await asyncio.gather(*replies)
    finally:
        ref.stop()
    assert [o.result for o in outcomes] == ["unavailable"] * 3
    assert [r.message for r in caplog.records] == ["actor failed on a message"] * 2  # two takes, two failures
