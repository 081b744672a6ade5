"""The room actor: the waiting room's one owner, on message time.

It keeps the pre-queue, the draw, the admission queue and the pacing of a
sale's waiting room. Time arrives in messages (``at``), randomness too: the
seed and the pass secret come from the constructor, ticket ids with each
join. So the same messages give the same draw, admissions and expiries.

- Before ``starts_at`` joins go to the pre-queue. The first message at or
  after ``starts_at`` draws: the seed is revealed and the pre-queue ordered
  by ``sha256(seed + ticket)``; later joins queue behind it in arrival order.
- Admission is a token bucket (``rate`` per second, ``burst``), counted in
  integers so no rounding ever admits one buyer too many.
- A ticket not heard from (join or poll) for ``dead_us`` is dead: marked
  ``expired`` when found, skipped at its turn; it never uses a token.
- Positions of waiting tickets are recomputed at most once a second of
  message time (a sweep), which also finds the dead.
- A tick that says every SKU is sold out or off sale closes the room: every
  waiting ticket reads ``closed`` with the reason.

After each message the actor publishes what changed on the
:class:`RoomBoard` and tells the gateway which tickets changed (one loop
wake-up), so their event streams can be pushed.
"""

from __future__ import annotations

from typing import Any, assert_never

from ._bridge import LoopBridge
from ._messages import Reply
from ._room_keeper import RoomKeeper, Ticket, ticket_view
from ._room_ledger import RoomCounters
from ._room_messages import (
    ClosedReason,
    Join,
    JoinBatch,
    JoinResult,
    RoomBoard,
    RoomControl,
    RoomMessage,
    RoomTick,
    TicketView,
)
from ._room_passes import sign_pass

US = 1_000_000
UNIT = 1_000_000_000  # one admission, in the bucket's integer credit (rate in milli-buyers/s × µs)
SWEEP_US = US


class RoomActor(RoomKeeper):
    """Owns one waiting room; see the module docstring."""

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
        rate: float,
        burst: int,
        pass_ttl_us: int,
        dead_us: int,
    ) -> None:
        super().__init__(bridge, board, notify, seed=seed, secret=secret, opens_at=opens_at, starts_at=starts_at)
        self._rate_milli = round(rate * 1000)
        self._burst = burst
        self._pass_ttl = pass_ttl_us
        self._dead_us = dead_us
        self._credit = burst * UNIT
        self._refilled = starts_at
        self._paused = False
        self._admitted = 0
        self._waiting = 0
        self._swept = -(1 << 62)
        self._swept_admitted = 0
        self._sweep_due = False
        self._publish_counts()

    # -- dispatch -------------------------------------------------------------

    def on_receive(self, message: RoomMessage) -> None:
        replies: list[tuple[Any, Any]] = []
        match message:
            case JoinBatch(items):
                # Each join as if it came alone: how joins are batched never changes a decision (a recording
                # replays them one by one).
                starts = self._starts_at
                for join in items:
                    at = join.at
                    if self._drawn is None and at < starts:  # the pre-queue: nothing to draw or admit yet
                        result = self._join(join)
                    else:
                        self._advance(at)
                        result = self._join(join)
                        self._admit(at)
                        if self._sweep_due and self._closed is None:
                            self._sweep(at)
                    if join.reply is not None:
                        answer = result if isinstance(result, JoinResult) else JoinResult(result, created=True)
                        replies.append((join.reply, answer))
            case RoomTick(at, beats, closing, reply):
                tickets = self._tickets
                for ticket, seen in beats:
                    t = tickets.get(ticket)
                    if t is not None and seen > t.last_seen:
                        t.last_seen = seen
                self._advance(at)
                closed = None
                if closing is not None and self._closed is None:
                    self._close(closing)
                    closed = closing
                elif self._sweep_due or at >= self._swept + SWEEP_US:
                    self._sweep(at)
                # Everything decided since the last tick (joins can draw and admit too), in order.
                report = self._report(closed)
                if reply is not None:
                    replies.append((reply, report))
            case RoomControl(action, at, rate, reply):
                self._advance(at)
                if action == "pause":
                    self._paused = True
                elif action == "resume":
                    self._paused = False
                    self._refilled = max(self._refilled, at)
                elif action == "rate":
                    self._rate_milli = round(rate * 1000)
                self._admit(at)
                self._publish_counts()
                replies.append((reply, self._board.room))
            case _:
                assert_never(message)
        if self._sweep_due and self._closed is None and not isinstance(message, JoinBatch):
            self._sweep(message.at)
        self._publish_counts()
        self._resolve(replies)

    # -- time -----------------------------------------------------------------

    def _advance(self, at: int) -> None:
        """Bring the room to ``at``: the draw when due, then admissions the bucket allows."""
        if self._drawn is None and at >= self._starts_at and self._closed is None:
            self._draw()
        self._admit(at)

    def _draw(self) -> None:
        super()._draw()
        self._refilled = self._starts_at
        self._sweep_due = True

    def _admit(self, at: int) -> None:
        if self._drawn is None or self._paused or self._closed is not None:
            return
        if at > self._refilled:
            self._credit = min(self._burst * UNIT, self._credit + (at - self._refilled) * self._rate_milli)
            self._refilled = at
        admitted, expired = self._admitted_ids, self._expired_ids
        queue, dead_before = self._queue, at - self._dead_us
        while self._credit >= UNIT and queue:
            t = queue.popleft()
            if t.state != "waiting":
                continue
            self._waiting -= 1
            if t.last_seen < dead_before:
                self._set(t, "expired")
                expired.append(t.id)
                continue
            self._credit -= UNIT
            t.pass_exp = at + self._pass_ttl
            t.pass_ = sign_pass(self._secret, self._commitment, t.user, t.pass_exp)
            self._admitted += 1
            self._set(t, "admitted")
            admitted.append(t.id)

    def _sweep(self, at: int) -> None:
        """Find dead tickets and recompute every waiting ticket's position."""
        expired = self._expired_ids
        self._swept = at
        self._sweep_due = False
        self._swept_admitted = self._admitted
        dead_before = at - self._dead_us
        live = 0
        for t in self._pre:
            if t.state == "pre_queue":
                if t.last_seen < dead_before:
                    self._set(t, "expired")
                    expired.append(t.id)
                else:
                    live += 1
        position = 0
        for t in self._queue:
            if t.state != "waiting":
                continue
            if t.last_seen < dead_before:
                self._set(t, "expired")
                expired.append(t.id)
                continue
            position += 1
            if t.position != position:
                t.position = position
                self._publish(t)
        self._waiting = live + position

    def _close(self, reason: ClosedReason) -> None:
        super()._close(reason)
        self._waiting = 0

    # -- joins ----------------------------------------------------------------

    def _join(self, join: Join) -> JoinResult | TicketView:
        """A place for the buyer: a new ticket's view, or a :class:`JoinResult` with their existing one or a refusal.

        The gateway has checked everything it can (the window, proof of work,
        the bound on tickets) with the same ``at``, and usually answered the
        buyer already, so the usual join (a new ticket nobody waits for) makes
        no answer object. A join that arrives after the room closed still gets
        its ticket, closed, so the id the buyer was given reads ``closed``.
        """
        at = join.at
        if self._opens_at is not None and at < self._opens_at:
            return JoinResult(None, refused="room_not_open")
        # The buyer's newest ticket, found through the board (one table fewer to keep per ticket).
        found = self._board.by_user.get(join.user)
        existing = None if found is None else self._tickets[found]
        if existing is not None and existing.state != "expired":
            existing.last_seen = max(existing.last_seen, at)
            return JoinResult(self._board.tickets[existing.id])
        if self._closed is not None:
            t = Ticket(join.ticket, join.user, "closed", at)
            self._tickets[t.id] = t
            self._board.by_user[t.user] = t.id
            return JoinResult(self._publish(t), refused="room_closed")
        if self._drawn is None:
            t = Ticket(join.ticket, join.user, "pre_queue", at)
            self._pre.append(t)
        else:
            t = Ticket(join.ticket, join.user, "waiting", at)
            # Positions are as of the last sweep; readers subtract the admissions since (RoomView.swept_admitted).
            t.position = self._waiting + 1 + self._admitted - self._swept_admitted
            self._queue.append(t)
        self._waiting += 1
        self._tickets[t.id] = t
        self._board.by_user[t.user] = t.id
        # A new ticket is news to nobody (no stream can watch it yet, and the gateway finds it on the board):
        # published, not marked changed.
        view = self._board.tickets[t.id] = ticket_view(t, None)
        return view

    # -- publishing -----------------------------------------------------------

    def _publish_counts(self) -> None:
        self._publish_room(
            RoomCounters(
                self._waiting,
                self._admitted,
                self._paused,
                self._rate_milli,
                self._closed,
                len(self._tickets),
                self._swept_admitted,
                self._drawn is not None,
            )
        )
