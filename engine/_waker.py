"""The engine's timers: the periodic tick, and the wake-up for purchases waiting in a leaky bucket.

:func:`tick_every` sends the actors the time every ``tick_interval``
seconds (expiring reservations, releasing queued purchases).

The limiter actor cannot set timers (actors never read a clock), so it says
when its earliest queued purchase is due through its ``wake`` reply, and
the gateway keeps one loop timer for the earliest instant it has heard of.
When it fires, the gateway sends the limiter the time. Only on real time:
on virtual time (``tick_interval = 0``) the caller releases with
:meth:`SaleEngine.release_queued`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ._errors import EngineClosed, Unavailable
from ._types import TickReport

log = logging.getLogger("flashsale.engine")


async def tick_every(interval: float, tick: Callable[[], Awaitable[TickReport]], running: Callable[[], bool]) -> None:
    """Call ``tick`` every ``interval`` seconds while ``running()``: time enters the actors as data."""
    while running():
        await asyncio.sleep(interval)
        try:
            report = await tick()
        except EngineClosed:
            return
        except Unavailable as exc:  # the store or an actor failed this tick; the next one tries again
            log.warning("tick failed", extra={"reason": str(exc)})
            continue
        if report.expired:
            log.info("reservations expired", extra={"count": report.expired})


class Waker:
    """An :class:`flashsale.actors.Reply` that keeps one loop timer for the next queued release.

    Only ever called on the loop. ``clock`` is the engine's; ``fire`` sends
    the limiter the time; ``active`` says whether the engine still runs.
    """

    __slots__ = ("_active", "_clock", "_due", "_fire", "_loop", "_timer")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], int],
        fire: Callable[[], None],
        active: Callable[[], bool],
    ) -> None:
        self._loop = loop
        self._clock = clock
        self._fire = fire
        self._active = active
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0

    def done(self) -> bool:
        return False

    def set_result(self, due: int, /) -> None:
        if self._timer is not None:
            if due >= self._due:
                return
            self._timer.cancel()
        if not self._active():
            return
        self._due = due
        self._timer = self._loop.call_later(max(0, due - self._clock()) / 1_000_000, self._fired)

    def set_exception(self, exc: BaseException, /) -> None:
        """The limiter failed on a tick: the next purchase or tick tells it the time again."""

    def _fired(self) -> None:
        self._timer = None
        self._fire()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
