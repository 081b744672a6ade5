"""The waiting room's messages and published views.

The room actor publishes an immutable :class:`RoomView` and one
:class:`TicketView` per ticket onto a :class:`RoomBoard` that the gateway
reads without a message: ticket polls, the bulk of a room's traffic, are
answered on the loop from these, the way sold-out purchases are answered
from :class:`actors.SkuView`. Times are microseconds since the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple, TypeAlias

from ._messages import Reply

TicketState: TypeAlias = Literal["pre_queue", "waiting", "admitted", "expired", "closed"]
ClosedReason: TypeAlias = Literal["sold_out", "ended"]
JoinRefusal: TypeAlias = Literal["", "room_not_open", "room_closed", "room_full"]


class TicketView(NamedTuple):
    """One ticket as its holder sees it.

    ``position`` (1 = next) and ``ahead`` (live tickets in front) are ``None``
    before the draw and once the ticket has left the queue; they are
    refreshed at most once a second. ``admission_pass`` is set once admitted.
    A ``NamedTuple``, like the other values made once per request: a third of
    a frozen dataclass's construction cost.
    """

    ticket: str
    user: str
    state: TicketState
    position: int | None = None
    ahead: int | None = None
    admission_pass: str | None = None
    pass_expires_at: int | None = None
    closed_reason: ClosedReason | None = None


@dataclass(frozen=True, slots=True)
class RoomView:
    """The room as everyone sees it. ``seed`` (hex) and ``drawn`` are ``None`` until the draw."""

    opens_at: int | None
    starts_at: int
    commitment: str
    seed: str | None
    admit_rate: float
    waiting: int
    admitted: int
    paused: bool
    closed_reason: ClosedReason | None
    drawn: tuple[str, ...] | None
    tickets: int
    swept_admitted: int = 0
    """``admitted`` when positions were last recomputed: every admission since moved each waiting ticket up one."""


class RoomBoard:
    """Where the room actor publishes; the gateway only reads.

    Each attribute is replaced or each dict entry assigned whole, so a
    reader on the loop always sees a complete view.
    """

    __slots__ = ("by_user", "room", "tickets")

    def __init__(self, room: RoomView) -> None:
        self.room = room
        self.tickets: dict[str, TicketView] = {}
        self.by_user: dict[str, str] = {}


class Join:
    """A buyer asks for a place. ``ticket`` is the id to use if a new ticket is made
    (random, drawn by the gateway: randomness enters as data). ``reply`` may be
    ``None``: the gateway has answered already and only needs the place kept."""

    __slots__ = ("at", "reply", "ticket", "user")

    def __init__(self, user: str, ticket: str, at: int, reply: Reply | None) -> None:
        self.user = user
        self.ticket = ticket
        self.at = at
        self.reply = reply


@dataclass(frozen=True, slots=True)
class JoinResult:
    """The answer to a :class:`Join`: the ticket (new or the buyer's existing one), or why not."""

    ticket: TicketView | None
    created: bool = False
    refused: JoinRefusal = ""


@dataclass(frozen=True, slots=True)
class JoinBatch:
    """The joins of one event-loop tick, in arrival order."""

    items: tuple[Join, ...]


@dataclass(frozen=True, slots=True)
class RoomTick:
    """Time has reached ``at``.

    ``beats`` are ``(ticket, last poll at)`` since the last tick; ``closing``
    is ``sold_out`` or ``ended`` when every SKU is sold out or off sale at
    ``at`` (the gateway reads the SKU views). ``reply`` (optional) resolves to
    a :class:`RoomTickReport`.
    """

    at: int
    beats: tuple[tuple[str, int], ...]
    closing: ClosedReason | None
    reply: Reply | None


@dataclass(frozen=True, slots=True)
class RoomTickReport:
    """What the room decided since the previous tick's report, in order: for a replay's digest and the logs.

    ``drawn``: the draw was made; ``closed``: this tick closed the room.
    """

    drawn: bool
    admitted: tuple[str, ...]
    expired: tuple[str, ...]
    closed: ClosedReason | None


@dataclass(frozen=True, slots=True)
class RoomControl:
    """An operator's action at ``at``: ``pause``, ``resume`` or ``rate`` (a new ``admit_rate``).

    ``reply`` resolves to the new :class:`RoomView`.
    """

    action: Literal["pause", "resume", "rate"]
    at: int
    rate: float
    reply: Reply


RoomMessage: TypeAlias = JoinBatch | RoomTick | RoomControl
