"""Rate-limit buckets on message time: the token bucket and the leaky bucket.

Both answer the same two questions for the limiter actor — "when could this
bucket let one more request through?" (:meth:`next_free`) and "let one
through at that time" (:meth:`take`) — and both know when they are back at
rest (:meth:`full_at`), so an idle bucket can be forgotten: a bucket at rest
is the same as no bucket.

- The **token bucket** holds up to ``burst`` tokens and gains ``rate`` per
  second; a request takes one now or is refused. Bursts up to ``burst`` pass
  at once: the shape for user-facing traffic.
- The **leaky bucket** lets requests out at a constant ``rate``, with up to
  ``burst`` passing at once before the outflow rate applies. It is kept as
  the generic cell rate algorithm: one integer, the instant the bucket will
  have drained (``tat``), and a fixed emission interval in whole
  microseconds, so every decision is exact integer arithmetic. Refusing
  (``queue = 0``) it decides like a token bucket of the same shape; in queue
  mode a request that would have to wait is given its release time instead,
  and at most ``queue`` wait at once.

Neither reads a clock: time is the ``at`` of the messages the limiter sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

MAX_LEAKY_RATE = 1_000_000.0
"""A leaky bucket's outflow is one request per whole microsecond at most."""


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """A bucket's shape.

    ``rate`` requests per second; ``burst`` the token bucket's size, or how
    many may pass a leaky bucket at once; ``queue`` (leaky only) how many
    may wait their turn, 0 to refuse whatever would have to wait.
    """

    rate: float
    burst: int
    algorithm: Literal["token", "leaky"] = "token"
    queue: int = 0

    def __post_init__(self) -> None:
        if not self.rate > 0 or self.burst < 1:
            raise ValueError(f"a bucket needs rate > 0 and burst >= 1, got {self}")
        if self.algorithm not in ("token", "leaky"):
            raise ValueError(f"a bucket's algorithm is 'token' or 'leaky', got {self.algorithm!r}")
        if self.queue < 0 or (self.queue and self.algorithm != "leaky"):
            raise ValueError(f"only a leaky bucket can queue, and queue must be >= 0, got {self}")
        if self.algorithm == "leaky" and not self.rate <= MAX_LEAKY_RATE:
            raise ValueError(f"a leaky bucket's rate is at most {MAX_LEAKY_RATE:.0f} per second, got {self.rate}")


class TokenBucket:
    """One token bucket on message time (microseconds)."""

    __slots__ = ("_burst", "_per_us", "last", "tokens")

    def __init__(self, spec: BucketSpec, at: int) -> None:
        self._per_us = spec.rate / 1_000_000
        self._burst = float(spec.burst)
        self.tokens = self._burst
        self.last = at

    def refill(self, at: int) -> float:
        """Bring the bucket up to time ``at``; return the tokens it holds."""
        if at > self.last:
            self.tokens = min(self._burst, self.tokens + (at - self.last) * self._per_us)
            self.last = at
        return self.tokens

    def is_full(self, at: int) -> bool:
        """True when the bucket would be full at ``at`` (so it can be dropped)."""
        return self.refill(at) >= self._burst

    def respec(self, spec: BucketSpec, at: int) -> None:
        """Refill up to ``at`` at the old rate, then take ``spec``'s rate and burst (tokens clipped to it)."""
        self.refill(at)
        self._per_us = spec.rate / 1_000_000
        self._burst = float(spec.burst)
        self.tokens = min(self.tokens, self._burst)

    def _reach(self, target: float) -> int:
        """The first instant at which :meth:`refill` finds ``target`` tokens (``target <= burst``)."""
        tokens, per_us, last = self.tokens, self._per_us, self.last
        if tokens >= target:
            return last
        at = last + math.ceil((target - tokens) / per_us)
        # Nudge by a microsecond either way so the answer agrees with refill()'s float arithmetic.
        while at > last and tokens + (at - 1 - last) * per_us >= target:
            at -= 1
        while tokens + (at - last) * per_us < target:
            at += 1
        return at

    def full_at(self) -> int:
        """The first instant (message time) at which :meth:`refill` finds the bucket full."""
        return self._reach(self._burst)

    def next_free(self, at: int) -> int:
        """The first instant from ``at`` on at which the bucket holds a whole token."""
        if self.refill(at) >= 1.0:
            return at
        return self._reach(1.0)

    def take(self, at: int) -> None:
        """Take one token (call after :meth:`next_free` said ``at``)."""
        self.tokens -= 1.0

    def wait_seconds(self) -> float:
        """Seconds until one token is available (call after :meth:`refill`)."""
        return max(0.0, (1.0 - self.tokens) / (self._per_us * 1_000_000))


class LeakyBucket:
    """One leaky bucket on message time, in exact integer microseconds.

    ``tat`` is when everything let through so far will have flowed out;
    ``waiting`` counts the requests given a release time still ahead (the
    limiter lowers it as it releases them).
    """

    __slots__ = ("_interval", "_tolerance", "queue", "tat", "waiting")

    def __init__(self, spec: BucketSpec, at: int) -> None:
        self._interval = max(1, round(1_000_000 / spec.rate))
        self._tolerance = (spec.burst - 1) * self._interval
        self.queue = spec.queue
        self.tat = at
        self.waiting = 0

    def respec(self, spec: BucketSpec, at: int) -> None:
        """Take ``spec``'s rate and burst for what passes from now on (its queue bound stays)."""
        self._interval = max(1, round(1_000_000 / spec.rate))
        self._tolerance = (spec.burst - 1) * self._interval

    @property
    def interval(self) -> int:
        """Microseconds between two requests at the outflow rate."""
        return self._interval

    def next_free(self, at: int) -> int:
        """The first instant from ``at`` on at which one more request may pass."""
        return max(at, self.tat - self._tolerance)

    def take(self, at: int) -> None:
        """Let one request through at ``at`` (no earlier than :meth:`next_free`)."""
        self.tat = max(self.tat, at) + self._interval

    def full_at(self) -> int:
        """When the bucket has drained completely (at rest; safe to forget)."""
        return self.tat

    def is_full(self, at: int) -> bool:
        """True when the bucket is at rest at ``at``: drained, nobody waiting."""
        return self.tat <= at and not self.waiting


Bucket = TokenBucket | LeakyBucket


def new_bucket(spec: BucketSpec, at: int) -> Bucket:
    """A fresh bucket of ``spec``'s algorithm, at rest at ``at``."""
    return TokenBucket(spec, at) if spec.algorithm == "token" else LeakyBucket(spec, at)
