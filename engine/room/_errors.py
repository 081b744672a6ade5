"""The waiting room's exceptions, under :class:`flashsale.FlashsaleError`::

FlashsaleError
├── RoomRefused              the room turns the call away: ``code`` says why
│   └── (codes) room_not_open, room_closed, invalid_proof, challenge_used,
│       no_challenge, draw_not_done, room_full, overloaded
└── UnknownTicket (LookupError)  no such ticket, or not the caller's
"""

from __future__ import annotations

from flashsale._errors import FlashsaleError

STATUS = {
    "room_not_open": 409,
    "room_closed": 409,
    "draw_not_done": 409,
    "invalid_proof": 400,
    "challenge_used": 400,
    "no_challenge": 404,
    "room_full": 503,
    "overloaded": 503,
}


class RoomRefused(FlashsaleError):
    """The room refuses this call; ``code`` is the JSON error code, ``detail`` says it for a person."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def status(self) -> int:
        """The HTTP status this refusal is answered with."""
        return STATUS[self.code]


class UnknownTicket(FlashsaleError, LookupError):
    """No ticket has this id for this buyer (the two are one answer: nothing is revealed)."""

    def __init__(self, ticket: str) -> None:
        super().__init__(f"unknown ticket {ticket!r}")
        self.ticket = ticket
