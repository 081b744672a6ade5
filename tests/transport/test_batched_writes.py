"""Answers held until the loop pass ends, then sent together: order kept, nothing lost, nothing held without bound."""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from flashsale.transport._batched_writes import MAX_HELD, BatchedTransport, WriteBatch
from flashsale.transport._trouble import TROUBLE

WAIT = 10.0  # seconds a blocking read may take before the test fails (never reached when it passes)


class _Held(asyncio.Protocol):
    """The server's side of a connection: it only keeps its transport."""

    def __init__(self, made: asyncio.Queue[asyncio.Transport]) -> None:
        self._made = made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._made.put_nowait(transport)  # type: ignore[arg-type]


@dataclass
class Pair:
    server: BatchedTransport
    client: socket.socket


@pytest.fixture
async def pairs() -> AsyncIterator[tuple[WriteBatch, list[Pair]]]:
    """Two connections to a real asyncio server, each server-side transport batched by one :class:`WriteBatch`."""
    loop = asyncio.get_running_loop()
    made: asyncio.Queue[asyncio.Transport] = asyncio.Queue()
    server = await loop.create_server(lambda: _Held(made), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    batch = WriteBatch(loop)
    found: list[Pair] = []
    for _ in range(2):
        client = socket.create_connection(("127.0.0.1", port))
        client.settimeout(WAIT)
        found.append(Pair(BatchedTransport(await asyncio.wait_for(made.get(), WAIT), batch), client))
    yield batch, found
    for pair in found:
        pair.server.abort()
        pair.client.close()
    server.close()
    await server.wait_closed()


async def _pass_ends() -> None:
    """Return once the loop has run every callback scheduled so far (the batch's send among them)."""
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(done.set_result, None)
    await done


def _nothing_yet(client: socket.socket) -> bool:
    """Nothing has arrived for ``client`` (asked without waiting)."""
    readable, _, _ = select.select([client], [], [], 0)
    return not readable


def _read(client: socket.socket, n: int) -> bytes:
    got = b""
    while len(got) < n:
        chunk = client.recv(n - len(got))
        if not chunk:
            break
        got += chunk
    return got


async def test_writes_wait_for_the_pass_to_end_then_leave_in_order(pairs: tuple[WriteBatch, list[Pair]]) -> None:
    _, (a, b) = pairs
    a.server.write(b"one ")
    b.server.write(b"other")
    a.server.writelines([b"two ", bytearray(b"three ")])
    a.server.write(memoryview(b"four"))
    assert _nothing_yet(a.client)
    assert _nothing_yet(b.client)
    await _pass_ends()
    assert _read(a.client, 18) == b"one two three four"
    assert _read(b.client, 5) == b"other"


async def test_a_large_write_goes_at_once_after_what_was_held(pairs: tuple[WriteBatch, list[Pair]]) -> None:
    _, (a, _) = pairs
    a.server.write(b"head:")
    a.server.write(b"x" * MAX_HELD)  # over the bound: no connection holds more than MAX_HELD bytes
    assert _read(a.client, 5 + MAX_HELD) == b"head:" + b"x" * MAX_HELD  # before the loop ran anything


async def test_closing_sends_what_was_held_and_abort_drops_it(pairs: tuple[WriteBatch, list[Pair]]) -> None:
    _, (a, b) = pairs
    a.server.write(b"last answer")
    a.server.close()
    b.server.write(b"never sent")
    b.server.abort()
    await _pass_ends()
    assert _read(a.client, 64) == b"last answer"  # then the end of the stream
    assert _read(b.client, 64) == b""


async def test_whoever_takes_the_socket_or_asks_the_backlog_gets_what_was_held_sent_first(
    pairs: tuple[WriteBatch, list[Pair]],
) -> None:
    """The feed hands its socket to the writer process: the headers the server wrote must be out before."""
    _, (a, b) = pairs
    a.server.write(b"headers")
    assert a.server.get_extra_info("socket") is not None
    assert _read(a.client, 7) == b"headers"
    b.server.write(b"backlog")
    assert b.server.get_write_buffer_size() == 0  # sent, and taken by the kernel
    assert _read(b.client, 7) == b"backlog"
    a.server.write(b"limits")
    a.server.set_write_buffer_limits(high=0)
    assert _read(a.client, 6) == b"limits"
    a.server.write(b"eof")
    a.server.write_eof()
    assert _read(a.client, 64) == b"eof"


async def test_held_writes_to_a_connection_closed_meanwhile_are_dropped(pairs: tuple[WriteBatch, list[Pair]]) -> None:
    _, (a, b) = pairs
    a.server.write(b"for nobody")
    b.server.write(b"for b")
    a.server._transport.close()  # closed under the wrapper (the peer went away, say): nothing may be written after
    await _pass_ends()
    assert _read(b.client, 5) == b"for b"
    assert _read(a.client, 64) == b""


async def test_a_connection_whose_transport_refuses_is_cut_and_the_others_still_get_theirs(
    pairs: tuple[WriteBatch, list[Pair]],
) -> None:
    _, (a, b) = pairs
    broken = a.server._transport

    def refuse(data: object) -> None:
        raise RuntimeError("the transport refused")

    broken.write = refuse  # type: ignore[method-assign]  # a fault injected into this one connection
    before = TROUBLE.totals.get("held answer not sent", 0)
    a.server.write(b"lost")
    b.server.write(b"kept")
    await _pass_ends()
    assert _read(b.client, 4) == b"kept"
    assert TROUBLE.totals["held answer not sent"] == before + 1
    assert broken.is_closing()
    b.server.write(b" and the next pass too")
    await _pass_ends()
    assert _read(b.client, 22) == b" and the next pass too"
