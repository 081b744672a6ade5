"""The waiting room's routes in the OpenAPI document (transport/_room.py and _room_events.py; README, the room)."""

from __future__ import annotations

from flashsale import Config
from flashsale.room import BUYER_CHARS

from ._openapi_kit import BUYER, COUNT, MOMENT, Op, Schema, buyer_answers, buyer_param, fails, nullable, ok

REASON: Schema = nullable({"enum": ["sold_out", "ended"]})
NO_ROOM = "the sale has no waiting room"
ROOM_BUYER: Schema = {**BUYER, "pattern": f"^{BUYER_CHARS}+$"}
"""A buyer in the room: as elsewhere, and no control characters (flashsale.room.BUYER_CHARS)."""

TICKET: Schema = {
    "type": "object",
    "required": [
        "ticket",
        "state",
        "position",
        "ahead",
        "eta_seconds",
        "remaining_units",
        "closed_reason",
        "pass",
        "pass_expires_at",
    ],
    "properties": {
        "ticket": {"type": "string"},
        "state": {"enum": ["pre_queue", "waiting", "admitted", "expired", "closed"]},
        "position": nullable({"type": "integer", "minimum": 1}),
        "ahead": nullable(COUNT),
        "eta_seconds": nullable({"type": "number", "minimum": 0}),
        "remaining_units": COUNT,
        "closed_reason": REASON,
        "pass": nullable({"type": "string"}),
        "pass_expires_at": nullable(MOMENT),
    },
}
TICKET_EVENT: Schema = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"const": "message"},
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": TICKET},
    },
}
JOINED: Schema = {
    "type": "object",
    "required": ["ticket", "state", "position", "eta_seconds", "poll_after"],
    "properties": {
        "ticket": {"type": "string"},
        "state": {"enum": ["pre_queue", "waiting", "admitted", "expired", "closed"]},
        "position": nullable({"type": "integer", "minimum": 1}),
        "eta_seconds": nullable({"type": "number", "minimum": 0}),
        "poll_after": {"type": "number", "exclusiveMinimum": 0},
    },
}

ROOM: Schema = {
    "type": "object",
    "required": [
        "state",
        "opens_at",
        "starts_at",
        "commitment",
        "seed",
        "admit_rate",
        "waiting",
        "admitted",
        "remaining_units",
        "closed_reason",
    ],
    "properties": {
        "state": {"enum": ["not_open", "pre_queue", "admitting", "paused", "closed"]},
        "opens_at": nullable(MOMENT),
        "starts_at": MOMENT,
        "commitment": {"type": "string"},
        "seed": nullable({"type": "string"}),
        "admit_rate": {"type": "number"},
        "waiting": COUNT,
        "admitted": COUNT,
        "remaining_units": COUNT,
        "closed_reason": REASON,
    },
}


def room_admin_operations() -> list[Op]:
    """The admin API's room routes (transport/_admin.py)."""
    sign_in = fails("No valid admin token or dashboard session.", "unauthenticated")
    absent = fails("No such route: the admin token is not configured.", "not_found")
    no_room = fails("The config has no [waiting_room].", "not_configured")
    unavailable = fails("The room is not running.", "unavailable")
    after = ok("The room after the change (as GET /v1/room).", ROOM)
    return [
        Op("POST", "/v1/admin/room/pause", "Pause the waiting room: it admits nobody (joins and polls go on)",
           tag="admin", security="admin",
           answers={200: after, 401: sign_in, 404: absent, 409: no_room, 503: unavailable}),
        Op("POST", "/v1/admin/room/resume", "Resume the waiting room: it admits again, paced from now",
           tag="admin", security="admin",
           answers={200: after, 401: sign_in, 404: absent, 409: no_room, 503: unavailable}),
        Op("PUT", "/v1/admin/room", "Change the waiting room's admission rate live", tag="admin", security="admin",
           body={"type": "object", "required": ["admit_rate"], "additionalProperties": False, "properties": {
               "admit_rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1_000_000}}},
           answers={200: after, 400: fails("A bad body; nothing changed.", "invalid_request"), 401: sign_in,
                    404: absent, 409: no_room,
                    413: fails("The body is larger than server.max_body_bytes.", "payload_too_large"),
                    503: unavailable}),
    ]  # fmt: skip


def join_body(config: Config) -> Schema:
    """``POST /v1/room/join``: the buyer (trusted mode), and a solved challenge only when the room asks proof of work.

    With ``pow_bits = 0`` the body is the buyer alone: a ``challenge`` or
    ``nonce`` there is a mistake the server refuses (400), as the document says.
    """
    room = config.waiting_room
    required = ["user"] if config.auth.mode == "trusted" else []
    properties: Schema = {"user": ROOM_BUYER}
    if room is not None and room.pow_bits:
        required += ["challenge", "nonce"]
        properties |= {"challenge": {"type": "string", "minLength": 1}, "nonce": {"type": "string", "minLength": 1}}
    return {"type": "object", "required": required, "additionalProperties": False, "properties": properties}


def room_operations(config: Config) -> list[Op]:
    """One entry per waiting-room route."""
    no_room = fails("This sale has no waiting room.", "not_found")
    unknown = fails("No such ticket for this buyer (the same answer either way).", "unknown_ticket", "not_found")
    who = buyer_answers(config)
    holder = [
        buyer_param(config, "The ticket's holder, named by the gateway ([auth] mode = trusted: required).", ROOM_BUYER)
    ]
    proof = ("invalid_proof", "challenge_used") if config.waiting_room and config.waiting_room.pow_bits else ()
    return [
        Op("GET", "/v1/room", "The waiting room now: its state, the commitment, the seed after the draw", tag="room",
           answers={200: ok("The room.", ROOM), 404: no_room}),
        Op("GET", "/v1/room/challenge", "A proof-of-work challenge (rooms with pow_bits > 0)", tag="room",
           answers={200: ok("A signed challenge, good for one join until expires_at.", {
               "type": "object", "required": ["challenge", "bits", "expires_at"], "properties": {
                   "challenge": {"type": "string"}, "bits": COUNT, "expires_at": MOMENT}}),
               404: fails("No challenge: the room asks no proof of work, or there is no room.", "no_challenge",
                          "not_found")}),
        Op("POST", "/v1/room/join", "Join the waiting room", tag="room", security="buyer", body=join_body(config),
           answers={201: ok("A new ticket.", JOINED), 200: ok("The buyer's existing ticket.", JOINED), **who,
                    400: fails("A bad body, or a bad or stale proof of work; nothing changed.", "invalid_request",
                               *proof),
                    404: no_room, 408: fails("The body did not arrive in time.", "request_timeout"),
                    409: fails("The room is not open yet, or closed.", "room_not_open", "room_closed"),
                    413: fails("The body is larger than server.max_body_bytes.", "payload_too_large"),
                    503: fails("The room is full or busy; retry shortly.", "room_full", "overloaded",
                               "unavailable")}),
        Op("GET", "/v1/room/tickets/{ticket}", "A ticket, for its holder; the poll is its heartbeat", tag="room",
           security="buyer", params=holder, answers={200: ok("The ticket now.", TICKET), **who,
                                   400: fails("The buyer is not named.", "invalid_request"), 404: unknown}),
        Op("GET", "/v1/room/tickets/{ticket}/events", "A ticket's changes as Server-Sent Events", tag="room",
           security="buyer", params=holder, answers={200: ok(
               "Server-Sent Events: one unnamed event with the ticket (as GET /v1/room/tickets/{ticket} gives it) now"
               " and on every change, until it is admitted, expired or closed; `: alive` comment lines keep it open."
               " The schema is one event's (OpenAPI 3.1 reads a stream's schema per event).",
               TICKET_EVENT, media="text/event-stream"), **who,
                                   400: fails("The buyer is not named.", "invalid_request"), 404: unknown,
                                   503: fails("Too many event streams on this server.", "overloaded")}),
        Op("GET", "/v1/room/draw", "The draw: the seed, its commitment, the pre-queue in drawn order", tag="room",
           answers={200: ok("The draw, for anyone to check.", {"type": "object", "required": [
               "seed", "commitment", "tickets"], "properties": {"seed": {"type": "string"},
               "commitment": {"type": "string"}, "tickets": {"type": "array", "items": {"type": "string"}}}}),
               404: no_room, 409: fails("The draw happens at starts_at.", "draw_not_done")}),
        *room_admin_operations(),
    ]  # fmt: skip
