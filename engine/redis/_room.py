"""RedisRoomLedger: the waiting room of every worker in Redis (the :class:`actors.RoomLedger` port).

Each room message is one Lua call (:mod:`._room_lua`): all the joins of a
batch, a tick with its heartbeats, an operator's action. Lua has no
SHA-256, so the draw key of each pre-queue join, ``sha256(seed +
ticket)``, is computed here and travels with the join; Lua keeps the
pre-queue in a sorted set by that key, so its order is the draw.

The seed lives in Redis: the first process to open the room stores its
candidate (``INIT`` sets nothing when the room exists), every process uses
the stored one. With PostgreSQL (:mod:`._room_seed`) the seed is kept there
too, and offered as the candidate, so a Redis that lost the room opens it
again under the same commitment. Calls have the ``[redis] timeout``
deadline and are never retried; a failure is a :class:`actors.LedgerError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal, cast

import psycopg
import redis
from redis.exceptions import RedisError

from flashsale.actors import LedgerError, RoomAnswer, RoomCounters, RoomParams, RoomSnapshot
from flashsale.actors._room_messages import ClosedReason, TicketState
from flashsale.config import RedisConfig

from . import _room_lua
from ._client import connect
from ._room_seed import RoomSeeds

MAX_LOG = 100_000
"""Room log entries kept in Redis; a worker further behind loads the whole room again."""
SNAPSHOT_TIMEOUT = 30.0
"""The deadline of ``SNAPSHOT`` (seconds, at least ``[redis] timeout``): it reads the whole room, about 7 µs of
Redis per ticket (bench/room_redis.py), so a worker can always load a room of ``MAX_TICKETS``."""
_LIVE = frozenset({"pre_queue", "waiting"})
"""A ticket's states in Redis that the draw or the closing change without rewriting them."""


def room_base(prefix: str) -> str:
    """The room's key prefix: ``P:{:room}:`` (a hash tag no SKU id can take)."""
    return f"{prefix}:{{:room}}:"


class RedisRoomLedger:
    """One sale's waiting room in Redis, shared by every worker."""

    def __init__(self, config: RedisConfig, *, max_log: int = MAX_LOG, seeds: RoomSeeds | None = None) -> None:
        self._base = room_base(config.prefix)
        self._seeds = seeds
        self._keys = [self._base + "meta"]
        self._max_log = max_log
        self._seed = b""
        self._client = connect(config)
        self._patient = connect(config, timeout=max(config.timeout, SNAPSHOT_TIMEOUT))  # for SNAPSHOT only
        self._scripts = {
            name: self._client.register_script(text)
            for name, text in (
                ("init", _room_lua.INIT),
                ("join", _room_lua.JOIN),
                ("tick", _room_lua.TICK),
                ("control", _room_lua.CONTROL),
                ("snapshot", _room_lua.SNAPSHOT),
            )
        }

    def _run(self, name: str, args: Sequence[str | int], client: redis.Redis | None = None) -> Any:
        try:
            return self._scripts[name](keys=self._keys, args=[str(a) for a in args], client=client or self._client)
        except RedisError as exc:
            raise LedgerError(f"redis: {exc}") from exc

    # -- the RoomLedger port --------------------------------------------------

    def open(self, seed: bytes, params: RoomParams) -> tuple[bytes, RoomSnapshot]:
        p = params
        opens = "" if p.opens_at is None else p.opens_at
        args: list[str | int] = [seed.hex(), p.starts_at, opens, p.rate_milli, p.burst, p.pass_ttl_us, p.dead_us]
        seeds = self._seeds
        try:
            if seeds is not None:
                args[0] = (seeds.kept(p.starts_at) or seed).hex()  # a room Redis lost comes back under its commitment
            stored = self._run("init", [*args, p.max_tickets, self._max_log])
            self._seed = bytes.fromhex(stored)
            if seeds is not None:
                seeds.keep(self._seed, p.starts_at)
        except psycopg.Error as exc:
            raise LedgerError(f"postgresql: {exc}") from exc
        return self._seed, self.snapshot()

    def snapshot(self) -> RoomSnapshot:
        meta, states, users, passes, by_user, pre, queue, drawn = self._run("snapshot", [self._base], self._patient)
        m = _pairs(meta)
        user_of = _pairs(users)
        expiry = _pairs(passes)
        counters = _counters([m["waiting"], m["admitted"], m["paused"], m["rate"], m["closed"], m["tickets"],
                              m["swept_admitted"], m["drawn"]])  # fmt: skip
        # Neither the draw nor the closing rewrites the tickets' states in Redis: read them as they now are.
        live = "closed" if counters.closed else "waiting" if counters.drawn else None
        tickets = tuple(
            (
                t,
                user_of[t],
                cast("TicketState", live if live is not None and state in _LIVE else state),
                int(expiry[t]) if t in expiry else None,
            )
            for t, state in _pairs(states).items()
        )
        order = tuple(member[65:] for member in drawn) if counters.drawn else None
        if order is not None and not counters.closed:  # in turn: the drawn from the cursor, then later joins
            # No cursor yet: drawn before it existed, the drawn are in the queue list (as Lua reads such a room).
            turn = int(m["dq"]) if m.get("dq") else len(order)
            queue = [*order[turn:], *queue]
        return RoomSnapshot(
            counters, int(m["seq"]), tickets, tuple(_pairs(by_user).items()), tuple(pre), tuple(queue), order
        )

    def join(self, after: int, joins: Sequence[tuple[str, str, int, str, int]]) -> RoomAnswer:
        seed = self._seed
        args: list[str | int] = [self._base, after]
        for user, ticket, at, challenge, expires in joins:
            args += [user, ticket, at, hashlib.sha256(seed + ticket.encode("ascii")).hexdigest(), challenge, expires]
        return _answer(self._run("join", args))

    def tick(self, after: int, at: int, beats: Sequence[tuple[str, int]], closing: ClosedReason | None) -> RoomAnswer:
        args: list[str | int] = [self._base, after, at, closing or ""]
        for ticket, polled in beats:
            args += [ticket, polled]
        return _answer(self._run("tick", args))

    def control(self, after: int, action: Literal["pause", "resume", "rate"], at: int, rate_milli: int) -> RoomAnswer:
        return _answer(self._run("control", [self._base, after, action, at, rate_milli]))

    def close(self) -> None:
        self._client.close()
        self._patient.close()


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _counters(c: list[str]) -> RoomCounters:
    waiting, admitted, paused, rate, closed, tickets, swept_admitted, drawn = c
    return RoomCounters(
        int(waiting),
        int(admitted),
        paused == "1",
        int(rate),
        cast("ClosedReason", closed) if closed else None,
        int(tickets),
        int(swept_admitted),
        drawn == "1",
    )


def _answer(out: list[Any]) -> RoomAnswer:
    results, counters, seq, since = out
    pairs = tuple(cast("tuple[str, str]", tuple(r.split("|", 1))) for r in results)
    entries = None if since == "resync" else tuple(since)
    return RoomAnswer(pairs, _counters(counters), int(seq), entries)
