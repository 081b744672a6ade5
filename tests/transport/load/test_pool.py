"""The buyers' keep-alive pool against real sockets: reuse, limits, deadlines, closed connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from flashsale.testing import free_port
from flashsale.transport.load._pool import Pool

from .conftest import ServeApp


async def test_connections_are_kept_alive_and_bounded(serve_app: ServeApp) -> None:
    """200 concurrent requests over a pool of 4 use 4 connections, each answered with its own body."""
    peers: set[object] = set()

    async def echo(request: web.Request) -> web.Response:
        peers.add(request.transport)
        return web.Response(body=await request.read(), headers={"Retry-After": "2"})

    app = web.Application()
    app.router.add_post("/echo", echo)
    url = await serve_app(app)
    pool = Pool(url, limit=4, timeout=10)
    answers = await asyncio.gather(
        *(pool.request(pool.encode("POST", "/echo", b"%d" % i, {"X-N": str(i)}, None)) for i in range(200))
    )
    pool.close()
    assert [body for _, body, _ in answers] == [b"%d" % i for i in range(200)]
    assert {(status, ra) for status, _, ra in answers} == {(200, b"2")}
    assert len(peers) == 4


async def test_a_request_past_its_deadline_fails_with_timeout(serve_app: ServeApp) -> None:
    """A server that never answers: TimeoutError after the pool's timeout, and the pool stays usable."""
    never = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/hang", hang)
    app.router.add_get("/ok", ok)
    url = await serve_app(app)
    pool = Pool(url, limit=1, timeout=0.2)
    with pytest.raises(TimeoutError):
        await pool.request(pool.encode("GET", "/hang", None, None, None))
    assert (await pool.request(pool.encode("GET", "/ok", None, None, {"user": "a b"})))[:2] == (200, b"ok")
    pool.close()
    never.set()


@pytest.fixture
async def closing_server() -> AsyncIterator[tuple[str, list[int]]]:
    """A raw HTTP/1.1 server that answers one request per connection, then closes it without saying so."""
    served: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        served.append(1)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    port = free_port()
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}", served
    server.close()
    await server.wait_closed()


async def test_a_connection_the_server_closed_is_replaced(closing_server: tuple[str, list[int]]) -> None:
    """After the server closed a kept-alive connection, the next requests still get their answers."""
    url, served = closing_server
    pool = Pool(url, limit=1, timeout=5)
    for _ in range(5):
        status, body, _ = await pool.request(pool.encode("GET", "/", None, None, None))
        assert (status, body) == (200, b"ok")
    pool.close()
    assert len(served) == 5


def test_header_values_with_line_breaks_are_refused() -> None:
    """A value that would split the request is an error, never sent."""
    pool = Pool("http://127.0.0.1:1", limit=1, timeout=1)
    with pytest.raises(ValueError, match="line break"):
        pool.encode("GET", "/", None, {"X-User-Id": "a\r\nX-Evil: 1"}, None)
