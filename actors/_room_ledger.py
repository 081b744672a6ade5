"""The port of a waiting room kept outside the process (``backend = "redis"``) and what it answers.

A :class:`RoomLedger` decides what :class:`RoomActor` decides, for every
process at once: one call per room message, each applying the same rules
to the shared state and logging what it changed. Each call takes the
sequence number of the last log entry the caller applied and returns every
later one, so each process mirrors the room on its own
:class:`RoomBoard`. Calls come from one actor thread.

Log entries, in the order the room decided them:

- ``J|ticket|state|position|user``: a new ticket (``pre_queue``, ``waiting``
  with its position as of the last sweep, or ``closed``);
- ``D``: the draw (the pre-queue, ordered by ``sha256(seed + ticket)``, queues
  ahead of everyone after);
- ``A|ticket|pass_expires_at``: an admission; ``E|ticket``: an expiry;
- ``S``: a sweep (positions are recomputed, in queue order);
- ``C|reason``: the closing (every pre-queue and waiting ticket closes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ._room_messages import ClosedReason, TicketState


@dataclass(frozen=True, slots=True)
class RoomParams:
    """A room's configuration; the first process to open the room stores it, the others use that."""

    opens_at: int | None
    starts_at: int
    rate_milli: int
    burst: int
    pass_ttl_us: int
    dead_us: int
    max_tickets: int


@dataclass(frozen=True, slots=True)
class RoomCounters:
    """The shared room's numbers after a call."""

    waiting: int
    admitted: int
    paused: bool
    rate_milli: int
    closed: ClosedReason | None
    tickets: int
    swept_admitted: int
    drawn: bool


@dataclass(frozen=True, slots=True)
class RoomAnswer:
    """One call's answer: per join a ``(result, ticket)`` pair, the numbers, the log since the caller's ``after``.

    ``entries`` is ``None`` when the log no longer holds the caller's next
    entry: it must load a :class:`RoomSnapshot`. ``seq`` numbers the last entry.
    """

    results: tuple[tuple[str, str], ...]
    counters: RoomCounters
    seq: int
    entries: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    """The whole shared room: tickets ``(ticket, user, state, pass_expires_at)``, each buyer's ticket,
    the pre-queue (arrival order), the queue (turn order), the draw (``None`` before it)."""

    counters: RoomCounters
    seq: int
    tickets: tuple[tuple[str, str, TicketState, int | None], ...]
    by_user: tuple[tuple[str, str], ...]
    pre: tuple[str, ...]
    queue: tuple[str, ...]
    drawn: tuple[str, ...] | None


class RoomLedger(Protocol):
    """A waiting room shared by processes; every failure raises :class:`LedgerError`."""

    def open(self, seed: bytes, params: RoomParams) -> tuple[bytes, RoomSnapshot]:
        """Create the room with ``seed`` and ``params`` unless it exists; return the room's seed and state."""
        ...

    def snapshot(self) -> RoomSnapshot:
        """The whole room now."""
        ...

    def join(self, after: int, joins: Sequence[tuple[str, str, int]]) -> RoomAnswer:
        """``(user, ticket, at)`` joins, in arrival order; results ``created``, ``existing``, or the refusal."""
        ...

    def tick(self, after: int, at: int, beats: Sequence[tuple[str, int]], closing: ClosedReason | None) -> RoomAnswer:
        """Time has reached ``at``: heartbeats, the draw, admissions, a sweep when due, the closing."""
        ...

    def control(self, after: int, action: Literal["pause", "resume", "rate"], at: int, rate_milli: int) -> RoomAnswer:
        """An operator's pause, resume or new rate."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...
