"""Answers sent together at the end of a loop pass, instead of one ``send`` the moment each is ready.

uvloop sends a write at once when the connection's buffer is empty, so every
answer is a ``send`` of its own, spaced by the work of the next handler.
Under load one pass of the loop finishes many answers, and each ``send``
that finds its client asleep wakes it. On loopback (a proxy or a load
balancer on the same host, which is how a sale is usually fronted) the
sender pays that wake-up: it is the largest part of the kernel's share of an
answer once the server is the busier side. Held until the pass ends and then
sent back to back, one pass's answers wake a client once.

:class:`BatchedTransport` wraps each connection's transport (the server's
:class:`._server.JsonRequestHandler` installs it); :class:`WriteBatch` sends
what every connection holds with one ``call_soon`` per pass. What a
connection holds is bounded (:data:`MAX_HELD`; beyond it, it is sent at
once), and everything that depends on what was written (closing, the end of
the stream, the socket itself, the buffer's size or limits) sends it first.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ._trouble import TROUBLE

MAX_HELD = 64 * 1024
"""Bytes one connection may hold until the pass ends; a larger write is sent at once (with what was held)."""


class WriteBatch:
    """The connections holding writes in this loop pass, sent when the loop next runs its callbacks."""

    __slots__ = ("_holding", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._holding: list[BatchedTransport] = []
        self._scheduled = False

    def hold(self, transport: BatchedTransport) -> None:
        """``transport`` holds writes now: send them with the others once this pass ends."""
        self._holding.append(transport)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.send)

    def send(self) -> None:
        """Send everything held, connection by connection, in the order they first wrote.

        A connection whose transport refuses the bytes is cut (its stream would
        have a hole) and counted; the others are still sent.
        """
        self._scheduled = False
        holding, self._holding = self._holding, []
        for transport in holding:
            try:
                transport.flush()
            except Exception as exc:  # one connection's failure must not hold the others' answers
                TROUBLE.note("held answer not sent", logging.WARNING, error=repr(exc))
                transport.abort()


class BatchedTransport(asyncio.Transport):
    """A connection's transport whose writes wait for the end of the loop pass (see the module)."""

    __slots__ = ("_batch", "_held", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, batch: WriteBatch) -> None:
        super().__init__()
        self._transport = transport
        self._batch = batch
        self._held: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        size = len(data)
        if not size:
            return
        if self._size + size > MAX_HELD:
            self.flush()
            self._transport.write(data)
            return
        if not self._held:
            self._batch.hold(self)
        self._held.append(bytes(data))
        self._size += size

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Send what is held now (nothing, once the connection is closing: its peer will not read it)."""
        if not self._held:
            return
        held = self._held
        self._held, self._size = [], 0
        if not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held, self._size = [], 0
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def get_write_buffer_size(self) -> int:
        self.flush()
        return self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.flush()
        self._transport.set_write_buffer_limits(high, low)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":  # whoever takes the socket may write to it, or hand it on: what was written goes first
            self.flush()
        return self._transport.get_extra_info(name, default)

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.flush()
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()
