"""Proportional logs: one line per kind of trouble per interval, with a count.

An attack must not turn into a log flood: a malformed request, a client
that vanishes mid-body, a purchase refused ``503`` are each a *kind* of
trouble. The first of a kind is logged at once; the rest of that interval
are only counted, and one line at the end of the interval says how many
there were (``count``, ``seconds``). Nothing carries a traceback except the
first ``unhandled_error`` of an interval (a bug in flashsale, worth one).

Only ever called on the event loop (handlers, the HTTP protocol).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import structlog

INTERVAL = 10.0
"""Seconds over which repeats of one kind of trouble are summed into one line."""

log = structlog.get_logger("flashsale.http")


class Trouble:
    """Counts troubles by kind and logs each kind at most twice per :data:`INTERVAL`."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._open: dict[str, list[int]] = {}  # kind -> [repeats since the first, level]
        self.totals: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: dict[str, list[asyncio.Event]] = {}

    def watch(self, kind: str) -> asyncio.Event:
        """An event the next occurrence of ``kind`` sets (for tests and tools; call on the loop)."""
        event = asyncio.Event()
        self._watchers.setdefault(kind, []).append(event)
        return event

    def note(self, kind: str, level: int = logging.WARNING, *, exc_info: bool = False, **fields: Any) -> None:
        """One occurrence of ``kind``: logged if it is the first of its interval, else counted."""
        self.totals[kind] = self.totals.get(kind, 0) + 1
        if self._watchers:
            for event in self._watchers.pop(kind, ()):
                event.set()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a caller outside the server): log each one
            loop = None
        if loop is not self._loop:  # a new loop (a new server in this process): its timers, its windows
            self._loop, self._open = loop, {}
        window = self._open.get(kind)
        if window is not None:
            window[0] += 1
            return
        if exc_info:
            fields = {**fields, "exc_info": True}
        log.log(level, kind, **fields)
        if loop is not None:
            self._open[kind] = [0, level]
            loop.call_later(self.interval, self._close, kind)

    def _close(self, kind: str) -> None:
        window = self._open.pop(kind, None)
        if window is None:
            return
        repeats, level = window
        if repeats:
            log.log(level, kind, count=repeats, seconds=self.interval, repeated=True)


TROUBLE = Trouble()
"""The server's one tally (a process serves one app)."""
