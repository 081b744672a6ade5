"""The waiting room's routes (README, "The waiting room").

``GET /v1/room``, ``GET /v1/room/challenge``, ``POST /v1/room/join``,
``GET /v1/room/tickets/{ticket}`` (a poll: the ticket's heartbeat) and
``GET /v1/room/draw``; a ticket's event stream is in :mod:`._room_events`.
Polls are the bulk of a room's traffic: they are answered on the loop from
the room's published board, never by an actor message. The purchase route
asks :func:`pass_refusal` before buying.

The buyer is named as on the order routes: in trusted mode the body's
``user`` (join) or ``?user=`` (ticket routes); :func:`buyer` is the one
place that says so.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from flashsale import InvalidRequest, SaleEngine, Unavailable
from flashsale.room import Room, RoomRefused, RoomStatus, TicketStatus, UnknownTicket

from ._auth import IDENTITY, AuthRefused, body_buyer, request_buyer
from ._handlers import ENGINE, MAX_BODY, METRICS, REQUEST_ID, Lane, body_arrived, guarded, read_body, refuse, request_id
from ._render import JSON, iso, json_response

routes = web.RouteTableDef()
_bodies: dict[str, tuple[TicketStatus, bytes]] = {}  # ticket -> the last status polled and its body
MAX_BODIES = 200_000

_JOIN_FIELDS = frozenset({"user", "challenge", "nonce"})
TERMINAL = frozenset({"admitted", "expired", "closed"})
_NO_ROOM = "this sale has no waiting room"
_TICKETS = "/v1/room/tickets/"
_LANE_JOIN_FIELDS = frozenset({"user"})
_QUERY_USER = "'user' (the ?user= query parameter)"


def buyer(request: web.Request, named: object, where: str = "'user'") -> str | web.Response:
    """Who is asking, per ``[auth]`` (transport/_auth.py): in trusted mode the name the request gives.

    A refused credential raises :class:`AuthRefused`, which :func:`guarded` answers (401/403/400).
    """
    return request_buyer(request, named, where)


def in_room(handler: Callable[[web.Request, SaleEngine], Awaitable[web.StreamResponse]]) -> Handler:
    """A room route: a sale without a ``[waiting_room]`` answers it 404; the handler gets the engine."""

    @functools.wraps(handler)
    def run(request: web.Request) -> Awaitable[web.StreamResponse]:
        # Not a coroutine of its own: it hands back the handler's (one frame less on every join).
        engine = request.app[ENGINE]
        if not engine.has_room:
            return _answer(refuse(request, _NO_ROOM, "not_found", 404))
        return handler(request, engine)

    return run


async def _answer(response: web.StreamResponse) -> web.StreamResponse:
    return response


def refused(request: web.Request, exc: RoomRefused) -> web.Response:
    return refuse(request, exc.detail, exc.code, exc.status)


def unknown_ticket(request: web.Request, ticket: str) -> web.Response:
    return refuse(request, f"there is no ticket {ticket!r} for this buyer", "unknown_ticket", 404)


def ticket_json(t: TicketStatus) -> dict[str, Any]:
    """A ticket as its holder sees it (the poll answer and each event)."""
    return {
        "ticket": t.ticket,
        "state": t.state,
        "position": t.position,
        "ahead": t.ahead,
        "eta_seconds": t.eta_seconds,
        "remaining_units": t.remaining_units,
        "closed_reason": t.closed_reason,
        "pass": t.admission_pass,
        "pass_expires_at": iso(t.pass_expires_at),
    }


def pass_refusal(request: web.Request, engine: SaleEngine, user: str) -> web.Response | None:
    """With a waiting room, a purchase needs a valid ``Admission-Pass`` for its buyer: the 403 if not."""
    code, detail = engine.check_pass(request.headers.get("Admission-Pass"), user)
    return refuse(request, detail, code, 403) if code else None


@routes.get("/v1/room")
@guarded
@in_room
async def room_status(request: web.Request, engine: SaleEngine) -> web.Response:
    return json_response(200, room_json(engine.room_status()))


def room_json(s: RoomStatus) -> dict[str, Any]:
    """The room as ``GET /v1/room`` answers it (and the admin API's room routes)."""
    return {
        "state": s.state,
        "opens_at": iso(s.opens_at),
        "starts_at": iso(s.starts_at),
        "commitment": s.commitment,
        "seed": s.seed,
        "admit_rate": s.admit_rate,
        "waiting": s.waiting,
        "admitted": s.admitted,
        "remaining_units": s.remaining_units,
        "closed_reason": s.closed_reason,
    }


@routes.get("/v1/room/challenge")
@guarded
@in_room
async def challenge(request: web.Request, engine: SaleEngine) -> web.Response:
    try:
        c = engine.room_challenge()
    except RoomRefused as exc:
        return refused(request, exc)
    return json_response(200, {"challenge": c.challenge, "bits": c.bits, "expires_at": iso(c.expires_at)})


@routes.post("/v1/room/join")
@guarded
@in_room
async def join(request: web.Request, engine: SaleEngine) -> web.Response:
    try:
        # A body that has all arrived needs no timer (the usual join); one still arriving gets the body timeout.
        data = orjson.loads(await request.read() if request.content.is_eof() else await read_body(request))
    except orjson.JSONDecodeError as exc:
        return refuse(request, f"the body is not valid JSON: {exc.msg} at position {exc.pos}")
    if type(data) is not dict:
        return refuse(request, 'the body must be a JSON object like {"user": "u-1"}')
    if not data.keys() <= _JOIN_FIELDS:
        unknown = sorted(data.keys() - _JOIN_FIELDS)
        return refuse(request, f"unknown field {unknown[0]!r}; the fields are user, challenge and nonce")
    user = buyer(request, body_buyer(data))
    if isinstance(user, web.Response):
        return user
    challenge, nonce = data.get("challenge"), data.get("nonce")
    if len(data) > 1:
        for name, value in (("challenge", challenge), ("nonce", nonce)):
            if name in data and type(value) is not str:
                return refuse(request, f"'{name}' must be a string")
    try:
        # Answered at once, placed behind the answer; a shared room's joins wait for the room instead.
        ticket, created = await engine.join(user, challenge=challenge, nonce=nonce, confirm=False)
    except RoomRefused as exc:
        return refused(request, exc)
    return _joined(ticket, created, request[REQUEST_ID])


def _joined(ticket: TicketStatus, created: bool, rid: str) -> web.Response:
    """A join's answer: ``201`` with a new ticket, ``200`` with the buyer's existing one."""
    body = orjson.dumps(
        {
            "ticket": ticket.ticket,
            "state": ticket.state,
            "position": ticket.position,
            "eta_seconds": ticket.eta_seconds,
            "poll_after": ticket.poll_after,
        }
    )
    return web.Response(body=body, status=201 if created else 200, content_type=JSON, headers={"X-Request-Id": rid})


def join_lane(app: web.Application) -> Lane:
    """``POST /v1/room/join``, the usual join, answered before aiohttp routes it (:func:`._server.before_routing`).

    The usual join: a body that has all arrived, within ``max_body_bytes``,
    a JSON object with at most ``user``, and a buyer the auth mode accepts.
    The room answers it on the loop (:meth:`Room.join_now`), or, when it is
    shared, once Redis has placed it (:meth:`Room.join`). Everything else,
    refusals included, is left to the routed :func:`join`, which reads the
    same body again (aiohttp keeps it) and answers it: a refusal changed
    nothing, so the route's own attempt gets the same answer (on a shared
    room, one more call to Redis). A join with proof of work always takes
    the route.
    """
    engine = app[ENGINE]
    identity = app[IDENTITY]
    max_body = app[MAX_BODY]
    durations = app[METRICS].route("join")
    clock = time.perf_counter

    async def answer(request: web.Request, room: Room) -> web.Response | None:
        started = clock()
        try:
            data = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return None
        if type(data) is not dict or not data.keys() <= _LANE_JOIN_FIELDS:
            return None
        try:
            user = identity.resolve(request, body_buyer(data), "'user'")
            joined = room.join_now(user)
            if joined is None:  # a shared room: placed by Redis before it is answered
                joined = await room.join(user)
        except (AuthRefused, RoomRefused, InvalidRequest, Unavailable):
            return None  # nothing changed: the routed handler refuses it, with its code and detail
        ticket, created = joined
        response = _joined(ticket, created, request_id(request))
        durations.observe("201" if created else "200", clock() - started)
        return response

    def lane(request: web.Request) -> Awaitable[web.Response | None] | None:
        if request.raw_path != "/v1/room/join" or request.method != "POST":
            return None
        room = engine.waiting_room
        if room is None or not room.running:
            return None
        return answer(request, room) if body_arrived(request, max_body) else None

    return lane


@routes.get("/v1/room/tickets/{ticket}")
@guarded
async def ticket(request: web.Request) -> web.Response:
    """A poll: the bulk of a room's traffic, answered from the room's board with no message and no await.

    Behind ``flashsale serve`` the usual poll never gets here: :func:`poll_lane` answers it before routing.
    """
    room = request.app[ENGINE].waiting_room
    if room is None or not room.running:
        return refuse(request, _NO_ROOM, "not_found", 404)
    named = _plain_user(request.rel_url.raw_query_string)
    user = buyer(request, named or request.query.get("user"), _QUERY_USER)
    if isinstance(user, web.Response):
        return user
    name = request.match_info["ticket"]
    try:
        body = _poll(room, name, user)
    except UnknownTicket:
        return unknown_ticket(request, name)
    return web.Response(body=body, content_type=JSON, headers={"X-Request-Id": request[REQUEST_ID]})


def _plain_user(query: str) -> str | None:
    """The name in a query that is exactly ``user=<name>`` with nothing to unescape; else ``None``."""
    if query.startswith("user=") and "&" not in query and "%" not in query and "+" not in query:
        return query[5:] or None
    return None


def _poll(room: Room, name: str, user: str) -> bytes:
    """The poll's answer: the ticket's status (this poll is its heartbeat), rendered once while it stays the same.

    The room gives back the same status object while nothing the buyer sees has changed. Raises
    :class:`UnknownTicket` for a ticket that is not ``user``'s.
    """
    t = room.ticket(name, user)
    cached = _bodies.get(name)
    if cached is not None and cached[0] is t:
        return cached[1]
    body = orjson.dumps(ticket_json(t))
    if len(_bodies) >= MAX_BODIES:
        _bodies.clear()
    _bodies[name] = (t, body)
    return body


def poll_lane(app: web.Application) -> Lane:
    """``GET /v1/room/tickets/{t}``, the usual poll, answered before routing (:func:`._server.before_routing`).

    Routing, the app's dispatch and two coroutine frames cost a poll about as
    much as everything the room does for it, so the usual poll skips them:
    a plain ticket id in the path, a query of at most ``user=<name>``, a
    buyer the auth mode accepts and a ticket that is theirs. Anything else
    (another method, an escaped or longer path, another query, a refusal of
    any kind) returns ``None`` before it changes anything, and the routed
    :func:`ticket` answers it, refusals included. The answer is the routed
    one: the same body, ``X-Request-Id`` and duration tally.
    """
    engine = app[ENGINE]
    identity = app[IDENTITY]
    durations = app[METRICS].route("ticket")
    clock = time.perf_counter
    cut = len(_TICKETS)

    def lane(request: web.Request) -> web.Response | None:
        path = request.raw_path
        if not path.startswith(_TICKETS) or request.method != "GET":
            return None
        room = engine.waiting_room
        if room is None or not room.running:
            return None
        started = clock()
        head, _, query = path.partition("?")
        name = head[cut:]
        if not name or "/" in name or "%" in name:
            return None
        named = _plain_user(query)
        if named is None and query:
            return None
        try:
            body = _poll(room, name, identity.resolve(request, named, _QUERY_USER))
        except (AuthRefused, UnknownTicket):
            return None  # the routed handler refuses it, with its code and detail
        response = web.Response(body=body, content_type=JSON, headers={"X-Request-Id": request_id(request)})
        durations.observe("200", clock() - started)
        return response

    return lane


@routes.get("/v1/room/draw")
@guarded
@in_room
async def draw(request: web.Request, engine: SaleEngine) -> web.Response:
    try:
        d = engine.room_draw()
    except RoomRefused as exc:
        return refused(request, exc)
    return json_response(200, {"seed": d.seed, "commitment": d.commitment, "tickets": list(d.tickets)})
