"""A ticket as Server-Sent Events: ``GET /v1/room/tickets/{ticket}/events`` (README, "The waiting room").

The stream is the ticket's heartbeat while it is open. When the room closes,
every stream's last event is written from the room's notice itself
(:class:`_LastEvent`), 10,000 of them in one pass on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from aiohttp import web

from flashsale import SaleEngine
from flashsale.room import RoomRefused, TicketStatus, UnknownTicket

from ._handlers import REQUEST_ID, guarded
from ._room import TERMINAL, buyer, in_room, refused, ticket_json, unknown_ticket

routes = web.RouteTableDef()
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}


@routes.get("/v1/room/tickets/{ticket}/events")
@guarded
@in_room
async def ticket_events(request: web.Request, engine: SaleEngine) -> web.StreamResponse:
    """The ticket as Server-Sent Events: now, then on every change, until admitted, expired or closed.

    Position changes come at most once a second (the room recomputes them
    once a second); admission and closing at once. While the stream is open
    it is the ticket's heartbeat: a comment line every ``poll_after``
    seconds keeps the connection and the ticket alive.
    """
    user = buyer(request, request.query.get("user"))
    if isinstance(user, web.Response):
        return user
    name = request.match_info["ticket"]
    latest: list[TicketStatus | None] = []
    changed = asyncio.Event()
    # Once the stream is under way, the last event is written from the room's notice itself: when the room
    # closes, 10,000 streams are told in one pass on the loop, before any of their handlers wakes to end them.
    last = _LastEvent()

    def listener(status: TicketStatus | None) -> None:
        if status is not None and status.state in TERMINAL:
            last.write(status)
        latest.append(status)
        changed.set()

    try:
        first = engine.ticket(name, user)
        unwatch = engine.room.watch(name, user, listener)
    except UnknownTicket:
        return unknown_ticket(request, name)
    except RoomRefused as exc:
        return refused(request, exc)
    response = web.StreamResponse(headers={**_SSE_HEADERS, "X-Request-Id": request[REQUEST_ID]})
    try:
        await response.prepare(request)
        status: TicketStatus | None = first
        while status is not None:
            if status.state in TERMINAL:  # the last event (unless written already) and the end of the stream
                await response.write_eof(b"" if last.sent else _event(status))
                return response
            await response.write(_event(status))
            last.ready(request.transport, response)
            while not latest:
                try:
                    async with asyncio.timeout(first.poll_after):
                        await changed.wait()
                except TimeoutError:
                    engine.ticket(name, user)  # the open stream is the ticket's heartbeat
                    await response.write(b": alive\n\n")
            changed.clear()
            status = latest[-1]
            latest.clear()
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
    except ConnectionResetError:  # the client went away
        pass
    finally:
        unwatch()
    return response


def _event(status: TicketStatus) -> bytes:
    return b"data: " + orjson.dumps(ticket_json(status)) + b"\n\n"


class _LastEvent:
    """A ticket stream's last event, written straight to its transport when the room says so."""

    __slots__ = ("_chunked", "_transport", "sent")

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._chunked = False
        self.sent = False

    def ready(self, transport: asyncio.Transport | None, response: web.StreamResponse) -> None:
        """The headers and the first event are written: from now on a whole event may follow at any time."""
        self._transport = transport
        self._chunked = response.headers.get("Transfer-Encoding") == "chunked"

    def write(self, status: TicketStatus) -> None:
        t = self._transport
        if t is None or self.sent or t.is_closing():
            return  # the handler writes it, as any other event
        event = _event(status)
        t.write(b"%x\r\n%b\r\n" % (len(event), event) if self._chunked else event)
        self.sent = True
