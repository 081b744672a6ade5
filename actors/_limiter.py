"""The limiter actor: token buckets in front of everything else.

A token bucket holds up to ``burst`` tokens and gains ``rate`` tokens per
second; each request takes one. Buckets refill from the ``at`` of the
messages they see, never from a clock, so the same traffic gets the same
decisions at any replay speed.

Scopes: one global bucket, and one bucket per user. Per-user buckets live in
a table of bounded size. A bucket that has refilled to ``burst`` is the same
as no bucket, so it can be forgotten. To find one when the table is full, a
min-heap holds each bucket's refill time, and entries made stale by a later
touch are skipped when they surface. When no bucket has refilled, a new
user is answered ``overloaded`` rather than letting anyone's limit leak.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import assert_never

from ._bridge import LoopBridge
from ._messages import LimiterMessage, Outcome, Purchase, PurchaseBatch
from ._pipeline import Pipeline, Stage


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """A token bucket's shape: ``rate`` tokens per second, at most ``burst``."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if not self.rate > 0 or self.burst < 1:
            raise ValueError(f"a bucket needs rate > 0 and burst >= 1, got {self}")


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

    def full_at(self) -> int:
        """The first instant (message time) at which :meth:`refill` finds the bucket full."""
        tokens, burst, per_us, last = self.tokens, self._burst, self._per_us, self.last
        at = last + math.ceil((burst - tokens) / per_us)
        # Nudge by a microsecond either way so the answer agrees with refill()'s float arithmetic.
        while at > last and tokens + (at - 1 - last) * per_us >= burst:
            at -= 1
        while tokens + (at - last) * per_us < burst:
            at += 1
        return at

    def wait_seconds(self) -> float:
        """Seconds until one token is available (call after :meth:`refill`)."""
        return max(0.0, (1.0 - self.tokens) / (self._per_us * 1_000_000))


class LimiterActor(Stage):
    """Admits or rejects each purchase of a batch, in arrival order."""

    def __init__(
        self,
        pipeline: Pipeline,
        bridge: LoopBridge,
        *,
        global_bucket: BucketSpec | None,
        per_user: BucketSpec | None,
        max_tracked_users: int = 200_000,
    ) -> None:
        super().__init__(pipeline, bridge)
        self._global_spec = global_bucket
        self._global: TokenBucket | None = None
        self._user_spec = per_user
        self._users: dict[str, TokenBucket] = {}
        self._refills: list[tuple[int, str]] = []  # (full_at, user), a heap; may hold stale entries
        self._max_users = max_tracked_users

    def handle(self, message: LimiterMessage) -> None:
        match message:
            case PurchaseBatch(items):
                self._admit(items)
            case _:
                assert_never(message)

    def _admit(self, items: tuple[Purchase, ...]) -> None:
        passed: list[Purchase] = []
        replies: list[tuple[object, Outcome]] = []
        for p in items:
            rejection = self._check(p)
            if rejection is None:
                passed.append(p)
            else:
                replies.append((p.reply, rejection))
        self._pipeline.after_limiter(passed)
        self._bridge.resolve(replies)  # type: ignore[arg-type]

    def _check(self, p: Purchase) -> Outcome | None:
        """Take one token from every bucket in scope, or none at all."""
        at = p.at
        gbucket = self._global
        if self._global_spec is not None:
            if gbucket is None:
                gbucket = self._global = TokenBucket(self._global_spec, at)
            if gbucket.refill(at) < 1.0:
                return _limited(p, gbucket.wait_seconds(), "the sale is taking too many requests")
        ubucket: TokenBucket | None = None
        if self._user_spec is not None:
            ubucket = self._users.get(p.user)
            if ubucket is None:
                if len(self._users) >= self._max_users and not self._forget_one(at):
                    return Outcome("overloaded", p.sku, p.qty, detail="too many buyers are being rate limited")
                ubucket = self._users[p.user] = TokenBucket(self._user_spec, at)
            if ubucket.refill(at) < 1.0:
                return _limited(p, ubucket.wait_seconds(), "too many requests from this user")
        if gbucket is not None:
            gbucket.tokens -= 1.0
        if ubucket is not None:
            ubucket.tokens -= 1.0
            heapq.heappush(self._refills, (ubucket.full_at(), p.user))
            if len(self._refills) > 2 * self._max_users + 64:
                self._compact()
        return None

    def _forget_one(self, at: int) -> bool:
        """Drop one user bucket that has refilled by ``at``, if there is one."""
        refills, users = self._refills, self._users
        while refills and refills[0][0] <= at:
            _, user = heapq.heappop(refills)
            bucket = users.get(user)
            if bucket is not None and bucket.is_full(at):
                del users[user]
                return True
        return False

    def _compact(self) -> None:
        """Rebuild the heap from the live buckets, dropping stale entries."""
        self._refills = [(b.full_at(), u) for u, b in self._users.items()]
        heapq.heapify(self._refills)


def _limited(p: Purchase, wait: float, detail: str) -> Outcome:
    return Outcome("rate_limited", p.sku, p.qty, retry_after=wait, detail=detail)
