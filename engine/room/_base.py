"""The state :class:`Room` keeps on the loop, and what the SKU views say of the room now."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import pykka

from flashsale.actors import Join, RoomActor, RoomBoard, RoomLedger, RoomView, SkuView, TicketView
from flashsale.actors._room_messages import ClosedReason
from flashsale.config import RoomConfig

from ._ids import random_ids
from ._types import RoomState, TicketStatus

if TYPE_CHECKING:
    from flashsale.scenario import ScenarioRecorder

TICK_SECONDS = 0.1
"""How often, on real time, the room hears the time (admissions, heartbeats, closing)."""
MAX_TICKETS = 1_000_000
MAX_PENDING_JOINS = 10_000
MAX_JOINS_PER_CALL = 1_000
"""The most joins one batch carries to a shared room: one Lua call, about 15 µs of Redis per join."""


class RoomBase:
    """The room's state on the loop (see :class:`Room`), and its state at a given time."""

    def __init__(
        self,
        config: RoomConfig,
        views: dict[str, SkuView],
        clock: Callable[[], int],
        *,
        seed: bytes | None = None,
        ids: Callable[[], str] | None = None,
        secret: bytes | None = None,
        ledger: Callable[[], RoomLedger | None] | None = None,
    ) -> None:
        self.config = config
        self._ledger_for = ledger
        self.shared = False
        """True when the room lives outside this process (every join is then placed before it is answered)."""
        self._views = views
        self._clock = clock
        self._seed = seed if seed is not None else secrets.token_bytes(32)
        self._ids = ids or random_ids()
        self._secret = secret
        self._bits = config.pow_bits
        self._poll_after = config.heartbeat
        self.board: RoomBoard = RoomActor.board_for(self._seed, config.opens_at, config.starts_at, config.admit_rate)
        self._ref: pykka.ActorRef[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[Join] = []
        self._flush: asyncio.Handle | None = None  # the scheduled send of the pending joins
        self._flush_soon = False
        self._inflight = 0
        self._placing = 0  # a shared room's join batches sent and not answered yet
        # Joins answered on the loop whose tickets the actor has not published yet: ticket -> view, user -> ticket.
        self._provisional: dict[str, TicketView] = {}
        self._provisional_user: dict[str, str] = {}
        self._used: dict[str, int] = {}  # proof-of-work challenge -> expires_at: each is good for one join
        self._polled: dict[str, tuple[TicketView, RoomView, int, ClosedReason | None, TicketStatus]] = {}
        self._beats: dict[str, int] = {}
        self._watchers: dict[str, list[Callable[[TicketStatus | None], None]]] = {}
        self._listeners = 0
        self._ticker: asyncio.Task[None] | None = None
        self._closing_told = False
        self.recorder: ScenarioRecorder | None = None
        """Where ``serve --record`` writes the room's traffic: joins, polls and every tick the actor hears."""
        self._seed_recorded = False
        self.running = False
        """True from :meth:`start` until :meth:`stop` (an attribute: the poll path reads it on every request)."""

    def facts(self, at: int) -> tuple[int, ClosedReason | None]:
        """From the SKU views, at ``at``: units still on sale (SKUs not ended), and why the room closes, if it does.

        ``ended`` when every SKU's sale has ended; ``sold_out`` when every SKU
        is sold out or ended. One pass: this runs on every poll.
        """
        remaining, live, selling = 0, False, False
        for v in self._views.values():
            if v.ends_at is None or at < v.ends_at:
                live = True
                if v.remaining > 0:
                    remaining += v.remaining
                    selling = True
        if selling or not self._views:  # no views: the SKUs' owners are not up yet
            return remaining, None
        return remaining, "sold_out" if live else "ended"

    def closing(self, at: int) -> ClosedReason | None:
        """Why the room closes at ``at`` (every SKU sold out or ended), or ``None``."""
        return self.facts(at)[1]

    def remaining_units(self, at: int) -> int:
        """Units still on sale: remaining stock of every SKU not ended."""
        return self.facts(at)[0]

    def state_at(
        self, at: int, closing: ClosedReason | Literal[False] | None = False
    ) -> tuple[RoomState, ClosedReason | None]:
        """The room's state at ``at``; ``closing`` is :meth:`closing` at ``at`` if the caller has it already."""
        room = self.board.room
        if room.closed_reason is not None:
            return "closed", room.closed_reason
        if closing is False:
            closing = self.closing(at)
        if closing is not None:
            return "closed", closing
        if room.opens_at is not None and at < room.opens_at:
            return "not_open", None
        if room.drawn is None and at < room.starts_at:
            return "pre_queue", None
        return ("paused" if room.paused else "admitting"), None
