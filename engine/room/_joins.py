"""Joins: answered on the loop, and batched to the room actor.

Joins of one loop tick travel as one :class:`actors.JoinBatch`; a buyer who
already holds a live ticket is answered from the board (:meth:`Door._checked`).
"""

from __future__ import annotations

import asyncio

from flashsale._errors import InvalidRequest, Unavailable
from flashsale.actors import Join, JoinBatch, JoinResult, TicketView
from flashsale.actors._room_passes import challenge_expiry

from ._base import MAX_JOINS_PER_CALL, MAX_PENDING_JOINS, TICK_SECONDS
from ._door import REFUSALS, Door
from ._errors import RoomRefused
from ._types import TicketStatus

JOIN_FLUSH_SECONDS = TICK_SECONDS
"""How long an answered join waits to travel to the room actor with the others (HTTP joins); at most
:data:`MAX_PENDING_JOINS` wait. One actor wake-up per tick rather than one per few joins: the actor's share
of a join, and the thread hand-offs under the GIL, are what a join costs beyond its checks."""


class Joins(Door):
    """A join answered at once (:meth:`join_now`) or by the actor (:meth:`join`), and the batch they travel in."""

    def join_now(
        self, user: str, challenge: str | None = None, nonce: str | None = None
    ) -> tuple[TicketStatus, bool] | None:
        """A join answered at once, on the loop, the new ticket placed behind the answer: ``(ticket, created)``.

        The HTTP route's join: no await and no thread hop. Checked exactly as
        :meth:`join` checks. ``None`` for a shared room, whose joins another
        process may place first: await :meth:`join` there.
        """
        if self.shared:
            return None
        at = self._clock()
        found, remaining, closing = self._checked(user, challenge, nonce, at)
        if found is not None:
            return found, False
        ticket = self._ids()
        if self.recorder is not None:
            self.recorder.operation(at, "join", user=user, ticket=ticket)
        room = self.board.room
        provisional = self._provisional
        if room.drawn is not None or at >= room.starts_at:
            ahead = room.waiting + room.admitted - room.swept_admitted + len(provisional)
            view = TicketView(ticket, user, "waiting", ahead + 1, ahead)
        else:
            view = TicketView(ticket, user, "pre_queue")
        provisional[ticket] = view
        self._provisional_user[user] = ticket
        pending = self._pending
        pending.append(Join(user, ticket, at, None))
        if self._flush is None:
            # Answered already: the place can wait for the next flush, so one actor wake-up carries many joins.
            assert self._loop is not None
            self._flush = self._loop.call_later(JOIN_FLUSH_SECONDS, self._send_joins)
        elif len(pending) >= MAX_PENDING_JOINS:
            self._send_joins()
        return self._ticket_status(view, at, remaining, closing), True

    async def join(
        self,
        user: str,
        challenge: str | None = None,
        nonce: str | None = None,
        *,
        confirm: bool = True,
        ticket_id: str | None = None,
    ) -> tuple[TicketStatus, bool]:
        """A place in the room for ``user``: ``(ticket, created)``; an existing live ticket comes back as is.

        Everything a join needs checked is checked on the loop, with the
        join's time (:meth:`_checked`): the window, proof of work and its one
        use, the bound on tickets. The room actor only keeps the place, in
        arrival order. With ``confirm`` the answer is the actor's (the ticket
        as placed: a replay needs that); without, the ticket is answered at
        once and placed behind it (:meth:`join_now`; a shared room always
        confirms). ``ticket_id`` names a new ticket instead of the room's id
        source (a replay of a recording gives the id the live room gave).
        """
        if not confirm and ticket_id is None and (now := self.join_now(user, challenge, nonce)) is not None:
            return now
        at = self._clock()
        found, _, _ = self._checked(user, challenge, nonce, at)
        if found is not None:
            return found, False
        if ticket_id is None:
            ticket = self._ids()
        elif ticket_id in self.board.tickets or ticket_id in self._provisional:
            raise InvalidRequest("ticket_id", f"{ticket_id!r} already names a ticket")
        else:
            ticket = ticket_id
        if self.recorder is not None:
            self.recorder.operation(at, "join", user=user, ticket=ticket)
        assert self._loop is not None
        expires = 0
        if challenge is not None:  # checked: a shared room spends it for every process at once
            assert self._secret is not None
            expires = challenge_expiry(self._secret, challenge) or 0
        fut: asyncio.Future[JoinResult] = self._loop.create_future()
        self._pending.append(Join(user, ticket, at, fut, challenge=challenge or "", challenge_expires=expires))
        if not self._flush_soon:
            if self._flush is not None:
                self._flush.cancel()
            self._flush = self._loop.call_soon(self._flush_joins)
            self._flush_soon = True
        self._inflight += 1
        try:
            result = await fut
        finally:
            self._inflight -= 1
        if isinstance(result, Exception):
            raise Unavailable(str(result))
        if result.refused:
            raise RoomRefused(result.refused, REFUSALS[result.refused])
        assert result.ticket is not None
        return self._ticket_status(result.ticket, at), result.created

    def _flush_joins(self) -> None:
        """The joins of this loop pass travel now; a shared room's wait while a batch is in Redis.

        A shared room's batch is one Lua call, made by the room actor one at
        a time. Sent one per loop pass, each batch would queue behind the one
        in Redis and carry the few joins of its pass: a convoy of calls with
        a join or two each. Held instead until the batch in flight is
        placed, the next carries every join that arrived meanwhile (at most
        :data:`MAX_JOINS_PER_CALL`). A tick or an operator's control sends
        what is held before it, whatever is in flight, so nothing overtakes
        a join.
        """
        if self.shared and self._placing:  # sent by _placed when the batch in Redis is answered
            self._flush, self._flush_soon = None, False  # this call was the scheduled flush
            return
        self._send_joins(MAX_JOINS_PER_CALL if self.shared else None)

    def _send_joins(self, most: int | None = None) -> None:
        """Send the pending joins to the room actor, in arrival order: all of them, or the first ``most``."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush, self._flush_soon = None, False
        if most is None or len(self._pending) <= most:
            items, self._pending = self._pending, []
        else:
            items, self._pending = self._pending[:most], self._pending[most:]
        if not items or self._ref is None:
            return
        if self.shared:
            last = items[-1].reply
            if isinstance(last, asyncio.Future):  # answered with the whole batch, in one loop wake-up
                self._placing += 1
                last.add_done_callback(self._placed)
        self._ref.tell(JoinBatch(tuple(items)))

    def _placed(self, _: asyncio.Future[JoinResult]) -> None:
        """A shared room's batch is answered (or its last caller gave up): the held joins go next."""
        self._placing -= 1
        if self._pending and not self._placing and not self._flush_soon and self._loop is not None:
            self._flush = self._loop.call_soon(self._flush_joins)
            self._flush_soon = True
