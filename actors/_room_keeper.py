"""What both room actors keep and how they publish it.

:class:`RoomActor` decides the room itself; :class:`SharedRoomActor` mirrors
a room a :class:`RoomLedger` decides for several processes. Both keep the
same tickets, pre-queue, queue and draw, and publish them the same way on a
:class:`RoomBoard`: that part lives here, once, in :class:`RoomKeeper`.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pykka

from ._bridge import LoopBridge
from ._messages import Reply
from ._room_ledger import RoomCounters
from ._room_messages import ClosedReason, RoomBoard, RoomTickReport, RoomView, TicketState, TicketView
from ._room_passes import commitment, draw_order


class Ticket:
    """A ticket as a room actor keeps it (mutable; its holder sees :func:`ticket_view`)."""

    __slots__ = ("id", "last_seen", "pass_", "pass_exp", "position", "state", "user")

    def __init__(self, ticket: str, user: str, state: TicketState, at: int) -> None:
        self.id = ticket
        self.user = user
        self.state: TicketState = state
        self.last_seen = at
        self.position: int | None = None
        self.pass_: str | None = None
        self.pass_exp: int | None = None


def ticket_view(t: Ticket, closed: ClosedReason | None) -> TicketView:
    """What ``t``'s holder sees; ``closed`` is the room's reason, shown on a closed ticket."""
    return TicketView(
        t.id,
        t.user,
        t.state,
        t.position,
        None if t.position is None else t.position - 1,
        t.pass_,
        t.pass_exp,
        closed if t.state == "closed" else None,
    )


class RoomKeeper(pykka.ThreadingActor):
    """The tickets of one room, the draw, the closing, and their publication; subclasses decide when."""

    use_daemon_thread = True

    def __init__(
        self,
        bridge: LoopBridge,
        board: RoomBoard,
        notify: Reply,
        *,
        seed: bytes,
        secret: bytes,
        opens_at: int | None,
        starts_at: int,
    ) -> None:
        super().__init__()
        self._bridge = bridge
        self._board = board
        self._notify = notify
        self._seed = seed
        self._secret = secret
        self._commitment = commitment(seed)
        self._opens_at = opens_at
        self._starts_at = starts_at
        self._tickets: dict[str, Ticket] = {}
        self._pre: list[Ticket] = []
        self._queue: deque[Ticket] = deque()
        self._drawn: tuple[str, ...] | None = None
        self._closed: ClosedReason | None = None
        self._changed: dict[str, None] = {}
        # What was decided since the last tick's report: the draw, admissions and expiries, in order.
        self._just_drawn = False
        self._admitted_ids: list[str] = []
        self._expired_ids: list[str] = []

    @staticmethod
    def board_for(seed: bytes, opens_at: int | None, starts_at: int, rate: float) -> RoomBoard:
        """An empty board for a room about to start (the gateway holds it before the actor exists)."""
        return RoomBoard(RoomView(opens_at, starts_at, commitment(seed), None, rate, 0, 0, False, None, None, 0))

    def _draw(self) -> None:
        """Reveal the seed: the pre-queue, ordered by ``sha256(seed + ticket)``, becomes the head of the queue."""
        order = draw_order(self._seed, [t.id for t in self._pre])
        self._drawn = tuple(order)
        tickets = self._tickets
        for ticket_id in order:
            t = tickets[ticket_id]
            if t.state == "pre_queue":
                t.state = "waiting"
                self._queue.append(t)
        self._pre = []
        self._just_drawn = True

    def _close(self, reason: ClosedReason) -> None:
        """Every ticket still in the pre-queue or the queue reads ``closed`` with ``reason``."""
        self._closed = reason
        for t in (*self._pre, *self._queue):
            if t.state in ("pre_queue", "waiting"):
                self._set(t, "closed")
        self._pre = []
        self._queue.clear()

    def _report(self, closed: ClosedReason | None) -> RoomTickReport:
        """What was decided since the last report, in order; the next report starts empty."""
        report = RoomTickReport(self._just_drawn, tuple(self._admitted_ids), tuple(self._expired_ids), closed)
        self._just_drawn, self._admitted_ids, self._expired_ids = False, [], []
        return report

    def _resolve(self, replies: list[tuple[Any, Any]]) -> None:
        """Answer the message's callers and tell the gateway which tickets changed, in one loop wake-up."""
        if self._changed:
            replies.append((self._notify, tuple(self._changed)))
            self._changed = {}
        self._bridge.resolve(replies)

    def _set(self, t: Ticket, state: TicketState) -> None:
        t.state = state
        if state != "waiting":
            t.position = None
        self._publish(t)

    def _publish(self, t: Ticket) -> TicketView:
        view = ticket_view(t, self._closed)
        self._board.tickets[t.id] = view
        self._changed[t.id] = None
        return view

    def _publish_room(self, c: RoomCounters) -> None:
        room = RoomView(
            self._opens_at,
            self._starts_at,
            self._commitment,
            None if self._drawn is None else self._seed.hex(),
            c.rate_milli / 1000,
            c.waiting,
            c.admitted,
            c.paused,
            self._closed,
            self._drawn,
            c.tickets,
            c.swept_admitted,
        )
        if room != self._board.room:
            self._board.room = room
