"""The one-way bridge from actor threads back to the asyncio loop.

The gateway ``tell``s an actor a message that carries asyncio futures. The
actor never touches those futures itself (they are not thread-safe); it
collects ``(future, value)`` pairs while it works through a batch and hands
them to the loop with a single ``loop.call_soon_threadsafe``. One wake-up of
the loop per batch, not per request, is what keeps the thread crossing cheap.
A request the actor cannot answer is failed with ``set_exception`` in the
same wake-up: a failure is never a value for the caller to inspect.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ._messages import Reply


def _resolve_all(items: list[tuple[Reply, Any]], failed: list[tuple[Reply, BaseException]]) -> None:
    for future, value in items:
        if not future.done():  # the caller may have gone away (cancelled)
            future.set_result(value)
    for future, exc in failed:
        if not future.done():
            future.set_exception(exc)


class LoopBridge:
    """Resolves asyncio futures on ``loop`` from any thread, in batches."""

    __slots__ = ("_loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def resolve(self, items: list[tuple[Reply, Any]], failed: list[tuple[Reply, BaseException]] | None = None) -> None:
        """Set every future's result, and fail every ``failed`` one with its exception, in one loop wake-up."""
        if not items and not failed:
            return
        # A closed loop raises RuntimeError: nobody is waiting for these answers any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(_resolve_all, items, failed or [])

    def fail(self, reply: Reply, exc: BaseException) -> None:
        """Fail one request's ``reply`` with ``exc`` (one of :class:`actors.Unavailable`'s branch)."""
        self.resolve([], [(reply, exc)])


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

    def set_exception(self, exc: BaseException, /) -> None:
        """One part failed: the caller hears the failure at once."""
        self._left -= 1
        if not self._future.done():
            self._future.set_exception(exc)
