"""The room's gateway on the event loop: joins batched to the room actor, polls answered from its board.

A poll (``ticket``) is the bulk of a room's traffic, so it never crosses a
thread: it reads the :class:`actors.TicketView` the room actor published,
adds what only the loop knows now (units left, the estimate) and records the
heartbeat in a dict. The heartbeats reach the actor in batches, with the
next :class:`actors.RoomTick` (every :data:`TICK_SECONDS` on real time; on
virtual time whenever the caller ticks), so a replay delivers them at the
same message times on every run.

Joins of one loop tick travel as one :class:`actors.JoinBatch`; a buyer who
already holds a live ticket is answered from the board. Proof of work and
passes are checked here: they cost microseconds and need no state but the
secret.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import pykka

from flashsale._errors import InvalidRequest, Unavailable
from flashsale._validate import storable
from flashsale.actors import (
    Join,
    JoinBatch,
    JoinResult,
    LedgerError,
    LoopBridge,
    RoomActor,
    RoomBoard,
    RoomControl,
    RoomLedger,
    RoomParams,
    RoomTick,
    RoomTickReport,
    RoomView,
    SharedRoomActor,
    SkuView,
    TicketView,
)
from flashsale.actors._room_messages import ClosedReason
from flashsale.actors._room_passes import (
    MAX_NONCE,
    challenge_expiry,
    check_pass,
    make_challenge,
    proves_work,
)
from flashsale.config import RoomConfig

from ._errors import RoomRefused, UnknownTicket

if TYPE_CHECKING:
    from flashsale.scenario import ScenarioRecorder

log = logging.getLogger("flashsale.room")

US = 1_000_000
TICK_SECONDS = 0.1
"""How often, on real time, the room hears the time (admissions, heartbeats, closing)."""
CHALLENGE_TTL_US = 60 * US
MAX_TICKETS = 1_000_000
MAX_PENDING_JOINS = 10_000
MAX_LISTENERS = 50_000
MAX_USED_CHALLENGES = 1_000_000
MAX_POLL_CACHE = 200_000
JOIN_FLUSH_SECONDS = TICK_SECONDS
"""How long an answered join waits to travel to the room actor with the others (HTTP joins); at most
:data:`MAX_PENDING_JOINS` wait. One actor wake-up per tick rather than one per few joins: the actor's share
of a join, and the thread hand-offs under the GIL, are what a join costs beyond its checks."""
MAX_USER_LEN = 128
BUYER_CHARS = "[^\\u0000-\\u001f\\u007f-\\u009f]"
"""What a buyer's name in the room is made of: any character but a control character (C0, DEL, C1).

The same regular expression in Python and in JSON Schema: the OpenAPI
document's pattern for ``user`` on the room's routes is built from it.
"""
_BUYER = re.compile(f"{BUYER_CHARS}{{1,{MAX_USER_LEN}}}")

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


class _Notify:
    """The actor's ``notify`` reply: the tickets whose view changed (called on the loop)."""

    __slots__ = ("_room",)

    def __init__(self, room: Room) -> None:
        self._room = room

    def done(self) -> bool:
        return False

    def set_result(self, changed: tuple[str, ...], /) -> None:
        self._room._changed(changed)


def valid_buyer(user: str) -> bool:
    """True when ``user`` can hold a ticket: 1 to :data:`MAX_USER_LEN` characters of :data:`BUYER_CHARS`, storable."""
    if 0 < len(user) <= MAX_USER_LEN and user.isprintable():  # the usual name: no regular expression needed
        return True
    return _BUYER.fullmatch(user) is not None and storable(user)


def load_secret(config: RoomConfig) -> bytes:
    """The pass-signing key: the ``secret_file``'s bytes, or 32 random bytes for this start."""
    if config.secret_file is None:
        return os.urandom(32)
    try:
        raw = Path(config.secret_file).read_bytes().strip()
    except OSError as exc:
        raise Unavailable(f"waiting_room.secret_file {config.secret_file!r}: cannot read: {exc.strerror}") from exc
    if len(raw) < 16:
        raise Unavailable(f"waiting_room.secret_file {config.secret_file!r} holds fewer than 16 bytes")
    return raw


class Room:
    """One sale's waiting room, seen from the loop. Built and driven by :class:`flashsale.SaleEngine`.

    ``seed`` (32 bytes) and ``ids`` (ticket ids) are drawn from a CSPRNG
    unless given: a replay gives both, from its scenario. ``ledger`` makes
    the room shared (``backend = "redis"``): called at start, it gives the
    :class:`actors.RoomLedger` every process decides through, and the room's
    seed is the one stored there (this room's is only a candidate).
    """

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
        # Joins answered on the loop whose tickets the actor has not published yet: ticket -> view, user -> ticket.
        self._provisional: dict[str, TicketView] = {}
        self._provisional_user: dict[str, str] = {}
        self._used: dict[str, int] = {}  # proof-of-work challenge -> expires_at: each is good for one join
        self._facts: tuple[tuple[SkuView, ...], int, int, ClosedReason | None] | None = None
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
                _Notify(self),
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
            _Notify(self),
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

    def challenge(self) -> Challenge:
        """A fresh signed challenge (only when the room asks for proof of work)."""
        if not self._bits:
            raise RoomRefused("no_challenge", "this waiting room asks no proof of work (pow_bits = 0)")
        assert self._secret is not None
        expires = self._clock() + CHALLENGE_TTL_US
        return Challenge(make_challenge(self._secret, expires, secrets.token_hex(16)), self._bits, expires)

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
        fut: asyncio.Future[JoinResult] = self._loop.create_future()
        self._pending.append(Join(user, ticket, at, fut))
        if not self._flush_soon:
            if self._flush is not None:
                self._flush.cancel()
            self._flush = self._loop.call_soon(self._send_joins)
            self._flush_soon = True
        self._inflight += 1
        try:
            result = await fut
        finally:
            self._inflight -= 1
        if isinstance(result, Exception):
            raise Unavailable(str(result))
        if result.refused:
            raise RoomRefused(result.refused, _REFUSALS[result.refused])
        assert result.ticket is not None
        return self._ticket_status(result.ticket, at), result.created

    def _checked(
        self, user: str, challenge: str | None, nonce: str | None, at: int
    ) -> tuple[TicketStatus | None, int, ClosedReason | None]:
        """Every check of a join at ``at``; the buyer's live ticket if it has one (a heartbeat), else ``None``
        once a new ticket may be made (its proof of work spent). Also the units left and why the room closes."""
        if type(user) is not str or not valid_buyer(user):
            raise InvalidRequest("user", f"must be 1 to {MAX_USER_LEN} characters, none of them a control character")
        if self._ref is None:
            raise Unavailable("the waiting room is not running")
        remaining, closing = self.facts(at)
        state, _ = self.state_at(at, closing)
        if state == "closed":
            raise RoomRefused("room_closed", _REFUSALS["room_closed"])
        if state == "not_open":
            raise RoomRefused("room_not_open", _REFUSALS["room_not_open"])
        board = self.board
        existing = board.by_user.get(user) or self._provisional_user.get(user)
        if existing is not None:
            view = board.tickets.get(existing) or self._provisional[existing]
            if view.state != "expired":
                self._beats[view.ticket] = at
                if self.recorder is not None:
                    self.recorder.operation(at, "join", user=user, ticket=view.ticket)
                return self._ticket_status(view, at, remaining, closing), remaining, closing
        if self._bits or challenge is not None or nonce is not None:
            expires = self._check_proof(challenge, nonce, at)
        if board.room.tickets + len(self._provisional) >= MAX_TICKETS:
            raise RoomRefused("room_full", _REFUSALS["room_full"])
        if self._inflight >= MAX_PENDING_JOINS:
            raise RoomRefused("overloaded", "too many joins in flight; retry shortly")
        if challenge is not None:
            self._use(challenge, expires, at)
        return None, remaining, closing

    def _use(self, challenge: str, expires: int, at: int) -> None:
        """Spend a challenge: it is good for one join. Expired ones are forgotten when the table is full."""
        used = self._used
        if len(used) >= MAX_USED_CHALLENGES:
            self._used = used = {c: exp for c, exp in used.items() if exp > at}
            if len(used) >= MAX_USED_CHALLENGES:
                raise RoomRefused("overloaded", "too many joins in the last minute; retry shortly")
        used[challenge] = expires

    def _check_proof(self, challenge: str | None, nonce: str | None, at: int) -> int:
        """When the challenge expires (0 without proof of work); :class:`RoomRefused` for a bad proof."""
        if not self._bits:
            if challenge is not None or nonce is not None:
                raise InvalidRequest("challenge", "this room asks no proof of work; send only 'user'")
            return 0
        if type(challenge) is not str or type(nonce) is not str:
            raise RoomRefused("invalid_proof", "this room asks proof of work: send 'challenge' and 'nonce'")
        if not 0 < len(nonce) <= MAX_NONCE or not nonce.isascii() or not nonce.isprintable():
            raise RoomRefused("invalid_proof", f"'nonce' must be 1 to {MAX_NONCE} printable ASCII characters")
        assert self._secret is not None
        expires = challenge_expiry(self._secret, challenge)
        if expires is None:
            raise RoomRefused("invalid_proof", "the challenge was not issued by this room")
        if at >= expires:
            raise RoomRefused("invalid_proof", "the challenge has expired; get a new one")
        if challenge in self._used:
            raise RoomRefused("challenge_used", _REFUSALS["challenge_used"])
        if not proves_work(challenge, nonce, self._bits):
            raise RoomRefused("invalid_proof", f"the nonce does not give {self._bits} leading zero bits")
        return expires

    def _send_joins(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush, self._flush_soon = None, False
        items, self._pending = self._pending, []
        if items and self._ref is not None:
            self._ref.tell(JoinBatch(tuple(items)))

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

    def draw(self) -> Draw:
        """The draw once made: anyone can check it against the commitment."""
        room = self.board.room
        if room.drawn is None or room.seed is None:
            raise RoomRefused("draw_not_done", "the draw happens at starts_at; the commitment is published now")
        return Draw(room.seed, room.commitment, room.drawn)

    def check_pass(self, token: str | None, user: str) -> tuple[str, str]:
        """``("", "")`` when ``token`` admits ``user`` now, else ``(code, detail)``."""
        if token is None:
            return "admission_required", "this sale has a waiting room: join it and send the Admission-Pass it gives"
        assert self._secret is not None
        why = check_pass(self._secret, self.board.room.commitment, token, user, self._clock())
        return ("invalid_pass", why) if why else ("", "")

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

    # -- listeners ------------------------------------------------------------

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


_REFUSALS = {
    "room_not_open": "the waiting room is not open yet; see opens_at",
    "room_closed": "the sale is over: every item is sold out or off sale",
    "challenge_used": "this challenge was already used for a join; get a new one",
    "room_full": "the waiting room holds as many tickets as it can",
}


def random_ids(batch: int = 1024) -> Callable[[], str]:
    """Ticket ids: 12 CSPRNG bytes (96 bits) each, as 16 base64url characters, drawn ``batch`` at a time.

    One ``os.urandom`` call per id is a system call that releases the GIL on
    the loop's hot path (and lets the actor threads take it); one call and
    one encoding per ``batch`` ids costs a slice per join. 12 bytes encode to
    exactly 16 characters, so the ids are slices of one encoded pool.
    """
    pool = ""
    offset = 0

    def next_id() -> str:
        nonlocal pool, offset
        if offset >= len(pool):
            pool, offset = base64.urlsafe_b64encode(secrets.token_bytes(12 * batch)).decode("ascii"), 0
        offset += 16
        return pool[offset - 16 : offset]

    return next_id


def seeded_ids(seed: bytes) -> Callable[[], str]:
    """Ticket ids derived from ``seed`` (replays): the same scenario names the same tickets."""
    counter = iter(range(1 << 62))
    key = hashlib.sha256(b"flashsale-ticket-ids/1" + seed).digest()
    return lambda: hashlib.sha256(key + next(counter).to_bytes(8, "big")).hexdigest()[:22]


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
