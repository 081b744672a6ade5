"""Replay: a scenario through the real engine and actors, on virtual time.

The driver keeps one rule that makes decisions repeatable: it submits every
event of one instant (the purchases as one :meth:`SaleEngine.purchase_many`
batch), awaits all their answers, and only then moves the clock. The actors
answer a batch only after every feedback message it causes (dedup hold
releases, units returned) has been sent, so nothing of one instant can still
be travelling when the next begins.

Time reaches the actors the way it does in a live server: every
``engine.tick_interval`` of virtual time, counted from the scenario's start,
the order writer is told the time and expires overdue reservations. A tick
that could expire nothing changes nothing, so the driver sends only the
ticks that land on or after some open reservation's deadline; a ten-minute
sale of 50,000 buyers is then a few ticks, not 600. Explicit ``expire``
events deliver the time at their own instant.

With a leaky bucket in queue mode some purchases are answered only when
their turn comes. The driver then submits purchases one by one, tells the
limiter the time, and waits for every answer except the ones the limiter
reports still queued; it wakes again at the limiter's next release. Which
purchases are answered by then does not depend on thread timing, and they
are recorded in the order they were made.

Retries and follow-ups are feedback: a retry is scheduled only after a
retryable answer, at answer time plus back-off; a pay or cancel only after
a reservation. At one instant, scheduled traffic goes first, then feedback
in the order it was scheduled.

The digest is sha256 over a versioned, canonical encoding of every decision
in order: one JSON array per decision, ``[index, at_us, op, user, sku, qty,
key, result, order_id, retry_after_us]`` with ``at_us`` counted from the
scenario's start (docs/scenarios.md, "The digest").
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import heapq

import orjson

from flashsale._clock import ManualClock
from flashsale._engine import SaleEngine
from flashsale._errors import TransitionRefused, Unavailable, UnknownOrder
from flashsale._types import PurchaseRequest
from flashsale.actors import BucketSpec, Outcome, untagged
from flashsale.room._replay import RoomReplay

from ._events import ADMIN_OPS, US, TrafficEvent
from ._format import RESULTS, Scenario
from ._result import Decision, ReplayResult, SkuSummary

DIGEST_VERSION = 1


class _Driver:
    """Feeds one scenario to one engine; see the module docstring for the rules."""

    def __init__(self, scenario: Scenario, engine: SaleEngine, clock: ManualClock, keep_log: bool) -> None:
        self.scenario = scenario
        self.engine = engine
        self.clock = clock
        self.t0 = scenario.start
        self.cadence_us = round(scenario.tick_interval * US)
        self.feedback: list[tuple[int, int, TrafficEvent, int]] = []  # (at, seq, event, attempt): a heap
        self.seq = 0
        self.due: list[tuple[int, str]] = []  # (expires_at, order_id) of open reservations: a heap, may be stale
        self.open: dict[str, tuple[str, str, int, int]] = {}  # order_id -> (user, sku, qty, expires_at)
        self.buyers: dict[str, str] = {}  # order_id -> its buyer, for pay/cancel events that name only the id
        # "<sku>-<n>" -> this replay's id: a file names an order by number (its tag, if any, is another run's key)
        self.by_number: dict[str, str] = {}
        self.known: set[str] = set()  # every order id reserved so far
        self.held: dict[tuple[str, str], int] = {}
        self.peak: dict[str, int] = {}
        self.counts: dict[tuple[str, str, str], int] = {}  # (class, sku, result) -> purchases
        self.ops: dict[str, int] = {}
        self.expired = 0
        self.watch = frozenset(scenario.expect.users)
        self.users: dict[str, list[str]] = {}
        self.hasher = hashlib.sha256(f"flashsale-replay-digest/{DIGEST_VERSION}\n".encode())
        self.decisions = 0
        self.log: list[Decision] | None = [] if keep_log else None
        self.last_at = 0
        lim = scenario.config.limits
        # A leaky bucket in queue mode answers some purchases only when their turn comes.
        self.queueing = any(
            b is not None and b.algorithm == "leaky" and b.queue > 0
            for b in (lim.global_bucket, lim.per_sku, lim.per_user, lim.per_ip)
        )
        self.waiting: list[tuple[TrafficEvent, int, asyncio.Task[Outcome]]] = []  # submitted, unanswered
        self.next_release: int | None = None  # µs from start: the limiter's earliest queued release
        self.room = RoomReplay(self) if scenario.config.waiting_room is not None else None  # flashsale.room._replay

    # -- time -----------------------------------------------------------------

    async def deliver_time(self) -> int:
        """Tell the actors the clock's now: the one call a replay makes after moving the clock."""
        return await self.engine.expire_due()

    async def advance(self, to: int) -> None:
        """Move virtual time to ``to`` (µs from start), ticking on the grid where a reservation falls due."""
        due, cadence = self.due, self.cadence_us
        while cadence:
            while due and due[0][1] not in self.open:
                heapq.heappop(due)
            if not due:
                break
            tick = -(-due[0][0] // cadence) * cadence
            if tick > to:
                break
            self.clock.set(self.t0 + tick)
            await self.expire(tick)
        self.clock.set(self.t0 + to)

    async def expire(self, at: int) -> None:
        """Deliver the time; close the reservations that were due by then."""
        count = await self.deliver_time()
        closed: list[str] = []
        due = self.due
        while due and due[0][0] <= at:
            _, order_id = heapq.heappop(due)
            if order_id in self.open:
                closed.append(order_id)
                self._close(order_id, released=True)
        if count != len(closed):
            raise RuntimeError(
                f"the engine expired {count} reservations at +{at} µs; the replay expected {len(closed)}"
            )
        self.expired += count
        self._decide(at, "expire", None, None, count, None, "expired", ",".join(closed) or None, None)

    # -- the loop -------------------------------------------------------------

    async def run(self, events: list[TrafficEvent]) -> None:
        feedback = self.feedback
        n, i = len(events), 0
        while i < n or feedback or self.waiting or (self.room is not None and self.room.next_tick(self.last_at)):
            times = [events[i].at] if i < n else []
            if feedback:
                times.append(feedback[0][0])
            if self.next_release is not None:
                times.append(self.next_release)
            room_at = None if self.room is None else self.room.next_tick(self.last_at)
            if room_at is not None:
                times.append(room_at)
            if not times:
                raise RuntimeError(f"{len(self.waiting)} purchases wait in a queue that releases nothing")
            at = min(times)
            await self.advance(at)
            instant: list[tuple[TrafficEvent, int]] = []
            while i < n and events[i].at == at:
                instant.append((events[i], 0))
                i += 1
            while feedback and feedback[0][0] == at:
                _, _, event, attempt = heapq.heappop(feedback)
                instant.append((event, attempt))
            await self.instant(at, instant)
            if self.next_release is not None and self.next_release <= at:
                await self.release(at)
            if self.room is not None and self.room.due(at):
                await self.room.tick(at)
            self.last_at = at

    async def instant(self, at: int, items: list[tuple[TrafficEvent, int]]) -> None:
        """Everything of one instant, in order; consecutive purchases as one batch."""
        start = 0
        while start < len(items):
            end = start
            while end < len(items) and items[end][0].op == "purchase":
                end += 1
            if end > start:
                await self.purchases(at, items[start:end])
                start = end
            else:
                await self.operation(at, items[start][0])
                start += 1

    async def purchases(self, at: int, items: list[tuple[TrafficEvent, int]]) -> None:
        if self.room is not None:
            items = self.room.gate(at, items)  # held until admitted, or refused at the door
            if not items:
                return
        if self.queueing:
            await self.queued_purchases(at, items)
            return
        # A purchase event always has a user and a sku (the reader checks).
        requests = [PurchaseRequest(e.sku, e.user, e.qty, e.key, e.ip) for e, _ in items]  # type: ignore[arg-type]
        outcomes = await self.engine.purchase_many(requests)
        self.answered(at, [(e, attempt, o) for (e, attempt), o in zip(items, outcomes, strict=True)])

    async def queued_purchases(self, at: int, items: list[tuple[TrafficEvent, int]]) -> None:
        """Purchases when some may wait in a leaky bucket's queue: answers are taken as they come due."""
        loop = asyncio.get_running_loop()
        for e, attempt in items:
            purchase = self.engine.purchase(e.sku, e.user, e.qty, idempotency_key=e.key, client_ip=e.ip)  # type: ignore[arg-type]
            self.waiting.append((e, attempt, loop.create_task(purchase)))
        await asyncio.sleep(0)  # one loop pass: every purchase above is enqueued, in order, before the time is sent
        await self.release(at)

    async def release(self, at: int) -> None:
        """Deliver the time to the limiter; take every answer that is not still queued, in submission order.

        The limiter says how many purchases still wait; all the others are
        answered (passed on, refused or released), so the driver waits for
        exactly those. Which ones that is does not depend on thread timing,
        and they are recorded in the order they were submitted.
        """
        report = await self.engine.release_queued()
        queued, next_release = report.queued, report.next_release
        self.next_release = None if next_release is None else next_release - self.t0
        waiting = self.waiting
        pending = {task for _, _, task in waiting if not task.done()}
        while len(waiting) - len(pending) < len(waiting) - queued:
            _, still = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            pending = set(still)
        self.waiting = [w for w in waiting if not w[2].done()]
        self.answered(at, [(e, attempt, task.result()) for e, attempt, task in waiting if task.done()])

    def answered(self, at: int, answers: list[tuple[TrafficEvent, int, Outcome]]) -> None:
        """Record the answers of one instant, in submission order."""
        counts, watch = self.counts, self.watch
        for e, attempt, o in answers:
            result = o.result
            k = (e.source, o.sku, result)
            counts[k] = counts.get(k, 0) + 1
            if e.user in watch:
                self.users.setdefault(e.user, []).append(result)
            retry_us = None if o.retry_after is None else round(o.retry_after * US)
            self._decide(at, "purchase", e.user, e.sku, e.qty, e.key, result, o.order_id, retry_us)
            if result == "reserved":
                self._reserved(at, e, o)
            elif e.retry is not None and attempt < e.retry.max and result in e.retry.on:
                self._schedule(at + e.retry.delay_us(attempt + 1, o.retry_after), e, attempt + 1)

    def _reserved(self, at: int, e: TrafficEvent, o: Outcome) -> None:
        assert o.order_id is not None
        assert o.expires_at is not None
        if o.order_id in self.known:
            return  # a repeated Idempotency-Key got the first answer again: nothing new is held
        self.known.add(o.order_id)
        user, sku = e.user, o.sku
        assert user is not None
        expires = o.expires_at - self.t0
        self.open[o.order_id] = (user, sku, o.qty, expires)
        self.buyers[o.order_id] = user
        self.by_number[untagged(o.order_id)] = o.order_id
        heapq.heappush(self.due, (expires, o.order_id))
        held = self.held[(user, sku)] = self.held.get((user, sku), 0) + o.qty
        if held > self.peak.get(sku, 0):
            self.peak[sku] = held
        if e.then is not None:
            follow = TrafficEvent(at, e.then.op, user, sku, order=o.order_id, source=e.source)
            self._schedule(at + e.then.after_us, follow, 0)

    def _schedule(self, at: int, event: TrafficEvent, attempt: int) -> None:
        self.seq += 1
        heapq.heappush(self.feedback, (at, self.seq, event, attempt))

    def _close(self, order_id: str, *, released: bool) -> None:
        user, sku, qty, _ = self.open.pop(order_id)
        if released:
            self.held[(user, sku)] -= qty

    async def operation(self, at: int, e: TrafficEvent) -> None:
        if e.op in ("join", "poll", "room_tick"):
            if self.room is None:
                raise RuntimeError(f"a {e.op!r} event needs a waiting_room in the config")
            await self.room.operation(at, e)
            return
        if e.op == "expire":
            await self.expire(at)
            return
        if e.op == "restock":
            assert e.sku is not None
            await self.engine.restock(e.sku, e.qty)
            self._decide(at, "restock", None, e.sku, e.qty, None, "restocked", None, None)
            self._count_op("restock:restocked")
            return
        if e.op in ADMIN_OPS:
            await self.admin(at, e)
            return
        order_id = self.by_number.get(untagged(e.order), e.order) if e.order else self._oldest_open(e.user, e.sku)
        acting = e.user or (self.buyers.get(order_id) if order_id else None)
        if order_id is None:
            result = "no_reservation"
        elif acting is None:
            result = "unknown_order"  # an id this replay never handed out: no buyer can act on it
        else:
            try:
                act = self.engine.pay if e.op == "pay" else self.engine.cancel
                await act(order_id, user=acting)
                result = "paid" if e.op == "pay" else "cancelled"
            except UnknownOrder:
                result = "unknown_order"
            except TransitionRefused as exc:
                result = exc.reason
            except Unavailable:
                result = "unavailable"
            if order_id in self.open and result in ("paid", "cancelled", "expired"):
                if result == "expired":
                    self.expired += 1
                self._close(order_id, released=result != "paid")
        self._decide(at, e.op, e.user, e.sku, 0, None, result, order_id, None)
        self._count_op(f"{e.op}:{result}")

    async def admin(self, at: int, e: TrafficEvent) -> None:
        """An operator's action, as the admin API took it: pause, resume, end, or a scope's new rate and burst."""
        if e.op in ("room_pause", "room_resume", "room_rate"):
            if self.room is None:
                raise RuntimeError(f"a {e.op!r} event needs a waiting_room in the config")
            await self.room.control(at, e)
            return
        if e.op == "limits":
            assert e.limits is not None
            scope, rate, burst = e.limits
            old = self.engine.limits.get(scope)  # type: ignore[call-overload]  # checked by the engine below
            spec = BucketSpec(rate, burst) if old is None else dataclasses.replace(old, rate=rate, burst=burst)
            await self.engine.set_limits({scope: spec})  # type: ignore[dict-item]
            self._decide(at, "limits", None, None, burst, None, "changed", f"{scope} {rate!r}", None)
            self._count_op("limits:changed")
            return
        assert e.sku is not None
        await self.engine.control(e.sku, e.op)  # type: ignore[arg-type]  # pause, resume or end
        result = {"pause": "paused", "resume": "resumed", "end": "ended"}[e.op]
        self._decide(at, e.op, None, e.sku, 0, None, result, None, None)
        self._count_op(f"{e.op}:{result}")

    def _oldest_open(self, user: str | None, sku: str | None) -> str | None:
        for order_id, (u, s, _, _) in self.open.items():  # insertion order: oldest first
            if u == user and s == sku:
                return order_id
        return None

    def _count_op(self, key: str) -> None:
        self.ops[key] = self.ops.get(key, 0) + 1

    def _decide(  # noqa: PLR0917 - one call per decision: positional is the cheap form
        self,
        at: int,
        op: str,
        user: str | None,
        sku: str | None,
        qty: int,
        key: str | None,
        result: str,
        order_id: str | None,
        retry_us: int | None,
    ) -> None:
        decision: Decision = (self.decisions, at, op, user, sku, qty, key, result, order_id, retry_us)
        self.decisions += 1
        self.hasher.update(orjson.dumps(decision) + b"\n")
        if self.log is not None:
            self.log.append(decision)

    # -- the result -----------------------------------------------------------

    def result(self, wall: float) -> ReplayResult:
        engine = self.engine
        by_sku: dict[str, dict[str, int]] = {s.id: {} for s in self.scenario.config.skus}
        total: dict[str, int] = {}
        classes: dict[str, dict[str, int]] = {}
        for (cls, sku, result), n in sorted(self.counts.items(), key=_count_order):
            for table in (by_sku[sku], total, classes.setdefault(cls, {})):
                table[result] = table.get(result, 0) + n
        skus = {}
        for s in self.scenario.config.skus:
            v = engine.view(s.id)
            skus[s.id] = SkuSummary(s.id, v.stock, v.reserved + v.paid, v.paid, v.remaining, by_sku[s.id])
        return ReplayResult(
            scenario=self.scenario.name,
            digest=f"sha256:{self.hasher.hexdigest()}",
            decisions=self.decisions,
            purchases=sum(total.values()),
            skus=skus,
            outcomes=total,
            classes=classes,
            ops=dict(sorted(self.ops.items())),
            expired=self.expired,
            per_user_max={s.id: self.peak.get(s.id, 0) for s in self.scenario.config.skus},
            users={u: tuple(r) for u, r in self.users.items()},
            virtual_seconds=self.last_at / US,
            wall_seconds=wall,
            log=tuple(self.log) if self.log is not None else (),
        )


_RESULT_ORDER = {r: i for i, r in enumerate(RESULTS)}


def _count_order(item: tuple[tuple[str, str, str], int]) -> tuple[str, str, int]:
    (cls, sku, result), _ = item
    return cls, sku, _RESULT_ORDER[result]
