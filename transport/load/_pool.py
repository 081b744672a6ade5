"""The buyers' connection pool: keep-alive HTTP/1.1 to one origin, lean enough to out-pace the server.

A load generator that costs as much per request as the server it measures
measures itself. aiohttp's client spends most of a small request in
generality (cookie jars, tracing, redirects, multi-origin connectors), so
the buyers' requests go through this pool instead: one origin, requests
written as prepared bytes, answers parsed by ``httptools`` (the C parser
uvicorn uses), at most ``limit`` connections kept alive and handed from one
request to the next; a request that finds none free waits in FIFO order
(that wait is part of its latency: it was due). The streams (stock feed,
ticket events) and the audit use aiohttp, where generality is worth it.

Each request has a deadline (``timeout`` seconds from asking for a
connection); past it the request fails with :class:`TimeoutError` and its
connection is closed. A request whose *reused* connection turns out to have
been closed by the server before any byte of the answer arrived is sent
once more on a new connection (every buyer request is idempotent: purchases
carry their key).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

import httptools


class PoolClosed(ConnectionError):
    """The pool was closed while a request waited for it."""


class _Connection(asyncio.Protocol):
    __slots__ = (
        "body",
        "closed",
        "got_bytes",
        "keep_alive",
        "parser",
        "retry_after",
        "transport",
        "used",
        "waiter",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes, bytes | None]] | None = None
        self.body: list[bytes] = []
        self.retry_after: bytes | None = None
        self.closed = False
        self.keep_alive = True
        self.used = False
        self.got_bytes = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport is not an asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"malformed HTTP answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionResetError(str(exc) if exc else "the server closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 11 and name.lower() == b"retry-after":
            self.retry_after = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        body, self.body = b"".join(self.body), []
        retry_after, self.retry_after = self.retry_after, None
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, body, retry_after))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, data: bytes, waiter: asyncio.Future[tuple[int, bytes, bytes | None]]) -> None:
        assert self.transport is not None
        self.waiter = waiter
        self.got_bytes = False
        self.transport.write(data)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Deadline:
    """Cancels the request's task when its time is up, and remembers that it did."""

    __slots__ = ("fired", "task")

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        self.fired = False

    def __call__(self) -> None:
        self.fired = True
        self.task.cancel()


class Pool:
    """Up to ``limit`` keep-alive connections to the origin of ``url``."""

    def __init__(self, url: str, *, limit: int, timeout: float) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if parts.scheme == "https" else None
        self.port = parts.port or (443 if self.ssl else 80)
        default = parts.port is None
        self.host_header = (self.host if default else f"{self.host}:{self.port}").encode("idna")
        self.limit = limit
        self.timeout = timeout
        self.idle: collections.deque[_Connection] = collections.deque()
        self.waiting: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self.open = 0
        self.closed = False

    def encode(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
    ) -> bytes:  # fmt: skip
        """The request as bytes (``params`` as the query string)."""
        if params:
            path = f"{path}?{urlencode(params)}"
        lines = [f"{method} {path} HTTP/1.1\r\nHost: ".encode("latin-1"), self.host_header, b"\r\n"]
        if headers:
            for k, v in headers.items():
                if "\r" in v or "\n" in v or "\r" in k or "\n" in k:
                    raise ValueError(f"header {k!r} has a line break")
                lines.append(f"{k}: {v}\r\n".encode("latin-1"))
        if body is not None:
            lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
            lines.append(body)
        else:
            lines.append(b"Content-Length: 0\r\n\r\n" if method == "POST" else b"\r\n")
        return b"".join(lines)

    async def request(self, data: bytes) -> tuple[int, bytes, bytes | None]:
        """Send one encoded request; (status, body, Retry-After) of its answer."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        deadline = _Deadline(task)
        timer = loop.call_later(self.timeout, deadline)
        conn: _Connection | None = None
        try:
            for attempt in (1, 2):
                conn = await self._acquire(loop)
                reused = conn.used
                conn.used = True
                waiter: asyncio.Future[tuple[int, bytes, bytes | None]] = loop.create_future()
                conn.send(data, waiter)
                try:
                    answer = await waiter
                except ConnectionResetError:
                    stale = reused and not conn.got_bytes
                    self._drop(conn)
                    conn = None
                    if stale and attempt == 1:
                        continue  # the server had closed an idle connection: once more on a new one
                    raise
                self._release(conn)
                conn = None
                return answer
            raise AssertionError("unreachable")
        except asyncio.CancelledError:
            if conn is not None:
                self._drop(conn)
            if deadline.fired:
                task.uncancel()
                raise TimeoutError(f"no answer within {self.timeout:g} s") from None
            raise
        except BaseException:
            if conn is not None:
                self._drop(conn)
            raise
        finally:
            timer.cancel()

    async def _acquire(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        if self.closed:
            raise PoolClosed("the pool is closed")
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn
            self.open -= 1
        if self.open < self.limit:
            return await self._connect(loop)
        ticket: asyncio.Future[_Connection | None] = loop.create_future()
        self.waiting.append(ticket)
        try:
            handed = await ticket
        except asyncio.CancelledError:
            if ticket.done() and not ticket.cancelled():
                handed_over = ticket.result()
                if handed_over is not None:
                    self._release(handed_over)  # a connection given to us as we were cancelled: pass it on
                else:
                    self._wake(None)  # so is a free slot
            raise
        if handed is None:  # a slot freed up: open a connection of our own
            return await self._connect(loop)
        return handed

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        self.open += 1
        try:
            _, conn = await loop.create_connection(_Connection, self.host, self.port, ssl=self.ssl)
        except BaseException:
            self.open -= 1
            self._wake(None)
            raise
        return conn

    def _wake(self, conn: _Connection | None) -> bool:
        while self.waiting:
            ticket = self.waiting.popleft()
            if not ticket.done():
                ticket.set_result(conn)
                return True
        return False

    def _release(self, conn: _Connection) -> None:
        if conn.closed or not conn.keep_alive or self.closed:
            self._drop(conn)
            return
        if not self._wake(conn):
            self.idle.append(conn)

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        self.open -= 1
        if self.open < self.limit and not self.closed:
            self._wake(None)

    def close(self) -> None:
        self.closed = True
        while self.idle:
            self.idle.pop().close()
        while self.waiting:
            ticket = self.waiting.popleft()
            if not ticket.done():
                ticket.set_exception(PoolClosed("the pool is closed"))
