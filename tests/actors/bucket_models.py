"""Reference models of the two buckets: a few lines of exact arithmetic each.

The token model counts tokens as exact fractions; the leaky model is a level
of water in whole microseconds that drains one microsecond per microsecond
(each request pours in one emission interval). Both are written from the
definitions, not from the code under test.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction

CLOSE_CALL = Fraction(1, 10**9)
"""A token count this near a threshold is too close to call against float arithmetic."""


class TokenModel:
    """``burst`` tokens, ``rate`` more per second (exactly), one per request."""

    def __init__(self, rate: float, burst: int, at: int) -> None:
        self.per_us = Fraction(rate) / 1_000_000
        self.burst = Fraction(burst)
        self.tokens = self.burst
        self.last = at
        self.whole = True  # tokens is burst minus whole takes: float holds it exactly too

    def wait(self, at: int) -> Fraction:
        """Microseconds from ``at`` until a whole token (0: now)."""
        if at > self.last:
            refilled = self.tokens + (at - self.last) * self.per_us
            self.tokens = min(self.burst, refilled)
            self.whole = refilled >= self.burst
            self.last = at
        return max(Fraction(0), (1 - self.tokens) / self.per_us)

    def close_call(self) -> bool:
        """True when float arithmetic may rightly land on the other side of one token."""
        return not self.whole and abs(self.tokens - 1) < CLOSE_CALL

    def take(self, at: int) -> None:
        self.tokens -= 1


class LeakyModel:
    """A bucket of ``burst`` emission intervals draining at one microsecond per microsecond.

    A request pours in one interval; it may flow now if the bucket had room,
    otherwise it waits until the level has sunk enough. ``releases`` are the
    release times still ahead (at most ``queue``).
    """

    def __init__(self, rate: float, burst: int, at: int, queue: int = 0) -> None:
        self.interval = max(1, round(1_000_000 / rate))  # the outflow, in whole microseconds by definition
        self.room = burst * self.interval
        self.level = 0
        self.last = at
        self.queue = queue
        self.releases: deque[int] = deque()

    def released_by(self, at: int) -> int:
        """Drain to ``at``; return how many waiting requests were released by then."""
        self.level = max(0, self.level - (at - self.last))
        self.last = max(self.last, at)
        n = 0
        while self.releases and self.releases[0] <= at:
            self.releases.popleft()
            n += 1
        return n

    def wait(self, at: int) -> int:
        """Microseconds from ``at`` until one more request fits (0: now)."""
        self.released_by(at)
        return max(0, self.level + self.interval - self.room)

    def close_call(self) -> bool:
        return False

    def take(self, at: int) -> None:
        wait = self.wait(at)
        self.level += self.interval
        if wait:
            self.releases.append(at + wait)
