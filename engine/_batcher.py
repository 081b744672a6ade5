"""The per-tick batcher: the purchases of one loop tick cross to the actors as one message.

Every thread hop costs a wake-up and a GIL hand-off, so the gateway never
sends a purchase on its own. The first purchase of a loop tick schedules
:meth:`TickBatcher.send` with ``loop.call_soon``; every purchase the same
tick adds joins it; when the tick's callbacks run, the whole batch is handed
to the backend's front stage in one message. Answers come back the same
way, one loop wake-up per batch (:class:`flashsale.actors.LoopBridge`).

:class:`Gathered` and :class:`Slot` answer a whole
:meth:`SaleEngine.purchase_many` call with one future: each purchase's
reply is a slot in a shared result list. Everything here runs on the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from flashsale.actors import Outcome, Purchase


class TickBatcher:
    """Collects the purchases of one loop tick and sends them on as one batch."""

    __slots__ = ("_loop", "_pending", "_send")

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Callable[[tuple[Purchase, ...]], None]) -> None:
        self._loop = loop
        self._send = send
        self._pending: list[Purchase] = []

    def add(self, purchase: Purchase) -> None:
        """Queue ``purchase`` behind the others of this loop tick."""
        pending = self._pending
        if not pending:
            self._loop.call_soon(self.send)
        pending.append(purchase)

    def send(self) -> None:
        """Send what this tick has collected now (the scheduled call, or a caller that must overtake it)."""
        batch, self._pending = self._pending, []
        if batch:
            self._send(tuple(batch))


class Gathered:
    """The answers of one :meth:`SaleEngine.purchase_many` call."""

    __slots__ = ("future", "left", "results")

    def __init__(self, n: int, future: asyncio.Future[list[Outcome]]) -> None:
        self.results: list[Outcome | None] = [None] * n
        self.left = n
        self.future = future


class Slot:
    """One purchase's place in a :class:`Gathered`; an :class:`flashsale.actors.Reply`."""

    __slots__ = ("_done", "_gathered", "_index")

    def __init__(self, gathered: Gathered, index: int) -> None:
        self._gathered = gathered
        self._index = index
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, outcome: Outcome, /) -> None:
        self._done = True
        g = self._gathered
        g.results[self._index] = outcome
        g.left -= 1
        if not g.left and not g.future.done():
            g.future.set_result(g.results)  # type: ignore[arg-type]

    def set_exception(self, exc: BaseException, /) -> None:
        """A purchase is always answered with an outcome; a failure fails the whole call."""
        self._done = True
        if not self._gathered.future.done():
            self._gathered.future.set_exception(exc)
