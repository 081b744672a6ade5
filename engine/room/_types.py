"""The waiting room's public value types: what its calls answer.

Every time in them is an integer of microseconds since the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from flashsale.actors._room_messages import ClosedReason

US = 1_000_000
"""Microseconds in a second."""

RoomState = Literal["not_open", "pre_queue", "admitting", "paused", "closed"]


@dataclass(frozen=True, slots=True)
class RoomStatus:
    """``GET /v1/room``: the room now."""

    state: RoomState
    opens_at: int | None
    starts_at: int
    commitment: str
    seed: str | None
    admit_rate: float
    waiting: int
    admitted: int
    remaining_units: int
    closed_reason: ClosedReason | None


class TicketStatus(NamedTuple):
    """A ticket as its holder sees it now: the published view plus units left and the estimate.

    A ``NamedTuple``: one is made per poll that shows something new, and per join.
    """

    ticket: str
    state: str
    position: int | None
    ahead: int | None
    eta_seconds: float | None
    remaining_units: int
    closed_reason: ClosedReason | None
    admission_pass: str | None
    pass_expires_at: int | None
    poll_after: float


@dataclass(frozen=True, slots=True)
class Challenge:
    """A proof-of-work challenge: find a nonce giving ``bits`` leading zero bits before ``expires_at``."""

    challenge: str
    bits: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class Draw:
    """The draw, for anyone to check: the seed, its commitment, the pre-queue in drawn order."""

    seed: str
    commitment: str
    tickets: tuple[str, ...]
