"""The HTTP server around the app: slow clients cut off, connections capped, every error JSON.

:func:`serve` runs the app the way ``web.run_app`` would (an ``AppRunner``;
SIGTERM or SIGINT stop it gracefully), with its own listener, so that each
connection is handled by a :class:`JsonRequestHandler`:

- **Header timeout.** aiohttp closes a connection whose keep-alive timer
  runs out while it waits for a request head, and that timer starts when the
  connection opens and again after each answer; data arriving does not move
  it. So ``keepalive_timeout = connections.header_timeout`` gives a whole
  request head that many seconds, however slowly it drips in.
- **Body timeout.** Handlers read bodies through ``read_body`` (408 after
  ``connections.body_timeout``); an unread body is drained for at most as
  long (``lingering_time``).
- **Connection caps** (:class:`ConnectionGate`): ``max_per_ip`` per client
  address (an IPv6 client's /64; trusted proxies exempt) and ``max_total``,
  kept :data:`FD_RESERVE` below the descriptor limit. A connection over a cap
  gets a canned ``503 overloaded`` and is closed before it costs a task.
- **Fast lanes** (:func:`before_routing`): the app's hottest requests may be
  answered before routing (``app[LANES]``).
- **JSON errors.** Errors aiohttp answers itself (parser errors: bad
  framing, oversized heads; an unknown ``Expect``) get the
  ``{"error", "detail"}`` shape, and are counted by :mod:`._trouble` instead
  of each logging a traceback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import signal
import socket
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, cast

import orjson
import structlog
from aiohttp import web

from flashsale import Config

from ._access_log import access_log_settings
from ._batched_writes import BatchedTransport, WriteBatch
from ._client_ip import _peer_key
from ._handlers import LANES, Lane
from ._render import error
from ._trouble import TROUBLE

FD_RESERVE = 128
"""Descriptors kept for everything but client connections (stores, Redis, PostgreSQL, logs)."""

_CODES = {400: "invalid_request", 408: "request_timeout", 413: "payload_too_large", 417: "expectation_failed"}


def _canned(status: int, code: str, detail: str) -> bytes:
    body = orjson.dumps({"error": code, "detail": detail})
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


_TOO_MANY_HERE = _canned(503, "overloaded", "too many connections from this address; close some and retry")
_TOO_MANY = _canned(503, "overloaded", "the server holds as many connections as it may; retry shortly")


def descriptor_cap(wanted: int) -> int:
    """``wanted``, lowered to stay :data:`FD_RESERVE` below the process's open-file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - FD_RESERVE))


class ConnectionGate:
    """Counts open connections per client address and in all; says whether one more may open."""

    __slots__ = ("_per_ip", "_total", "_trusted", "max_per_ip", "max_total", "open")

    def __init__(self, max_per_ip: int, max_total: int, trusted_proxies: tuple[str, ...] = ()) -> None:
        self.max_per_ip = max_per_ip
        self.max_total = max_total
        self._trusted = [ipaddress.ip_network(n, strict=False) for n in trusted_proxies]
        self._per_ip: dict[str, int] = {}
        self.open = 0

    def enter(self, transport: asyncio.BaseTransport) -> tuple[bool, str | None]:
        """Count a new connection in: (admitted, its address key or ``None`` when not counted per address)."""
        if self.open >= self.max_total:
            TROUBLE.note("connection refused: server full", open=self.open)
            transport.write(_TOO_MANY)  # type: ignore[attr-defined]
            return False, None
        key = self._key(transport)
        if key is not None:
            held = self._per_ip.get(key, 0)
            if held >= self.max_per_ip:
                TROUBLE.note("connection refused: too many from one address", address=key)
                transport.write(_TOO_MANY_HERE)  # type: ignore[attr-defined]
                return False, None
            self._per_ip[key] = held + 1
        self.open += 1
        return True, key

    def leave(self, key: str | None) -> None:
        self.open -= 1
        if key is not None:
            left = self._per_ip[key] - 1
            if left:
                self._per_ip[key] = left
            else:
                del self._per_ip[key]

    def _key(self, transport: asyncio.BaseTransport) -> str | None:
        peer = transport.get_extra_info("peername")
        if not isinstance(peer, tuple) or not peer:
            return None  # a Unix socket: no address to count by
        key = _peer_key(str(peer[0]))
        if self._trusted:
            try:
                ip = ipaddress.ip_address(peer[0])
            except ValueError:
                return key
            if any(ip in net for net in self._trusted):
                return None  # a proxy speaks for many clients
        return key


class JsonRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, gated, with JSON error answers and counted (not traced) errors."""

    __slots__ = ("_admitted", "_gate", "_gate_key", "_writes")

    def __init__(self, manager: web.Server, gate: ConnectionGate, writes: WriteBatch, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gate = gate
        self._gate_key: str | None = None
        self._admitted = False
        self._writes = writes

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._admitted, self._gate_key = self._gate.enter(transport)
        if not self._admitted:
            transport.close()
            return
        # Answers leave at the end of the loop pass, together (transport/_batched_writes.py).
        super().connection_made(BatchedTransport(cast("asyncio.Transport", transport), self._writes))

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._gate.leave(self._gate_key)
        super().connection_lost(exc)

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        if status >= 500:
            TROUBLE.note("unhandled error", logging.ERROR, error=repr(exc))
            response = error(status, "internal_error", "something went wrong on our side; nothing was bought")
        else:
            reason = message or (str(exc) if exc is not None else HTTPStatus(status).phrase)
            printable = reason[:160].encode("ascii", "backslashreplace").decode("ascii")
            TROUBLE.note("malformed request", logging.INFO, status=status, reason=printable)
            response = error(status, _CODES.get(status, "http_error"), f"the request could not be read: {printable}")
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        TROUBLE.note("http protocol error", logging.WARNING, error=repr(kw.get("exc_info")))


def before_routing(
    app: web.Application, handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """What every request meets before aiohttp's router (``handler``, the app's dispatch).

    An ``Expect`` other than ``100-continue`` gets a JSON 417 (aiohttp would
    answer plain text, or a 500). Then the app's fast lanes (``app[LANES]``,
    e.g. :func:`._room.poll_lane`) may answer the common case of their route
    at once; whatever they leave goes to the router and its handler.

    A lane's answer is never routed, so its request has no match info:
    ``request.app`` is not set and the app's ``on_response_prepare`` signal
    does not run for it. flashsale registers no such signal; a lane gets
    what it needs from the app when it is made.
    """
    found = app.get(LANES)
    lanes: tuple[Lane, ...] = () if found is None else tuple(found)

    async def door(request: web.BaseRequest) -> web.StreamResponse:
        expect = request.headers.get("Expect")
        if expect is not None and expect.lower() != "100-continue":
            TROUBLE.note("malformed request", logging.INFO, status=417, reason="unknown Expect")
            response = error(417, "expectation_failed", "the only expectation understood is 'Expect: 100-continue'")
            response.force_close()
            return response
        for lane in lanes:
            answer = lane(request)  # type: ignore[arg-type] # the app's request factory makes web.Request
            if answer is None:
                continue
            if type(answer) is web.Response:  # not isinstance: StreamResponse is an ABC, a costly check
                return answer
            later = await cast("Awaitable[web.StreamResponse | None]", answer)
            if later is None:  # left after all (a body it does not take): the router's
                break
            return later
        return await handler(request)

    return door


async def serve(
    app: web.Application,
    config: Config,
    *,
    host: str,
    port: int,
    reuse_port: bool = False,
    sock: socket.socket | None = None,
    listening: Callable[[int], None] = lambda _: None,
    stop: asyncio.Event | None = None,
    signals: bool = True,
) -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM/SIGINT (or ``stop`` is set), then shut down gracefully.

    ``signals=False`` leaves signal handling alone (a server in a thread, or in a test).
    ``sock``: a socket ``flashsale serve`` bound before it opened anything else
    (transport/_preflight.py); ``host`` and ``port`` are then not used.
    """
    conns = config.connections
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=10.0)
    await runner.setup()
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    listener: asyncio.Server | None = None
    caught = (signal.SIGTERM, signal.SIGINT) if signals else ()
    try:
        server = runner.server
        assert server is not None
        server.request_handler = before_routing(app, server.request_handler)
        gate = ConnectionGate(conns.max_per_ip, descriptor_cap(conns.max_total), config.server.trusted_proxies)
        writes = WriteBatch(loop)
        options: dict[str, Any] = {
            "loop": loop,
            "keepalive_timeout": conns.header_timeout,
            "lingering_time": conns.body_timeout,
            **access_log_settings(config.server),  # none at all unless server.access_log
        }

        def handler() -> JsonRequestHandler:
            return JsonRequestHandler(server, gate, writes, **options)

        if sock is not None:
            listener = await loop.create_server(handler, sock=sock)
        else:
            listener = await loop.create_server(handler, host, port, reuse_port=reuse_port or None)
        for sig in caught:
            loop.add_signal_handler(sig, _stop_once, stop, sig.name)
        listening(listener.sockets[0].getsockname()[1])
        await stop.wait()
    finally:
        if listener is not None:
            listener.close()
        try:
            await runner.cleanup()
        finally:
            # Only now: a second SIGTERM during the cleanup (make serve passes its own on) must not kill the flush.
            for sig in caught:
                loop.remove_signal_handler(sig)


def _stop_once(stop: asyncio.Event, signame: str) -> None:
    """The first SIGTERM or SIGINT stops the server; later ones during the stop are logged and change nothing."""
    if stop.is_set():
        structlog.get_logger("flashsale.http").info("already stopping", signal=signame)
    stop.set()
