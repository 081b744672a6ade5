"""The room actor of a room shared by processes: decides through a :class:`RoomLedger`, mirrors it on its board.

It takes the same messages as :class:`RoomActor` and publishes the same
:class:`RoomBoard`, so the gateway cannot tell them apart. Each message is
one ledger call (one Lua call on Redis), which decides by the room's rules
for every process and answers with the room's log since this actor's last
call. The actor applies the log to its mirror in order: new tickets, the
draw (ordered here from the seed, as the ledger ordered it), admissions
(each pass signed here with the shared secret: every process signs the
same pass), expiries, sweeps (positions recomputed over the mirrored queue,
as :meth:`RoomActor._sweep` does) and the closing. A :class:`RoomTickReport`
holds what this actor saw in the log since its previous tick.
"""

from __future__ import annotations

from collections import deque
from typing import Any, assert_never

import pykka

from ._bridge import LoopBridge
from ._errors import LedgerError
from ._messages import Reply
from ._room import Ticket, ticket_view
from ._room_ledger import RoomAnswer, RoomCounters, RoomLedger, RoomSnapshot
from ._room_messages import (
    ClosedReason,
    JoinBatch,
    JoinRefusal,
    JoinResult,
    RoomBoard,
    RoomControl,
    RoomMessage,
    RoomTick,
    RoomTickReport,
    RoomView,
    TicketState,
)
from ._room_passes import commitment, draw_order, sign_pass

_REFUSED: dict[str, JoinRefusal] = {
    "room_not_open": "room_not_open",
    "room_closed": "room_closed",
    "room_full": "room_full",
}


class SharedRoomActor(pykka.ThreadingActor):
    """Mirrors one shared waiting room; see the module docstring."""

    use_daemon_thread = True

    def __init__(
        self,
        bridge: LoopBridge,
        board: RoomBoard,
        notify: Reply,
        *,
        ledger: RoomLedger,
        snapshot: RoomSnapshot,
        seed: bytes,
        secret: bytes,
        opens_at: int | None,
        starts_at: int,
    ) -> None:
        super().__init__()
        self._bridge = bridge
        self._board = board
        self._notify = notify
        self._ledger = ledger
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
        self._counters = snapshot.counters
        self._seq = 0
        self._changed: dict[str, None] = {}
        self._just_drawn = False
        self._admitted_ids: list[str] = []
        self._expired_ids: list[str] = []
        self._closed_now: ClosedReason | None = None
        self._load(snapshot)

    def on_stop(self) -> None:
        self._ledger.close()

    # -- dispatch -------------------------------------------------------------

    def on_receive(self, message: RoomMessage) -> None:
        replies: list[tuple[Any, Any]] = []
        ledger, after = self._ledger, self._seq
        try:
            match message:
                case JoinBatch(items):
                    answer = ledger.join(after, [(j.user, j.ticket, j.at) for j in items])
                    self._apply(answer)
                    board = self._board.tickets
                    for join, (result, ticket) in zip(items, answer.results, strict=True):
                        if join.reply is not None:
                            view = board.get(ticket) if ticket else None
                            refused = _REFUSED.get(result, "")
                            replies.append((join.reply, JoinResult(view, created=result == "created", refused=refused)))
                case RoomTick(at, beats, closing, reply):
                    self._apply(ledger.tick(after, at, beats, closing))
                    report = RoomTickReport(
                        self._just_drawn, tuple(self._admitted_ids), tuple(self._expired_ids), self._closed_now
                    )
                    self._just_drawn, self._admitted_ids, self._expired_ids = False, [], []
                    self._closed_now = None
                    if reply is not None:
                        replies.append((reply, report))
                case RoomControl(action, at, rate, reply):
                    self._apply(ledger.control(after, action, at, round(rate * 1000)))
                    replies.append((reply, self._board.room))
                case _:
                    assert_never(message)
        except LedgerError as exc:  # nothing was decided: every waiting caller hears it
            self._bridge.resolve([], [(r, exc) for r in _replies_of(message)])
            return
        if self._changed:
            replies.append((self._notify, tuple(self._changed)))
            self._changed = {}
        self._bridge.resolve(replies)

    # -- the log --------------------------------------------------------------

    def _apply(self, answer: RoomAnswer) -> None:
        if answer.entries is None:  # this process fell behind the log's trim: start again from the whole room
            self._load(self._ledger.snapshot())
            return
        for entry in answer.entries:
            kind = entry[0]
            if kind == "J":
                _, ticket, state, position, user = entry.split("|", 4)
                self._new(ticket, user, state, int(position) if position else None)  # type: ignore[arg-type]
            elif kind == "A":
                _, ticket, expires = entry.split("|")
                t = self._tickets[ticket]
                t.pass_exp = int(expires)
                t.pass_ = sign_pass(self._secret, self._commitment, t.user, t.pass_exp)
                self._set(t, "admitted")
                self._admitted_ids.append(ticket)
            elif kind == "E":
                self._set(self._tickets[entry[2:]], "expired")
                self._expired_ids.append(entry[2:])
            elif kind == "S":
                self._positions(0)
            elif kind == "D":
                self._draw()
            elif kind == "C":
                self._close(entry[2:])  # type: ignore[arg-type]
        self._seq = answer.seq
        self._publish_room(answer.counters)

    def _new(self, ticket: str, user: str, state: TicketState, position: int | None) -> None:
        t = Ticket(ticket, user, state, 0)
        t.position = position
        self._tickets[ticket] = t
        self._board.by_user[user] = ticket
        if state == "pre_queue":
            self._pre.append(t)
        elif state == "waiting":
            self._queue.append(t)
        # A new ticket is news to nobody: no stream can watch it yet.
        self._board.tickets[ticket] = ticket_view(t, self._closed)

    def _draw(self) -> None:
        order = draw_order(self._seed, [t.id for t in self._pre])
        self._drawn = tuple(order)
        for ticket in order:
            t = self._tickets[ticket]
            if t.state == "pre_queue":
                t.state = "waiting"
                self._queue.append(t)
        self._pre = []
        self._just_drawn = True

    def _positions(self, moved: int) -> None:
        """Number the waiting tickets in queue order (a sweep: ``moved`` 0), dropping those that left it."""
        position = moved
        queue: deque[Ticket] = deque()
        for t in self._queue:
            if t.state != "waiting":
                continue
            queue.append(t)
            position += 1
            if t.position != position:
                t.position = position
                self._publish(t)
        self._queue = queue

    def _close(self, reason: ClosedReason) -> None:
        self._closed = self._closed_now = reason
        for t in (*self._pre, *self._queue):
            if t.state in ("pre_queue", "waiting"):
                self._set(t, "closed")
        self._pre = []
        self._queue.clear()

    def _load(self, snapshot: RoomSnapshot) -> None:
        """Mirror the whole room: at start, or after falling behind the log."""
        self._tickets = {}
        self._board.tickets.clear()
        self._board.by_user.clear()
        self._pre, self._queue = [], deque()
        self._closed = snapshot.counters.closed
        for ticket, user, state, expires in snapshot.tickets:
            t = self._tickets[ticket] = Ticket(ticket, user, state, 0)
            if expires is not None:
                t.pass_exp = expires
                t.pass_ = sign_pass(self._secret, self._commitment, user, expires)
            self._board.tickets[ticket] = ticket_view(t, self._closed)
        self._board.by_user.update(snapshot.by_user)
        self._pre = [self._tickets[t] for t in snapshot.pre]
        self._queue = deque(self._tickets[t] for t in snapshot.queue)
        self._drawn = snapshot.drawn
        # Positions as a sweep now would give them, expressed as of the last sweep (readers subtract the moves).
        c = snapshot.counters
        self._positions(c.admitted - c.swept_admitted)
        self._seq = snapshot.seq
        self._publish_room(c)

    # -- publishing -----------------------------------------------------------

    def _set(self, t: Ticket, state: TicketState) -> None:
        t.state = state
        if state != "waiting":
            t.position = None
        self._publish(t)

    def _publish(self, t: Ticket) -> None:
        self._board.tickets[t.id] = ticket_view(t, self._closed)
        self._changed[t.id] = None

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
            c.closed,
            self._drawn,
            c.tickets,
            c.swept_admitted,
        )
        if room != self._board.room:
            self._board.room = room


def _replies_of(message: RoomMessage) -> list[Reply]:
    match message:
        case JoinBatch(items):
            return [j.reply for j in items if j.reply is not None]
        case RoomTick(reply=reply) | RoomControl(reply=reply):
            return [] if reply is None else [reply]
        case _:
            assert_never(message)
