"""The room's gateway on the event loop: :class:`Room`, its life cycle and its time.

:class:`Room` is built in layers, one concern a module: its state and what
the SKU views say now (``_base``), polls and event streams (``_polls``), the
checks of a join and of a pass (``_door``), joins and their batches
(``_joins``). This module starts and stops the room actor and tells it the
time: the heartbeats and joins the loop collected reach the actor with the
next :class:`actors.RoomTick` (every :data:`TICK_SECONDS` on real time; on
virtual time whenever the caller ticks), so a replay delivers them at the
same message times on every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from typing import Any, Literal

import pykka

from flashsale._errors import InvalidRequest, Unavailable
from flashsale.actors import (
    LedgerError,
    LoopBridge,
    RoomActor,
    RoomControl,
    RoomLedger,
    RoomParams,
    RoomTick,
    RoomTickReport,
    RoomView,
    SharedRoomActor,
    SkuView,
)
from flashsale.config import RoomConfig

from ._base import MAX_TICKETS, TICK_SECONDS
from ._errors import RoomRefused
from ._ids import load_secret, seeded_ids
from ._joins import Joins
from ._polls import Notify
from ._types import US, Draw, RoomStatus


class Room(Joins):
    """One sale's waiting room, seen from the loop. Built and driven by :class:`flashsale.SaleEngine`.

    ``seed`` (32 bytes) and ``ids`` (ticket ids) are drawn from a CSPRNG
    unless given: a replay gives both, from its scenario. ``ledger`` makes
    the room shared (``backend = "redis"``): called at start, it gives the
    :class:`actors.RoomLedger` every process decides through, and the room's
    seed is the one stored there (this room's is only a candidate).
    """

    # -- life cycle -----------------------------------------------------------

    async def start(self, loop: asyncio.AbstractEventLoop, bridge: LoopBridge, *, real_time: bool) -> None:
        """Start the room actor; on real time, tick it every :data:`TICK_SECONDS`."""
        cfg = self.config
        if self._secret is None:
            self._secret = await asyncio.to_thread(load_secret, cfg)
        self._loop = loop
        ledger = None if self._ledger_for is None else self._ledger_for()
        if ledger is not None:
            self._ref = await self._start_shared(ledger, bridge)
        else:
            self._ref = RoomActor.start(
                bridge,
                self.board,
                Notify(self),
                seed=self._seed,
                secret=self._secret,
                opens_at=cfg.opens_at,
                starts_at=cfg.starts_at,
                rate=cfg.admit_rate,
                burst=cfg.admit_burst,
                pass_ttl_us=round(cfg.pass_ttl * US),
                dead_us=round(3 * cfg.heartbeat * US),
            )
        self.running = True
        if real_time:
            self._ticker = loop.create_task(self._tick_forever(), name="flashsale-room-ticker")

    async def _start_shared(self, ledger: RoomLedger, bridge: LoopBridge) -> pykka.ActorRef[Any]:
        """Open the shared room (made with this room's seed and settings unless it exists) and mirror it."""
        cfg = self.config
        params = RoomParams(
            cfg.opens_at,
            cfg.starts_at,
            round(cfg.admit_rate * 1000),
            cfg.admit_burst,
            round(cfg.pass_ttl * US),
            round(3 * cfg.heartbeat * US),
            MAX_TICKETS,
        )
        try:
            self._seed, snapshot = await asyncio.to_thread(ledger.open, self._seed, params)
        except LedgerError as exc:
            await asyncio.to_thread(ledger.close)
            raise Unavailable(f"the waiting room: {exc}") from exc
        self.board = RoomActor.board_for(self._seed, cfg.opens_at, cfg.starts_at, cfg.admit_rate)
        self.shared = True
        assert self._secret is not None
        return SharedRoomActor.start(
            bridge,
            self.board,
            Notify(self),
            ledger=ledger,
            snapshot=snapshot,
            seed=self._seed,
            secret=self._secret,
            opens_at=cfg.opens_at,
            starts_at=cfg.starts_at,
        )

    async def stop(self) -> None:
        """Stop ticking and stop the actor; event streams see the room end."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self.recorder is not None:
            self.send_tick(None)  # a recording ends on a tick: one carries the seed if the draw was due
        self._send_joins()
        self.running = False
        ref, self._ref = self._ref, None
        if ref is not None:
            await asyncio.to_thread(ref.stop)
        for fns in list(self._watchers.values()):
            for fn in list(fns):
                fn(None)  # the room stopped: every event stream ends

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            if not self._quiet():
                self.send_tick(None)

    def _quiet(self) -> bool:
        """True when a tick now would decide nothing: no ticket and no draw or closing due, or the room closed.

        A shared room always ticks: its ticks also bring other processes' news.
        """
        if self.shared or self._pending or self._beats:
            return False
        room = self.board.room
        if room.closed_reason is not None:
            return True
        if room.tickets or self._provisional:
            return False
        at = self._clock()
        return (room.drawn is not None or at < room.starts_at) and self.closing(at) is None

    # -- time -----------------------------------------------------------------

    def send_tick(self, reply: asyncio.Future[RoomTickReport] | None) -> None:
        """Tell the actor the time, with the heartbeats since the last tick (behind this tick's joins)."""
        if self._ref is None:
            return
        self._send_joins()
        if self._provisional:  # joins answered before the actor placed them: forget those it has placed
            tickets = self.board.tickets
            for ticket in [t for t in self._provisional if t in tickets]:
                view = self._provisional.pop(ticket)
                if self._provisional_user.get(view.user) == ticket:
                    del self._provisional_user[view.user]
        at = self._clock()
        beats, self._beats = self._beats, {}
        self._ref.tell(RoomTick(at, tuple(beats.items()), self.closing(at), reply))
        if self.recorder is not None:
            # The seed is written when the draw is due, never before: the first tick at or after starts_at.
            if not self._seed_recorded and at >= self.board.room.starts_at:
                self._seed_recorded = True
                self.recorder.operation(at, "room_tick", seed=self._seed.hex())
            else:
                self.recorder.operation(at, "room_tick")

    def nudge(self) -> None:
        """Stock just moved: if every SKU is now sold out or ended, tell the room at once (it closes)."""
        if not self._closing_told and self._ref is not None and self.facts(self._clock())[1] is not None:
            self._closing_told = True
            self.send_tick(None)

    async def tick(self) -> RoomTickReport:
        """Deliver the time now and wait for what it decided (draw, admissions, expiries, closing)."""
        if self._ref is None or self._loop is None:
            raise Unavailable("the waiting room is not running")
        fut: asyncio.Future[RoomTickReport] = self._loop.create_future()
        self.send_tick(fut)
        return await fut

    # -- the calls ------------------------------------------------------------

    def status(self) -> RoomStatus:
        """The room now (no message)."""
        at = self._clock()
        room = self.board.room
        state, reason = self.state_at(at)
        return RoomStatus(
            state,
            room.opens_at,
            room.starts_at,
            room.commitment,
            room.seed,
            room.admit_rate,
            room.waiting,
            room.admitted,
            self.remaining_units(at),
            reason,
        )

    def draw(self) -> Draw:
        """The draw once made: anyone can check it against the commitment."""
        room = self.board.room
        if room.drawn is None or room.seed is None:
            raise RoomRefused("draw_not_done", "the draw happens at starts_at; the commitment is published now")
        return Draw(room.seed, room.commitment, room.drawn)

    async def control(
        self, action: Literal["pause", "resume", "rate"], rate: float = 0.0, *, at: int | None = None
    ) -> RoomView:
        """Pause, resume, or change the admission rate at ``at`` (default: now); returns the room's view after it."""
        if self._ref is None or self._loop is None:
            raise Unavailable("the waiting room is not running")
        if action == "rate" and (type(rate) not in (int, float) or not 0 < rate <= 1_000_000):
            raise InvalidRequest("admit_rate", "must be a number > 0 and at most 1000000")
        fut: asyncio.Future[RoomView] = self._loop.create_future()
        self._send_joins()
        self._ref.tell(RoomControl(action, self._clock() if at is None else at, float(rate), fut))
        return await fut


def make_room(
    config: RoomConfig | None,
    views: dict[str, SkuView],
    clock: Callable[[], int],
    seed: bytes | None,
    ledger: Callable[[], RoomLedger | None] | None = None,
) -> Room | None:
    """The engine's room: ``None`` without ``[waiting_room]``.

    With a ``seed`` (a replay) everything random about the room derives from
    it: ticket ids and the pass key; otherwise all three come from a CSPRNG
    (the key from ``secret_file`` when there is one). ``ledger`` gives the
    shared room's ledger at start (the backend's; ``None``: this process's).
    """
    if config is None:
        return None
    if seed is None:
        return Room(config, views, clock, ledger=ledger)
    secret = hashlib.sha256(b"flashsale-replay-pass-key/1" + seed).digest()
    return Room(config, views, clock, seed=seed, ids=seeded_ids(seed), secret=secret, ledger=ledger)
