"""The waiting room's routes in the OpenAPI document (transport/_room.py; README, "The waiting room")."""

from __future__ import annotations

from ._openapi_kit import Op, Param, Schema, fails, nullable, ok

MOMENT: Schema = {"type": "string", "format": "date-time"}
COUNT: Schema = {"type": "integer", "minimum": 0}
REASON: Schema = nullable({"enum": ["sold_out", "ended"]})
NO_ROOM = "the sale has no waiting room"
USER = Param("user", "query", {"type": "string", "minLength": 1}, "The ticket's holder (trusted mode).")

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


def room_operations() -> list[Op]:
    """One entry per waiting-room route."""
    no_room = fails("This sale has no waiting room.", "not_found")
    unknown = fails("No such ticket for this buyer (the same answer either way).", "unknown_ticket", "not_found")
    return [
        Op("GET", "/v1/room", "The waiting room now: its state, the commitment, the seed after the draw", tag="room",
           answers={200: ok("The room.", {"type": "object", "required": [
               "state", "opens_at", "starts_at", "commitment", "seed", "admit_rate", "waiting", "admitted",
               "remaining_units", "closed_reason"], "properties": {
               "state": {"enum": ["not_open", "pre_queue", "admitting", "paused", "closed"]},
               "opens_at": nullable(MOMENT), "starts_at": MOMENT, "commitment": {"type": "string"},
               "seed": nullable({"type": "string"}), "admit_rate": {"type": "number"}, "waiting": COUNT,
               "admitted": COUNT, "remaining_units": COUNT, "closed_reason": REASON}}), 404: no_room}),
        Op("GET", "/v1/room/challenge", "A proof-of-work challenge (rooms with pow_bits > 0)", tag="room",
           answers={200: ok("A signed challenge, good for one join until expires_at.", {
               "type": "object", "required": ["challenge", "bits", "expires_at"], "properties": {
                   "challenge": {"type": "string"}, "bits": COUNT, "expires_at": MOMENT}}),
               404: fails("No challenge: the room asks no proof of work, or there is no room.", "no_challenge",
                          "not_found")}),
        Op("POST", "/v1/room/join", "Join the waiting room", tag="room",
           body={"type": "object", "required": ["user"], "additionalProperties": False, "properties": {
               "user": {"type": "string", "minLength": 1, "maxLength": 128}, "challenge": {"type": "string"},
               "nonce": {"type": "string"}}},
           answers={201: ok("A new ticket.", JOINED), 200: ok("The buyer's existing ticket.", JOINED),
                    400: fails("A bad body, or a bad or stale proof of work; nothing changed.", "invalid_request",
                               "invalid_proof", "challenge_used"),
                    404: no_room, 408: fails("The body did not arrive in time.", "request_timeout"),
                    409: fails("The room is not open yet, or closed.", "room_not_open", "room_closed"),
                    413: fails("The body is larger than server.max_body_bytes.", "payload_too_large"),
                    503: fails("The room is full or busy; retry shortly.", "room_full", "overloaded",
                               "unavailable")}),
        Op("GET", "/v1/room/tickets/{ticket}", "A ticket, for its holder; the poll is its heartbeat", tag="room",
           params=[USER], answers={200: ok("The ticket now.", TICKET),
                                   400: fails("The buyer is not named.", "invalid_request"), 404: unknown}),
        Op("GET", "/v1/room/tickets/{ticket}/events", "A ticket's changes as Server-Sent Events", tag="room",
           params=[USER], answers={200: ok("data: lines, each the ticket as GET /v1/room/tickets/{ticket} gives it.",
                                           {"type": "string"}, media="text/event-stream"),
                                   400: fails("The buyer is not named.", "invalid_request"), 404: unknown,
                                   503: fails("Too many event streams on this server.", "overloaded")}),
        Op("GET", "/v1/room/draw", "The draw: the seed, its commitment, the pre-queue in drawn order", tag="room",
           answers={200: ok("The draw, for anyone to check.", {"type": "object", "required": [
               "seed", "commitment", "tickets"], "properties": {"seed": {"type": "string"},
               "commitment": {"type": "string"}, "tickets": {"type": "array", "items": {"type": "string"}}}}),
               404: no_room, 409: fails("The draw happens at starts_at.", "draw_not_done")}),
    ]  # fmt: skip
