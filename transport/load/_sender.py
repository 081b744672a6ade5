"""One process's buyers: the open-loop schedule and what each buyer does.

Arrivals are scheduled by the clock: the scheduler starts each buyer at its
time whatever the earlier ones are waiting for (it never awaits an answer),
and every latency is measured from the time the request was due. How late
the scheduler itself dispatched each arrival is kept as ``schedule.lag``: if
that grows, the generator (not the server) fell behind, and the run says so.

A buyer (one :class:`~flashsale.TrafficEvent`):

1. skips the purchase if the stock feed says its SKU is gone;
2. with a waiting room, solves, joins and waits for its pass;
3. sends ``POST /v1/purchase`` with an ``Idempotency-Key`` (the event's, or
   one made for it) and its credential; retries ``429``/``503`` with the
   same key (``_retry``);
4. after a ``200``, pays or cancels after the delay its crowd says.

Pay and cancel events of a scenario name an order, or a buyer and SKU (that
buyer's oldest open order of it); restock and expire events have no HTTP
counterpart for a buyer and are skipped (counted).

Every run is bounded: at most ``max_requests`` requests per process (then
no more arrivals are started), and ``max_time`` seconds in all (then what is
still in flight is cancelled and counted as unfinished).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from flashsale import TrafficEvent

from ._feed import FeedMode, StockWatch
from ._http import Answer, BudgetSpent, Http
from ._identity import Identity
from ._pool import Pool
from ._retry import Backoff, retry
from ._room import Follow, Room, RoomMode
from ._stats import Stats, record

US = 1_000_000
YIELD_EVERY = 128  # arrivals dispatched in a row before the scheduler lets the started buyers run
STOP_GRACE_S = 1.0  # after Ctrl-C: how long buyers in flight may finish before they are cancelled


@dataclass(frozen=True)
class Settings:
    """What every process of a run needs to send (picklable: it crosses to worker processes)."""

    url: str
    run_id: str
    identity: Identity
    backoff: Backoff
    connections: int = 64
    timeout: float = 10.0
    max_requests: int = 1_000_000
    max_time: float = 60.0
    feed: FeedMode = "auto"
    room: RoomMode = "auto"
    follow: Follow = "poll"
    step: float = 1.0
    scripted: bool = False
    """The events name the room traffic (``replay --against``): joins and polls as written, purchases with the
    pass the buyer's polls returned; only a crowd's ``room`` purchases join and wait first."""


@dataclass
class Outcome:
    """What one process brings back: its figures and the orders its buyers were given."""

    stats: Stats
    orders: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # order id -> (user, sku, qty)
    closed: dict[str, str] = field(default_factory=dict)  # order id -> "paid" / "cancelled"
    bad_200: list[str] = field(default_factory=list)  # 200 answers without an order id
    feed: str = "off"
    room: str = "off"
    interrupted: bool = False

    def dump(self) -> dict[str, Any]:
        return {
            "stats": self.stats.dump(),
            "orders": self.orders,
            "closed": self.closed,
            "bad_200": self.bad_200,
            "feed": self.feed,
            "room": self.room,
            "interrupted": self.interrupted,
        }

    def merge_dump(self, data: dict[str, Any]) -> None:
        self.stats.merge_dump(data["stats"])
        self.orders.update({k: (v[0], v[1], v[2]) for k, v in data["orders"].items()})
        self.closed.update(data["closed"])
        self.bad_200.extend(data["bad_200"][: max(0, 20 - len(self.bad_200))])
        self.feed, self.room = data["feed"], data["room"]
        self.interrupted |= data["interrupted"]


def session_for(settings: Settings) -> aiohttp.ClientSession:
    """The process's aiohttp session, for the streams: the stock feed and ticket events."""
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=settings.timeout)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",))


class Sender:
    """The buyers of one process, sending to one URL over one pool."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession, budget: int) -> None:
        self.settings = settings
        self.stats = Stats(settings.step)
        self.outcome = Outcome(self.stats)
        self.session = session
        self.pool = Pool(settings.url, limit=settings.connections, timeout=settings.timeout)
        base = settings.url.rstrip("/")
        self.http = Http(base, self.pool, session, self.stats, t0=time.perf_counter(), budget=budget)
        self.identity = settings.identity
        self.feed = StockWatch(settings.feed)
        self.room = Room(settings.room, settings.follow, settings.identity)
        self.tasks: set[asyncio.Task[None]] = set()
        self.stop = asyncio.Event()
        self.budget_spent = False
        self._backoffs: dict[object, Backoff] = {}

    async def prepare(self) -> None:
        """Before the clock starts: watch the feed, ask about the room."""
        self.http.stats = Stats(self.stats.step)  # the probes are not part of the run's figures
        try:
            await self.feed.start(self.session, self.http.base)
            await self.room.probe(self.http)
        finally:
            self.http.stats = self.stats
        self.outcome.feed, self.outcome.room = self.feed.state, self.room.state

    def start_clock(self, t0: float) -> None:
        """The run starts at ``t0`` (``time.perf_counter()``); every process of a run shares it."""
        self.http.t0 = t0

    # -- the schedule -----------------------------------------------------------------

    async def run(self, events: Sequence[tuple[int, TrafficEvent]]) -> Outcome:
        """Send ``events`` (index in the whole run, event) at their times; return once all are answered."""
        loop = asyncio.get_running_loop()
        schedule = loop.create_task(self._schedule(events))
        drained = loop.create_task(self._drain(schedule))
        stopped = loop.create_task(self.stop.wait())
        remaining = self.settings.max_time - self.http.now()
        try:
            await asyncio.wait({drained, stopped}, timeout=max(0.0, remaining), return_when=asyncio.FIRST_COMPLETED)
            if not drained.done():
                schedule.cancel()
                if self.stop.is_set():
                    self.outcome.interrupted = True
                    await asyncio.wait({drained}, timeout=STOP_GRACE_S)
                await self._cancel_all()
        finally:
            for t in (schedule, drained, stopped):
                t.cancel()
            await asyncio.gather(schedule, drained, stopped, return_exceptions=True)
            await self.feed.stop()
            self.pool.close()
        watching = self.feed.state == "watching"
        self.outcome.feed = f"watching ({self.feed.events} events)" if watching else self.feed.state
        return self.outcome

    async def _schedule(self, events: Sequence[tuple[int, TrafficEvent]]) -> None:
        stats, now = self.stats, self.http.now
        n = 0
        for index, ev in events:
            due = ev.at / US
            delay = due - now()
            if delay > 0:
                await _until(due, now)
                n = 0
            elif n >= YIELD_EVERY:
                await asyncio.sleep(0)
                n = 0
            if self.budget_spent:
                stats.skipped["request budget spent"] += len(events) - stats.scheduled
                return
            stats.scheduled += 1
            t = now()
            record(stats.lag, max(0.0, t - due))
            stats.dispatched_until = t
            self.spawn(self._buyer(index, ev, due))
            n += 1

    async def _drain(self, schedule: asyncio.Task[None]) -> None:
        await asyncio.wait({schedule})  # done or stopped: either way, the buyers started are awaited
        while self.tasks:
            await asyncio.wait(list(self.tasks))

    async def _cancel_all(self) -> None:
        pending = list(self.tasks)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self.stats.unfinished += len(pending)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _later(self, due: float, coro: Coroutine[Any, Any, None]) -> None:
        delay = due - self.http.now()
        if delay > 0:
            await asyncio.sleep(delay)
        await coro

    # -- a buyer ----------------------------------------------------------------------

    async def _buyer(self, index: int, ev: TrafficEvent, due: float) -> None:
        try:
            if ev.op == "purchase":
                await self.purchase(index, ev, due)
            elif ev.op in ("pay", "cancel"):
                await self.change(ev, due)
            elif ev.op in ("join", "poll") and self.settings.scripted and self.room.present:
                await self.room_step(ev, due)
            else:
                self.stats.skipped[ev.op] += 1
        except BudgetSpent:
            self.budget_spent = True
            self.stats.skipped["request budget spent"] += 1

    def backoff_of(self, ev: TrafficEvent) -> Backoff:
        if ev.retry is None:
            return self.settings.backoff
        b = self._backoffs.get(ev.retry)
        if b is None:
            r = ev.retry
            b = self._backoffs[ev.retry] = Backoff(r.max, r.backoff, r.factor, self.settings.backoff.cap, r.on)
        return b

    async def purchase(self, index: int, ev: TrafficEvent, due: float) -> None:
        assert ev.user is not None
        assert ev.sku is not None
        user, sku = ev.user, ev.sku
        if sku in self.feed.sold_out:
            self.stats.skipped["sold out (feed)"] += 1
            return
        headers = {
            **self.identity.headers(user),
            "Content-Type": "application/json",
            "Idempotency-Key": ev.key if ev.key is not None else f"{self.settings.run_id}-{index}",
        }
        if ev.ip is not None:
            headers["X-Forwarded-For"] = ev.ip
        if self.room.present and self.settings.scripted and not ev.room:
            admission = await self.scripted_pass(ev, due)
            if admission is not None:
                headers["Admission-Pass"] = admission
        elif self.room.present:
            admission, why = await self.room.admit(self.http, user, due, self._retry_for(ev))
            if admission is None:
                self.stats.skipped[f"room: {why}"] += 1
                return
            headers["Admission-Pass"] = admission
            due = self.http.now()  # admitted now: the purchase is due at once
        body = orjson.dumps({"sku": sku, "user": user, "qty": ev.qty})
        http = self.http

        async def send(at: float) -> Answer:
            return await http.call("purchase", "POST", "/v1/purchase", at, body=body, headers=headers)

        answer = await send(due)
        policy = self.backoff_of(ev)
        if policy.max and policy.retryable(answer):
            answer = await retry(policy, answer, send, http.t0, self._count_retry("purchase"))
        if answer.status != 200:
            return
        order_id = answer.data.get("order_id")
        if not isinstance(order_id, str) or not order_id:
            if len(self.outcome.bad_200) < 20:
                self.outcome.bad_200.append(f"{user} {sku}: {orjson.dumps(answer.data).decode()[:120]}")
            self.stats.skipped["200 without order_id"] += 1
            return
        self.outcome.orders[order_id] = (user, sku, ev.qty)
        if ev.then is not None:
            at = answer.at + ev.then.after_us / US
            follow = TrafficEvent(0, ev.then.op, user=user, sku=sku, order=order_id, source=ev.source)
            self.spawn(self._later(at, self._guarded_change(follow, at)))

    async def room_step(self, ev: TrafficEvent, due: float) -> None:
        """A scenario's ``join`` or ``poll``, as written (a poll reads the ticket this buyer's join got here)."""
        assert ev.user is not None
        if ev.op == "join":
            await self.room.join(self.http, ev.user, due, self._retry_for(ev))
        elif await self.room.poll(self.http, ev.user, due) == "no ticket":
            self.stats.skipped["poll: no ticket"] += 1

    async def scripted_pass(self, ev: TrafficEvent, due: float) -> str | None:
        """The pass a scenario's purchase goes out with: what the buyer's polls returned.

        A purchase recorded with its pass (``with_pass``) whose buyer has none
        yet polls once first: live, that buyer may have had it pushed on its
        ticket's event stream. Without a pass the purchase goes out bare (and
        is refused at the door).
        """
        assert ev.user is not None
        passes = self.room.passes
        if ev.user not in passes and ev.with_pass:
            await self.room.poll(self.http, ev.user, due)
        return passes.get(ev.user)

    def _retry_for(self, ev: TrafficEvent) -> Any:
        policy = self.backoff_of(ev)
        t0 = self.http.t0
        counted = self._count_retry("join")

        async def again(first: Answer, send: Any) -> Answer:
            if policy.max and policy.retryable(first):
                return await retry(policy, first, send, t0, counted)
            return first

        return again

    def _count_retry(self, phase: str) -> Any:
        def counted(answer: Answer) -> None:
            self.stats.phase(phase).retries += 1
            if answer.status >= 500:
                self.stats.retried_5xx += 1  # answered again: the 503 is not the buyer's last word

        return counted

    async def _guarded_change(self, ev: TrafficEvent, due: float) -> None:
        try:
            await self.change(ev, due)
        except BudgetSpent:
            self.budget_spent = True
            self.stats.skipped["request budget spent"] += 1

    async def change(self, ev: TrafficEvent, due: float) -> None:
        """Pay or cancel: the event's order, or its buyer's oldest open order of its SKU."""
        orders = self.outcome.orders
        order_id = ev.order or next(
            (o for o, (u, s, _) in orders.items() if u == ev.user and s == ev.sku and o not in self.outcome.closed),
            None,
        )
        if order_id is None:
            self.stats.skipped[f"{ev.op}: no reservation"] += 1
            return
        user = orders[order_id][0] if order_id in orders else (ev.user or "")
        body = self.identity.change_body(user)
        headers = self.identity.headers(user)
        if body:
            headers = {**headers, "Content-Type": "application/json"}
        answer = await self.http.call(ev.op, "POST", f"/v1/orders/{order_id}/{ev.op}", due, body=body, headers=headers)
        if answer.status == 200:
            self.outcome.closed[order_id] = str(answer.data.get("status", ev.op))


async def _until(due: float, now: Callable[[], float]) -> None:
    """Return at ``due`` (run seconds), never before: real time is the point, the schedule says when.

    uvloop's timers round to milliseconds, so the last millisecond is spent
    yielding to the loop rather than sleeping (at most 1,000 turns of it).
    """
    for _ in range(1000):
        rest = due - now()
        if rest <= 0:
            return
        await asyncio.sleep(rest if rest >= 0.001 else 0)


async def send_all(
    settings: Settings, events: Sequence[tuple[int, TrafficEvent]], budget: int, *, t0: float | None = None
) -> Outcome:
    """Run one process's share in this process (the ``--procs 1`` path and the tests' way in)."""
    async with session_for(settings) as session:
        sender = Sender(settings, session, budget)
        await sender.prepare()
        sender.start_clock(time.perf_counter() if t0 is None else t0)
        with sigint_stops(sender):
            return await sender.run(events)


@contextlib.contextmanager
def sigint_stops(sender: Sender) -> Iterator[None]:
    """Ctrl-C stops the schedule (the summary so far is printed) instead of killing the loop."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, sender.stop.set)
        handled = True
    except (NotImplementedError, RuntimeError, ValueError):
        # Not the main thread (a load run inside another program), or a loop without signals (Windows):
        # Ctrl-C then does what it does in that program, and the run ends when its schedule does.
        handled = False
    try:
        yield
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)
