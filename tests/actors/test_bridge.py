"""The asyncio bridge and the stage guard: answers cross threads in batches, failures fail buyers only."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pykka
import pytest

from flashsale.actors import LoopBridge, Outcome, Pipeline, Purchase, PurchaseBatch, Settled, Stage, tell
from tests.conftest import T0


def _purchase(reply: Any, user: str = "u1") -> Purchase:
    return Purchase("", "a", user, 1, T0, None, None, reply)


async def test_resolve_from_another_thread_in_one_wake_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of answers set from an actor thread costs one call_soon_threadsafe."""
    loop = asyncio.get_running_loop()
    calls: list[object] = []
    real = loop.call_soon_threadsafe

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    futures = [loop.create_future() for _ in range(5)]
    bridge = LoopBridge(loop)
    thread = threading.Thread(target=bridge.resolve, args=([(f, i) for i, f in enumerate(futures)],))
    thread.start()
    assert await asyncio.gather(*futures) == [0, 1, 2, 3, 4]
    thread.join()
    assert len(calls) == 1


async def test_resolve_skips_cancelled_futures() -> None:
    """A caller that went away (cancelled future) does not stop the others' answers."""
    loop = asyncio.get_running_loop()
    gone, waiting = loop.create_future(), loop.create_future()
    gone.cancel()
    LoopBridge(loop).resolve([(gone, 1), (waiting, 2)])
    assert await waiting == 2
    assert gone.cancelled()


def test_resolve_nothing_needs_no_loop() -> None:
    """An empty batch does not touch the loop, even a closed one."""
    loop = asyncio.new_event_loop()
    loop.close()
    LoopBridge(loop).resolve([])


def test_resolve_on_closed_loop_is_dropped() -> None:
    """Answers for a closed loop are dropped without raising: nobody waits for them."""
    loop = asyncio.new_event_loop()
    future = loop.create_future()
    loop.close()
    LoopBridge(loop).resolve([(future, 1)])
    assert not future.done()


class _Exploding(Stage):
    """A stage whose handler always fails."""

    def handle(self, message: Any) -> None:
        raise RuntimeError("bug in a handler")


async def test_failed_message_fails_its_buyers_not_the_actor(caplog: pytest.LogCaptureFixture) -> None:
    """A handler exception answers every purchase in the message unavailable; the actor lives on."""
    loop = asyncio.get_running_loop()
    ref = _Exploding.start(Pipeline(), LoopBridge(loop))
    replies = [loop.create_future() for _ in range(3)]
    outcome = Outcome("reserved", "a", 1)
    ref.tell(PurchaseBatch((_purchase(replies[0]), _purchase(replies[1]))))
    ref.tell(Settled(((_purchase(replies[2]), outcome),)))  # purchases nested in tuples are found too
    for result in await asyncio.gather(*replies):
        assert (result.result, result.detail) == ("unavailable", "internal error; try again")
    assert ref.is_alive()
    assert [r.message for r in caplog.records] == ["actor failed on a message"] * 2
    ref.stop()


def test_tell_to_stopped_actor_is_dropped() -> None:
    """tell() to an actor that already stopped returns False instead of raising."""
    ref = pykka.ThreadingActor.start()
    ref.stop()
    assert tell(ref, "late") is False
    alive = pykka.ThreadingActor.start()
    assert tell(alive, "hello") is True
