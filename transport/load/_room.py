"""A buyer's way through the waiting room (``[waiting_room]``): solve, join, wait, get the pass.

The contract (README, "Waiting room"): ``GET /v1/room`` says whether there is
a room; with ``pow_bits > 0`` a join needs a ``GET /v1/room/challenge`` and a
nonce that makes ``sha256((challenge + ":" + nonce).encode())`` start with
``pow_bits`` zero bits; ``POST /v1/room/join`` gives a ticket and the poll
interval (``poll_after``); the ticket is followed by polling
``GET /v1/room/tickets/{ticket}`` at that interval (each poll is the ticket's
heartbeat) or by its Server-Sent Events (``.../events``) until it reads
``admitted`` (with the ``pass``), ``closed`` or ``expired``. The pass goes
out as ``Admission-Pass`` on every purchase.

Challenge and join are the ``join`` phase; each poll, and the opening of a
ticket's event stream, is the ``poll`` phase.

A scenario sent with ``replay --against`` names the room traffic itself:
:meth:`Room.join` and :meth:`Room.poll` make one join or one poll of a
buyer's ticket, and remember the ticket and the pass a poll returned
(:attr:`Room.passes`) for that buyer's purchases.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

import aiohttp
import orjson

from . import _sse
from ._http import Answer, Http
from ._identity import Identity

RoomMode = Literal["auto", "on", "off"]
Follow = Literal["poll", "sse"]
TERMINAL = frozenset({"admitted", "closed", "expired"})
MIN_POLL_S, MAX_POLL_S = 0.05, 60.0
MAX_POW_BITS = 32


Send = Callable[[float], Awaitable[Answer]]
Retry = Callable[[Answer, Send], Awaitable[Answer]]
"""Retries a first answer as the buyer's back-off says: ``retry(first, send)``."""


class RoomError(RuntimeError):
    """``--room on`` and the server has no waiting room."""


def solve(challenge: str, bits: int) -> str:
    """The first nonce (a decimal string) whose hash with ``challenge`` starts with ``bits`` zero bits."""
    shift = 256 - bits
    n = 0
    while True:
        nonce = str(n)
        digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
        if int.from_bytes(digest, "big") >> shift == 0:
            return nonce
        n += 1


def pow_ok(challenge: str, nonce: str, bits: int) -> bool:
    digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
    return int.from_bytes(digest, "big") >> (256 - bits) == 0


class Room:
    """The room as one process's buyers see it."""

    def __init__(self, mode: RoomMode, follow: Follow, identity: Identity) -> None:
        self.mode = mode
        self.follow = follow
        self.identity = identity
        self.present = False
        self.state = "off" if mode == "off" else "not asked"
        self.bits = 0
        self.tickets: dict[str, str] = {}  # buyer -> the ticket its last join gave (scenario traffic)
        self.passes: dict[str, str] = {}  # buyer -> the pass a poll (or the join) returned

    async def probe(self, http: Http) -> None:
        """``GET /v1/room``: is there a room, and does joining need proof of work?"""
        if self.mode == "off":
            return
        answer = await http.call("join", "GET", "/v1/room", http.now())
        if answer.status == 200 and "state" in answer.data:
            self.present = True
            self.state = str(answer.data["state"])
            challenge = await http.call("join", "GET", "/v1/room/challenge", http.now())
            if challenge.status == 200:  # only a room with pow_bits > 0 hands out challenges
                self.bits = max(1, int(challenge.data.get("bits", 1)))
        else:
            self.state = f"absent (GET /v1/room answered {answer.status or 'nothing'})"
            if self.mode == "on":
                raise RoomError(f"--room on: {self.state}")

    async def admit(self, http: Http, user: str, due: float, retry: Retry) -> tuple[str | None, str]:
        """The buyer's pass, or ``None`` and why not."""
        joined, why = await self.join(http, user, due, retry)
        if joined is None:
            return None, why
        ticket = self.tickets[user]
        if joined.data.get("state") == "admitted" and joined.data.get("pass"):
            return str(joined.data["pass"]), ""
        headers = self.identity.headers(user)
        wait = _interval(joined.data.get("poll_after"))
        if self.follow == "sse":
            return await self._listen(http, user, ticket, headers)
        return await self._poll(http, user, ticket, headers, wait)

    async def join(self, http: Http, user: str, due: float, retry: Retry) -> tuple[Answer | None, str]:
        """One join (after solving a challenge when the room asks proof of work): the answer, or why not."""
        headers = {**self.identity.headers(user), "Content-Type": "application/json"}
        body: dict[str, str] = {"user": user} if self.identity.mode == "trusted" else {}
        answer = await http.call("join", "GET", "/v1/room/challenge", due, headers=headers) if self.bits else None
        if answer is not None:
            if answer.status != 200:
                return None, f"challenge {answer.status} {answer.code}".rstrip()
            challenge, bits = str(answer.data.get("challenge", "")), int(answer.data.get("bits", self.bits))
            if not 0 <= bits <= MAX_POW_BITS:
                return None, f"challenge asks for {bits} bits"
            nonce = await asyncio.to_thread(solve, challenge, bits) if bits > 16 else solve(challenge, bits)
            body |= {"challenge": challenge, "nonce": nonce}
            due = http.now()
        payload = orjson.dumps(body)

        async def join(at: float) -> Answer:
            return await http.call("join", "POST", "/v1/room/join", at, body=payload, headers=headers)

        joined = await join(due)
        joined = await retry(joined, join)
        if joined.status not in (200, 201):
            return None, f"join {joined.status} {joined.code}".rstrip()
        ticket = str(joined.data.get("ticket", ""))
        if not ticket:
            return None, "join answered without a ticket"
        self.tickets[user] = ticket
        return joined, ""

    async def poll(self, http: Http, user: str, due: float) -> str:
        """One poll of the buyer's ticket (its heartbeat); keeps the pass it shows. Why not, if it could not."""
        ticket = self.tickets.get(user)
        if ticket is None:
            return "no ticket"
        params = self.identity.read_params(user)
        headers = self.identity.headers(user)
        answer = await http.call("poll", "GET", f"/v1/room/tickets/{ticket}", due, headers=headers, params=params)
        if answer.status != 200:
            return f"{answer.status} {answer.code}".rstrip()
        if answer.data.get("state") == "admitted" and answer.data.get("pass"):
            self.passes[user] = str(answer.data["pass"])
        return ""

    async def _poll(
        self, http: Http, user: str, ticket: str, headers: dict[str, str], wait: float
    ) -> tuple[str | None, str]:
        params = self.identity.read_params(user)
        due = http.now() + wait
        while True:
            await asyncio.sleep(max(0.0, due - http.now()))
            answer = await http.call("poll", "GET", f"/v1/room/tickets/{ticket}", due, headers=headers, params=params)
            state = answer.data.get("state")
            if answer.status == 200 and state in TERMINAL:
                return _ended(answer.data)
            if answer.status == 200:
                wait = _interval(answer.data.get("poll_after"), wait)
            elif answer.status not in (429, 503):
                return None, f"poll {answer.status} {answer.code}".rstrip()
            due = max(http.now(), due + wait)

    async def _listen(self, http: Http, user: str, ticket: str, headers: dict[str, str]) -> tuple[str | None, str]:
        params = self.identity.read_params(user)
        due = http.now()
        http.budget -= 1
        http.stats.sent(due)
        no_deadline = aiohttp.ClientTimeout(total=None, sock_connect=10.0)
        try:
            async with http.session.get(
                f"{http.base}/v1/room/tickets/{ticket}/events", headers=headers, params=params, timeout=no_deadline
            ) as resp:
                key = "200 stream" if resp.status == 200 else str(resp.status)
                http.stats.answered("poll", key, due, http.now())
                if resp.status != 200:
                    return None, f"ticket events {resp.status}"
                async for _, data in _sse.events(resp):
                    try:
                        view = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(view, dict) and view.get("state") in TERMINAL:
                        return _ended(view)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            http.stats.answered("poll", "lost", due, http.now())
            http.stats.lost(f"poll ticket events: {str(exc) or type(exc).__name__}")
            return None, "ticket events lost"
        return None, "ticket events ended before admission"


def _ended(view: Mapping[str, object]) -> tuple[str | None, str]:
    if view.get("state") == "admitted" and view.get("pass"):
        return str(view["pass"]), ""
    reason = view.get("closed_reason")
    return None, f"ticket {view.get('state')}" + (f" ({reason})" if reason else "")


def _interval(value: object, default: float = 1.0) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return min(MAX_POLL_S, max(MIN_POLL_S, float(value)))
    return default
