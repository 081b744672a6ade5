"""The waiting room's calls on :class:`flashsale.SaleEngine` (the embedded API).

A mixin, so the engine module carries only a small hook: the engine sets
``waiting_room`` (a :class:`Room`, or ``None`` without ``[waiting_room]``) and
starts and stops it with the sale.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from flashsale._errors import EngineClosed
from flashsale.actors import RoomTickReport, RoomView

from ._gateway import Room
from ._types import Challenge, Draw, RoomStatus, TicketStatus

if TYPE_CHECKING:
    from flashsale.scenario import ScenarioRecorder


class RoomCalls:
    """join, ticket, room_status, room_draw, room_challenge, check_pass, pause_room, resume_room, set_admit_rate."""

    waiting_room: Room | None
    """The sale's room as it is (``None`` without one): for callers that check ``running`` themselves."""
    clock: Callable[[], int]
    _recorder: ScenarioRecorder | None

    @property
    def room(self) -> Room:
        """The sale's waiting room; :class:`flashsale.EngineClosed` when it has none or is not running."""
        room = self.waiting_room
        if room is None or not room.running:
            raise EngineClosed("this sale has no waiting room running ([waiting_room] in the config)")
        return room

    @property
    def has_room(self) -> bool:
        """True when the sale is configured with a waiting room."""
        return self.waiting_room is not None

    async def join(
        self, user: str, *, challenge: str | None = None, nonce: str | None = None, confirm: bool = True
    ) -> tuple[TicketStatus, bool]:
        """Join the waiting room as ``user``: ``(ticket, created)``.

        ``confirm=False`` answers at once, before the room actor has placed
        the ticket (what the HTTP route does); the default waits for it.
        """
        return await self.room.join(user, challenge, nonce, confirm=confirm)

    def ticket(self, ticket: str, user: str) -> TicketStatus:
        """Poll a ticket as its holder (the heartbeat); :class:`UnknownTicket` for anyone else."""
        return self.room.ticket(ticket, user)

    def room_status(self) -> RoomStatus:
        """The room now."""
        return self.room.status()

    def room_draw(self) -> Draw:
        """The draw (seed, commitment, pre-queue in drawn order), once made."""
        return self.room.draw()

    def room_challenge(self) -> Challenge:
        """A proof-of-work challenge (rooms with ``pow_bits > 0``)."""
        return self.room.challenge()

    def check_pass(self, admission_pass: str | None, user: str) -> tuple[str, str]:
        """``("", "")`` when the pass admits ``user`` now, else ``(code, detail)``; always passes without a room."""
        if self.waiting_room is None:
            return "", ""
        return self.room.check_pass(admission_pass, user)

    async def room_tick(self) -> RoomTickReport:
        """Deliver the time to the room now (virtual time: the caller ticks) and get what it decided."""
        return await self.room.tick()

    async def pause_room(self) -> RoomView:
        """Stop admitting (joins and polls go on). Recorded (``serve --record``) as ``room_pause``."""
        return await self._steer("room_pause", "pause")

    async def resume_room(self) -> RoomView:
        """Admit again, from now (no burst saved up while paused beyond the bucket's size); ``room_resume``."""
        return await self._steer("room_resume", "resume")

    async def set_admit_rate(self, rate: float) -> RoomView:
        """Admit ``rate`` buyers per second from now (``InvalidRequest`` unless 0 < rate <= 1e6); ``room_rate``."""
        return await self._steer("room_rate", "rate", rate)

    async def _steer(self, op: str, action: Literal["pause", "resume", "rate"], rate: float | None = None) -> RoomView:
        at = self.clock()
        view = await self.room.control(action, 0.0 if rate is None else rate, at=at)
        if (
            self._recorder is not None
        ):  # after the room took it, at the instant it took it: a refused change is not replayed
            self._recorder.operation(at, op, **({} if rate is None else {"rate": rate}))
        return view
