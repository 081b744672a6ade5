"""The one-way bridge from actor threads back to the asyncio loop.

The gateway ``tell``s an actor a message that carries asyncio futures. The
actor never touches those futures itself (they are not thread-safe); it
collects ``(future, value)`` pairs while it works through a batch and hands
them to the loop with a single ``loop.call_soon_threadsafe``. One wake-up of
the loop per batch, not per request, is what keeps the thread crossing cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ._messages import Reply


def _resolve_all(items: list[tuple[Reply, Any]]) -> None:
    for future, value in items:
        if not future.done():  # the caller may have gone away (cancelled)
            future.set_result(value)


class LoopBridge:
    """Resolves asyncio futures on ``loop`` from any thread, in batches."""

    __slots__ = ("_loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def resolve(self, items: list[tuple[Reply, Any]]) -> None:
        """Set every future's result on the loop, in one loop wake-up."""
        if not items:
            return
        # A closed loop raises RuntimeError: nobody is waiting for these answers any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(_resolve_all, items)


class Countdown:
    """A :class:`actors.Reply` that answers ``future`` with ``value`` after ``n`` answers.

    For one request whose work is finished by several actors (each inventory
    owner that a tick's expiries touch): each answers its part, and the
    caller hears once, after the last. Only ever called on the loop.
    """

    __slots__ = ("_future", "_left", "_value")

    def __init__(self, future: asyncio.Future[Any], n: int, value: Any) -> None:
        self._future = future
        self._left = n
        self._value = value

    def done(self) -> bool:
        return self._future.done()

    def set_result(self, _: Any, /) -> None:
        self._left -= 1
        if not self._left and not self._future.done():
            self._future.set_result(self._value)
