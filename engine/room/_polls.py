"""Polls and event streams: a ticket as its holder sees it now, answered from the published board.

A poll (``ticket``) is the bulk of a room's traffic, so it never crosses a
thread: it reads the :class:`actors.TicketView` the room actor published,
adds what only the loop knows now (units left, the estimate) and records the
heartbeat in a dict. The heartbeats reach the actor in batches, with the
next :class:`actors.RoomTick` (:meth:`Room.send_tick`).
"""

from __future__ import annotations

from collections.abc import Callable

from flashsale.actors import TicketView
from flashsale.actors._room_messages import ClosedReason

from ._base import RoomBase
from ._errors import RoomRefused, UnknownTicket
from ._types import US, TicketStatus

MAX_LISTENERS = 50_000
MAX_POLL_CACHE = 200_000


class Notify:
    """The actor's ``notify`` reply: the tickets whose view changed (called on the loop)."""

    __slots__ = ("_room",)

    def __init__(self, room: Polls) -> None:
        self._room = room

    def done(self) -> bool:
        return False

    def set_result(self, changed: tuple[str, ...], /) -> None:
        self._room._changed(changed)


class Polls(RoomBase):
    """The room's polls (:meth:`ticket`), the status they render, and the listeners of event streams."""

    def ticket(self, ticket: str, user: str) -> TicketStatus:
        """``ticket`` as its holder sees it now; this poll is its heartbeat. Anyone else: :class:`UnknownTicket`.

        The hot path of a room: a dict lookup, the heartbeat in a dict, and
        the status of the last poll again when nothing it shows has changed
        (the same published views, the same units left).
        """
        if type(ticket) is not str:
            raise UnknownTicket(str(ticket))
        view = self.board.tickets.get(ticket) or self._provisional.get(ticket)
        if view is None or view.user != user:
            raise UnknownTicket(ticket)
        at = self._clock()
        self._beats[ticket] = at
        if self.recorder is not None:
            self.recorder.operation(at, "poll", user=user, ticket=ticket)
        remaining, closing = self.facts(at)
        room = self.board.room
        hit = self._polled.get(ticket)
        if hit is not None and hit[0] is view and hit[1] is room and hit[2] == remaining and hit[3] == closing:
            return hit[4]
        status = self._ticket_status(view, at, remaining, closing)
        if len(self._polled) >= MAX_POLL_CACHE:
            self._polled.clear()
        self._polled[ticket] = (view, room, remaining, closing, status)
        return status

    def _ticket_status(
        self, view: TicketView, at: int, remaining: int | None = None, closing: ClosedReason | None = None
    ) -> TicketStatus:
        room = self.board.room
        if remaining is None:
            remaining, closing = self.facts(at)
        state: str = view.state
        reason = view.closed_reason
        position, ahead, eta = view.position, view.ahead, None
        if state in ("pre_queue", "waiting"):
            closing = room.closed_reason or closing
            if closing is not None:  # closed now, even before the actor has heard
                state, reason, position, ahead = "closed", closing, None, None
            elif ahead is not None:
                # Every admission since the last sweep took a place at the head: each waiting ticket moved up one.
                moved = room.admitted - room.swept_admitted
                if moved:
                    ahead = max(0, ahead - moved)
                    position = ahead + 1
                if not room.paused:
                    eta = round(max(0, room.starts_at - at) / US + ahead / room.admit_rate, 1)
        return TicketStatus(
            view.ticket,
            state,
            position,
            ahead,
            eta,
            remaining,
            reason,
            view.admission_pass,
            view.pass_expires_at,
            self._poll_after,
        )

    def watch(self, ticket: str, user: str, listener: Callable[[TicketStatus | None], None]) -> Callable[[], None]:
        """Call ``listener`` with the ticket's status on every change (``None``: the room stopped).

        Returns the call that unsubscribes. At most :data:`MAX_LISTENERS` at once.
        """
        self.ticket(ticket, user)
        if self._listeners >= MAX_LISTENERS:
            raise RoomRefused("overloaded", f"this server holds at most {MAX_LISTENERS} ticket event streams")
        self._listeners += 1
        self._watchers.setdefault(ticket, []).append(listener)

        def unwatch() -> None:
            found = self._watchers.get(ticket)
            if found is not None and listener in found:
                found.remove(listener)
                self._listeners -= 1
                if not found:
                    del self._watchers[ticket]

        return unwatch

    def _changed(self, changed: tuple[str, ...]) -> None:
        provisional = self._provisional
        if provisional:  # these are on the board now
            for ticket in changed:
                view = provisional.pop(ticket, None)
                if view is not None and self._provisional_user.get(view.user) == ticket:
                    del self._provisional_user[view.user]
        watchers = self._watchers
        if not watchers:
            return
        at = self._clock()
        remaining, closing = self.facts(at)
        tickets = self.board.tickets
        for ticket in changed:
            fns = watchers.get(ticket)
            if fns:
                status = self._ticket_status(tickets[ticket], at, remaining, closing)
                for fn in fns:
                    fn(status)
