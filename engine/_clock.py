"""Clocks. The gateway reads one, once per request; actors never do.

A clock is any ``Callable[[], int]`` returning microseconds since the Unix
epoch. :class:`ManualClock` is for tests and replays: time moves only when
told to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeAlias

Clock: TypeAlias = Callable[[], int]


def wall_clock() -> int:
    """Now, in microseconds since the epoch."""
    return time.time_ns() // 1000


class ManualClock:
    """A clock that moves only when :meth:`advance` or :meth:`set` is called."""

    __slots__ = ("now",)

    def __init__(self, start: int = 1_767_225_600_000_000) -> None:  # 2026-01-01T00:00:00Z
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``."""
        self.now += round(seconds * 1_000_000)

    def set(self, at: int) -> None:
        """Jump to ``at`` (microseconds since the epoch)."""
        self.now = at


def to_datetime(at: int) -> datetime:
    """Microseconds since the epoch as an aware UTC datetime."""
    return datetime.fromtimestamp(at / 1_000_000, UTC)


def from_datetime(value: datetime) -> int:
    """An aware (or UTC-naive) datetime as microseconds since the epoch."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def no_offset(value: datetime | str) -> str:
    """Why a date-time without a UTC offset is refused, with the two ways to write it."""
    text = value.isoformat() if isinstance(value, datetime) else value
    return (
        f"{text} has no UTC offset, so it could be any time zone's; write {text}Z for UTC,"
        f" or add the offset of the time zone you mean, such as {text}+08:00"
    )
