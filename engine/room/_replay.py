"""The waiting room in a scenario replay: joins, polls, passes and the room's ticks on virtual time.

The replay driver (``flashsale.scenario``) hands room events here. Every
room decision enters the digest as one more decision line:

- ``join``: result ``created``, ``existing`` or the refusal code; the ticket id
  in the order-id column;
- ``poll``: result the ticket's state (``no_ticket`` for a buyer without one);
- ``draw``: result the revealed seed (hex), the pre-queue in drawn order;
- ``admit`` / ``room_expire``: how many, and which tickets, in order;
- ``room_close``: the reason;
- a purchase refused at the door: result ``admission_required`` or ``invalid_pass``.

The room hears the time every :data:`TICK_US` of virtual time from the
scenario's start while it has something to do (a draw to make, tickets
waiting), as a live server's room does every 0.1 s. Buyers of a crowd with
``room: true`` join at arrival, poll every ``poll_after`` seconds, and make
their clicks once a poll shows them admitted (as long after the admission
as they were after the join); a closed or expired ticket drops them.
Explicit ``join`` and ``poll`` events are made as written, with the ticket id
they name (a recording's). A file with ``room_tick`` events (a recording)
delivers the room's time at those instants only: every tick the live room
heard, so the draw and every admission come out as they did live. A
purchase marked ``with_pass`` goes in with the pass this replay's room gave
its buyer (a live buyer may have had it from the event stream, not a poll).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from ._errors import RoomRefused, UnknownTicket

if TYPE_CHECKING:
    from flashsale._engine import SaleEngine
    from flashsale.scenario import Scenario
    from flashsale.scenario._events import TrafficEvent

US = 1_000_000
TICK_US = 100_000


class _Driver(Protocol):
    """What the room needs of the replay driver."""

    engine: SaleEngine
    t0: int
    scenario: Scenario

    def _schedule(self, at: int, event: TrafficEvent, attempt: int) -> None: ...

    def _decide(  # noqa: PLR0917 - the driver's own signature
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
    ) -> None: ...

    def _count_op(self, key: str) -> None: ...


class RoomReplay:
    """The room's part of one replay."""

    def __init__(self, driver: _Driver) -> None:
        self.driver = driver
        room = driver.engine.config.waiting_room
        assert room is not None
        self.starts = room.starts_at - driver.t0
        self.poll_us = round(room.heartbeat * US)
        self.tickets: dict[str, str] = {}
        self.passes: dict[str, str] = {}
        self.joined: dict[str, int] = {}
        self.held: dict[str, list[TrafficEvent]] = {}
        self.last_tick = -1
        self.drawn = False
        self.closed = False
        self.recorded = any(e.op == "room_tick" for e in driver.scenario.events)
        """The room's time comes from the file's ``room_tick`` events only."""

    # -- time -----------------------------------------------------------------

    def next_tick(self, after: int) -> int | None:
        """The next instant (µs from start) the room must hear the time, if any."""
        if self.closed or self.recorded:
            return None
        if not self.drawn:
            if not self.tickets:
                return None  # nothing to draw for yet: the first join's instant will do
            return max(self.starts, self._grid(after))
        if self.driver.engine.room.board.room.waiting == 0:
            return None
        return self._grid(after)

    def _grid(self, after: int) -> int:
        return (max(after, self.last_tick) // TICK_US + 1) * TICK_US

    def due(self, at: int) -> bool:
        """True when the room should hear the time at ``at`` (a grid instant or the draw)."""
        if self.closed or self.recorded or at == self.last_tick:
            return False
        if not self.drawn:
            return at >= self.starts and bool(self.tickets)
        return at % TICK_US == 0 and self.driver.engine.room.board.room.waiting > 0

    async def tick(self, at: int) -> None:
        """Deliver the time; record the draw, admissions, expiries and closing it decided."""
        self.last_tick = at
        d = self.driver
        report = await d.engine.room_tick()
        if report.drawn:
            self.drawn = True
            draw = d.engine.room_draw()
            d._decide(at, "draw", None, None, len(draw.tickets), None, draw.seed, ",".join(draw.tickets) or None, None)
        if report.expired:
            d._decide(
                at, "room_expire", None, None, len(report.expired), None, "expired", ",".join(report.expired), None
            )
            for _ in report.expired:
                d._count_op("room:expired")
        if report.admitted:
            d._decide(at, "admit", None, None, len(report.admitted), None, "admitted", ",".join(report.admitted), None)
            for _ in report.admitted:
                d._count_op("room:admitted")
        if report.closed is not None:
            self.closed = True
            d._decide(at, "room_close", None, None, 0, None, report.closed, None, None)

    # -- events ---------------------------------------------------------------

    async def control(self, at: int, e: TrafficEvent) -> None:
        """An operator's ``room_pause``, ``room_resume`` or ``room_rate``; the digest gets the room after it."""
        d = self.driver
        if e.op == "room_pause":
            view, result = await d.engine.pause_room(), "paused"
        elif e.op == "room_resume":
            view, result = await d.engine.resume_room(), "resumed"
        else:
            assert e.rate is not None
            view, result = await d.engine.set_admit_rate(e.rate), "changed"
        d._decide(at, e.op, None, None, 0, None, result, f"{view.admit_rate!r} paused={view.paused}", None)
        d._count_op(f"{e.op}:{result}")

    async def operation(self, at: int, e: TrafficEvent) -> None:
        """A ``join``, a ``poll`` or a recorded ``room_tick``."""
        if e.op == "room_tick":
            await self.tick(at)
            return
        assert e.user is not None
        if e.op == "join":
            await self._join(at, e)
        else:
            self._poll(at, e)

    async def _join(self, at: int, e: TrafficEvent) -> None:
        d, user = self.driver, e.user
        assert user is not None
        try:
            ticket, created = await d.engine.room.join(user, ticket_id=e.ticket)
        except RoomRefused as exc:
            d._decide(at, "join", user, None, 0, None, exc.code, None, None)
            d._count_op(f"join:{exc.code}")
            self.held.pop(user, None)
            return
        result = "created" if created else "existing"
        self.tickets[user] = ticket.ticket
        self.joined.setdefault(user, at)
        d._decide(at, "join", user, None, 0, None, result, ticket.ticket, None)
        d._count_op(f"join:{result}")
        if e.source != "traffic":  # a crowd's buyer polls as told
            d._schedule(at + round(ticket.poll_after * US), replace(e, op="poll", sku=None, room=0), 0)

    def _poll(self, at: int, e: TrafficEvent) -> None:
        d, user = self.driver, e.user
        assert user is not None
        ticket = e.ticket or self.tickets.get(user)
        if ticket is None:
            d._decide(at, "poll", user, None, 0, None, "no_ticket", None, None)
            return
        try:
            status = d.engine.ticket(ticket, user)
        except UnknownTicket:  # pragma: no cover - the driver only polls tickets it was given
            d._decide(at, "poll", user, None, 0, None, "unknown_ticket", ticket, None)
            return
        d._decide(at, "poll", user, None, 0, None, status.state, ticket, None)
        if status.state == "admitted" and status.admission_pass is not None:
            first = user not in self.passes
            self.passes[user] = status.admission_pass
            if first:
                joined = self.joined[user]
                for held in self.held.pop(user, []):
                    d._schedule(at + held.at - joined, replace(held, at=at + held.at - joined, room=0), 0)
        elif status.state in ("pre_queue", "waiting") and e.source != "traffic":
            d._schedule(at + round(status.poll_after * US), e, 0)
        elif status.state in ("closed", "expired"):
            self.held.pop(user, None)

    def gate(self, at: int, items: list[tuple[TrafficEvent, int]]) -> list[tuple[TrafficEvent, int]]:
        """The purchases that may go on: held ones wait for admission; ones without a good pass are refused here."""
        d = self.driver
        passed: list[tuple[TrafficEvent, int]] = []
        for e, attempt in items:
            user = e.user
            assert user is not None
            if e.room and user not in self.passes:
                if user in self.tickets or user in self.held:
                    self.held.setdefault(user, []).append(e)
                continue  # refused at the join: the buyer never got in, so never clicks
            code, _ = d.engine.check_pass(self._board_pass(user) if e.with_pass else self.passes.get(user), user)
            if code:
                d._decide(at, "purchase", user, e.sku, e.qty, e.key, code, None, None)
                d._count_op(f"purchase:{code}")
                continue
            passed.append((e, attempt))
        return passed

    def _board_pass(self, user: str) -> str | None:
        """The pass the room gave ``user``'s ticket, as its event stream would have pushed it."""
        board = self.driver.engine.room.board
        ticket = board.by_user.get(user)
        view = None if ticket is None else board.tickets.get(ticket)
        return None if view is None else view.admission_pass
