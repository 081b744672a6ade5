"""The limiter actor: rate-limit scopes in front of everything else.

Four scopes, each optional and each a token or a leaky bucket
(:mod:`actors._buckets`): one global bucket, one per SKU, one per user and
one per client IP. A purchase passes only when every scope in force lets it
through, and then it takes its share from all of them; a refused purchase
takes nothing from any. A purchase with no client IP (an embedded caller
that passed none) skips the per-IP scope rather than sharing one bucket with
every other such caller.

Refusals: ``rate_limited`` with ``retry_after``, the time until the slowest
refusing bucket admits one; ``overloaded`` when a leaky bucket's queue is
full, or a keyed table is full of buckets still in use.

Queue mode: a purchase that a queueing leaky bucket can let through only
later is held here with its release time, in one heap for the whole actor,
and sent on when time reaches it. Time arrives as data: the ``at`` of later
purchases, or a :class:`LimiterTick` the gateway sends. Whenever the earliest
release changes (and after every tick, while anything waits), the actor tells
the gateway's ``wake`` reply when that is, so the gateway keeps one timer, not
one per purchase. :class:`DrainQueue` answers everything still waiting.

Keyed tables are bounded. A bucket at rest is the same as no bucket, so it
can be forgotten. To find one when a table is full, a min-heap holds one
entry per bucket: a time by which it may be at rest. Taking from a bucket
only moves its rest time later, so an entry is never late, only early;
an entry that surfaces early is pushed back with the bucket's real rest
time. Deciding a purchase therefore costs no heap work at all. When no
bucket is at rest, a new key is answered ``overloaded`` rather than letting
anyone's limit leak.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any, assert_never

from ._bridge import LoopBridge
from ._buckets import Bucket, BucketSpec, LeakyBucket, new_bucket
from ._control import Scope, SetLimits
from ._messages import DrainQueue, LimiterMessage, LimiterTick, Outcome, Purchase, PurchaseBatch, Reply
from ._pipeline import Pipeline, Stage


class _Scope:
    """One scope's buckets: a table keyed by what the scope limits, bounded."""

    __slots__ = ("buckets", "detail", "field", "max_keys", "name", "refills", "spec")

    def __init__(self, name: Scope, spec: BucketSpec, field: int | None, detail: str, max_keys: int) -> None:
        self.name = name
        self.spec = spec
        self.field = field  # the Purchase field the scope is keyed by; None: one bucket for everything
        self.detail = detail
        self.max_keys = max_keys
        self.buckets: dict[str, Bucket] = {}
        self.refills: list[tuple[int, str]] = []  # (at rest no earlier than, key), a heap: one per bucket

    def get(self, key: str, at: int) -> Bucket | None:
        """The bucket for ``key``, made at rest if new; ``None`` when the table is full."""
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.max_keys and not self._forget_one(at):
                return None
            bucket = self.buckets[key] = new_bucket(self.spec, at)
            heapq.heappush(self.refills, (at, key))
        return bucket

    def respec(self, spec: BucketSpec, at: int) -> None:
        """New rate and burst from ``at`` on; every bucket keeps what it holds (see :meth:`Bucket.respec`)."""
        self.spec = spec
        for bucket in self.buckets.values():
            bucket.respec(spec, at)
        # A bucket's rest time may now be earlier than its heap entry says: entries may only be early.
        self.refills = [(min(t, self.buckets[k].full_at()), k) for t, k in self.refills]
        heapq.heapify(self.refills)

    def _forget_one(self, at: int) -> bool:
        """Drop one bucket that is at rest by ``at``, if there is one."""
        refills, buckets = self.refills, self.buckets
        while refills and refills[0][0] <= at:
            key = refills[0][1]
            bucket = buckets[key]
            if bucket.is_full(at):
                heapq.heappop(refills)
                del buckets[key]
                return True
            heapq.heapreplace(refills, (bucket.full_at(), key))  # surfaced early: its real rest time
        return False


class LimiterGauges:
    """What the limiter publishes for /metrics: purchases waiting in leaky-bucket queues.

    Written only by the limiter's thread; read anywhere (one atomic store and load).
    """

    __slots__ = ("queued",)

    def __init__(self) -> None:
        self.queued = 0


class LimiterActor(Stage):
    """Admits, queues or refuses each purchase of a batch, in arrival order."""

    def __init__(
        self,
        pipeline: Pipeline,
        bridge: LoopBridge,
        *,
        global_bucket: BucketSpec | None = None,
        per_sku: BucketSpec | None = None,
        per_user: BucketSpec | None = None,
        per_ip: BucketSpec | None = None,
        max_tracked_users: int = 200_000,
        wake: Reply | None = None,
        gauges: LimiterGauges | None = None,
    ) -> None:
        super().__init__(pipeline, bridge)
        self._gauges = gauges or LimiterGauges()
        n = max_tracked_users
        scopes: tuple[tuple[Scope, BucketSpec | None, int | None, str, int], ...] = (
            ("global", global_bucket, None, "the sale is taking too many requests", 1),
            ("per_sku", per_sku, Purchase._fields.index("sku"), "this sku is taking too many requests", n),
            ("per_user", per_user, Purchase._fields.index("user"), "too many requests from this user", n),
            ("per_ip", per_ip, Purchase._fields.index("client_ip"), "too many requests from this address", n),
        )
        self._scopes = [_Scope(name, spec, f, detail, k) for name, spec, f, detail, k in scopes if spec is not None]
        self._queue: list[tuple[int, int, Purchase, tuple[LeakyBucket, ...]]] = []  # (release_at, seq, ...)
        self._seq = itertools.count()
        self._wake = wake
        self._announced: int | None = None

    def handle(self, message: LimiterMessage | SetLimits) -> None:
        match message:
            case SetLimits(changes, at, reply):
                by_name = {scope.name: scope for scope in self._scopes}
                for name, spec in changes:
                    if name in by_name:
                        by_name[name].respec(spec, at)
                if reply is not None:
                    self._bridge.resolve([(reply, None)])
            case PurchaseBatch(items):
                self._admit(items)
            case LimiterTick(at, reply):
                passed: list[Purchase] = []
                self._release_due(at, passed)
                self._pipeline.after_limiter(passed)
                replies: list[tuple[Reply, Any]] = []
                if reply is not None:
                    replies.append((reply, (len(passed), len(self._queue), self._queue[0][0] if self._queue else None)))
                self._announced = None  # re-announce: a timer may have fired a little early
                self._announce(replies)
            case DrainQueue(reply):
                detail = "the sale stopped before this purchase's turn"
                drained = [
                    (p.reply, Outcome("unavailable", p.sku, p.qty, detail=detail)) for _, _, p, _ in sorted(self._queue)
                ]
                for _, _, _, buckets in self._queue:
                    for b in buckets:
                        b.waiting -= 1
                self._queue.clear()
                self._gauges.queued = 0
                self._bridge.resolve([*drained, (reply, len(drained))])
            case _:
                assert_never(message)

    def _admit(self, items: tuple[Purchase, ...]) -> None:
        passed: list[Purchase] = []
        replies: list[tuple[Reply, Any]] = []
        queue = self._queue
        for p in items:
            if queue and queue[0][0] <= p.at:
                self._release_due(p.at, passed)
            decision = self._check(p)
            if type(decision) is int:
                if decision == p.at:
                    passed.append(p)
            else:
                replies.append((p.reply, decision))
        self._pipeline.after_limiter(passed)
        self._announce(replies)

    def _check(self, p: Purchase) -> Outcome | int:
        """Take one pass from every bucket in scope, or none at all.

        Returns the refusal, or the release time: ``p.at`` to pass now, a
        later instant when ``p`` has been queued until then.
        """
        at = p.at
        release = at
        taking: list[Bucket] = []
        wait = 0
        refused: _Scope | None = None
        queue_full = False
        for scope in self._scopes:
            key: str | None = "" if scope.field is None else p[scope.field]  # type: ignore[assignment]  # str fields
            if key is None:
                continue
            bucket = scope.get(key, at)
            if bucket is None:
                return Outcome("overloaded", p.sku, p.qty, detail="too many buyers are being rate limited")
            free = bucket.next_free(at)
            if free > at:
                if type(bucket) is not LeakyBucket or not bucket.queue:
                    if free - at > wait:
                        wait, refused = free - at, scope
                    continue
                if bucket.waiting >= bucket.queue:
                    queue_full = True
                    continue
                release = max(release, free)
            taking.append(bucket)
        if refused is not None:
            return Outcome("rate_limited", p.sku, p.qty, retry_after=wait / 1_000_000, detail=refused.detail)
        if queue_full:
            return Outcome("overloaded", p.sku, p.qty, detail="too many purchases are waiting their turn")
        waiting: list[LeakyBucket] = []
        for bucket in taking:
            bucket.take(release)
            if release > at and type(bucket) is LeakyBucket:
                bucket.waiting += 1
                waiting.append(bucket)
        if release > at:
            heapq.heappush(self._queue, (release, next(self._seq), p, tuple(waiting)))
        return release

    def _release_due(self, at: int, passed: list[Purchase]) -> None:
        """Move every queued purchase whose release time is ``<= at`` onto ``passed``, in release order."""
        queue = self._queue
        while queue and queue[0][0] <= at:
            _, _, p, buckets = heapq.heappop(queue)
            for b in buckets:
                b.waiting -= 1
            passed.append(p)

    def _announce(self, replies: list[tuple[Reply, Any]]) -> None:
        """Answer ``replies``, and tell the gateway when the next release is due if that changed."""
        queue = self._queue
        self._gauges.queued = len(queue)
        if not queue:
            self._announced = None
        elif self._wake is not None and queue[0][0] != self._announced:
            self._announced = queue[0][0]
            replies.append((self._wake, self._announced))
        self._bridge.resolve(replies)
