"""Who writes the feeds' events: the writer process (transport/_fanout_proc.py), or the loop where it cannot run.

After a feed's headers and snapshot are written, :class:`Fanout` passes the
listener's socket to the writer process (``SCM_RIGHTS`` over a
``SOCK_SEQPACKET`` pair) and from then on only that process writes to it:
every event, the keep-alive comments, nothing else. The server's transport
keeps the connection's reading side (it sees the client go away) and writes
again only after the writer has let the socket go (:meth:`on_gone`) or has
stopped (:meth:`stop`), so the two never interleave bytes on one stream.
Each event costs the event loop one message to the writer, whatever the
number of listeners.

Messages the writer cannot take at once wait in an outbox, bounded at
:data:`MAX_OUTBOX`, flushed as the socket drains (a socket waiting there is
a duplicate descriptor, so a connection closed meanwhile cannot hand over
another one's number). Linux only (``epoll``, ``SOCK_SEQPACKET``); where
:func:`available` is false the feed writes on the loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import select
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import structlog

from . import _fanout_proc as proc

log = structlog.get_logger("flashsale.feed")

MAX_OUTBOX = 100_000
"""Control messages waiting for the writer; beyond it new feeds get 503 and events wait for the next poll."""
_SCRIPT = Path(proc.__file__).resolve()
_STOP_SECONDS = 5.0


def available() -> bool:
    """Whether this platform can run the writer process."""
    return hasattr(select, "epoll") and hasattr(socket, "SOCK_SEQPACKET") and hasattr(socket, "send_fds")


class Fanout:
    """One writer process, started on first use; ``on_gone(id, slow, buffered)`` hears each listener it let go."""

    def __init__(
        self, max_buffer: int, poll: float, on_gone: Callable[[int, bool, int], None], on_lost: Callable[[], None]
    ) -> None:
        self._max_buffer = max_buffer
        self._poll = poll
        self._on_gone = on_gone
        self._on_lost = on_lost
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._outbox: collections.deque[tuple[bytes, int | None]] = collections.deque()
        self._retired: list[asyncio.Task[int]] = []  # waits for writer processes that ended on their own
        self.last_round = 0.0
        """Seconds the writer's last round of writes took."""

    def _start(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(_SCRIPT), *map(str, (theirs.fileno(), self._max_buffer, self._poll))],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        asyncio.get_running_loop().add_reader(ours.fileno(), self._read)
        self._sock = ours
        return ours

    @property
    def pid(self) -> int | None:
        """The writer process, while it runs."""
        return None if self._proc is None else self._proc.pid

    def add(self, ident: int, transport: asyncio.Transport, sku: str | None, first: bytes) -> bool:
        """Hand over feed ``ident``'s socket (of ``sku``, or of every SKU), to be sent ``first``; ``False``: full."""
        sock = transport.get_extra_info("socket")
        if sock is None:
            return False
        head = proc._HEAD.pack(ident, proc.ALL if sku is None else proc.ONE)
        if not self._send(b"A" + head + (b"" if sku is None else sku.encode()), sock.fileno()):
            return False
        piece = proc.MAX_MESSAGE - 16
        for at in range(0, len(first), piece):
            self._send(b"D" + struct.pack("!Q", ident) + first[at : at + piece])
        return True

    def round(self, frames: dict[str, bytes]) -> bool:
        """Each SKU's latest event for its listeners; ``False``: not taken (send them again later)."""
        if len(self._outbox) + len(frames) > MAX_OUTBOX:
            return False
        for sku, frame in frames.items():
            name = sku.encode()
            if not self._send(b"E" + struct.pack("!H", len(name)) + name + frame):
                return False
        return True

    def ping(self) -> None:
        self._send(b"P")

    def remove(self, ident: int) -> None:
        """Forget feed ``ident`` (the server ended it)."""
        if self._sock is not None:
            self._send(b"R" + struct.pack("!Q", ident))

    def _send(self, message: bytes, fd: int | None = None) -> bool:
        if len(message) > proc.MAX_MESSAGE:
            log.error("feed event too long for the writer process; not sent", size=len(message))
            return True  # never taken: sending it again would not help
        sock = self._sock
        if sock is None:
            try:
                sock = self._start()
            except OSError as exc:
                log.error("feed writer process cannot start", error=str(exc))
                return False
        if not self._outbox:
            try:
                _deliver(sock, message, fd)
            except BlockingIOError:
                asyncio.get_running_loop().add_writer(sock.fileno(), self._flush)
            except OSError:
                return False  # the writer is gone: _read hears it and ends every feed
            else:
                return True
        if len(self._outbox) >= MAX_OUTBOX:
            return False
        self._outbox.append((message, None if fd is None else os.dup(fd)))
        return True

    def _flush(self) -> None:
        sock = self._sock
        assert sock is not None
        outbox = self._outbox
        while outbox:
            message, fd = outbox[0]
            try:
                _deliver(sock, message, fd)
            except BlockingIOError:
                return
            except OSError:
                break
            outbox.popleft()
            if fd is not None:
                os.close(fd)
        asyncio.get_running_loop().remove_writer(sock.fileno())

    def _read(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            try:
                message = sock.recv(64)
            except BlockingIOError:
                return
            except OSError:
                message = b""
            if not message:
                child, self._proc = self._proc, None
                log.error("feed writer process ended", exit_code=None if child is None else child.poll())
                self._drop_sock()
                if child is not None:  # reaped apart from the loop: it may take a moment to finish exiting
                    self._retired.append(asyncio.get_running_loop().create_task(asyncio.to_thread(child.wait)))
                self._on_lost()
                return
            if message[:1] == b"G":
                _, ident, reason, buffered = proc._GONE.unpack(message)
                self._on_gone(ident, reason == proc.SLOW, buffered)
            elif message[:1] == b"W":
                self.last_round = proc._ROUND.unpack(message)[1]

    def _drop_sock(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            loop = asyncio.get_running_loop()
            loop.remove_reader(sock.fileno())
            loop.remove_writer(sock.fileno())
            sock.close()
        while self._outbox:
            _, fd = self._outbox.popleft()
            if fd is not None:
                os.close(fd)

    async def stop(self) -> None:
        """Close the control socket and wait for the writer to exit: after this only the server writes to a feed."""
        self._drop_sock()
        retired, self._retired = self._retired, []
        for task in retired:
            await task
        child, self._proc = self._proc, None
        if child is None:
            return
        try:
            await asyncio.to_thread(child.wait, _STOP_SECONDS)
        except subprocess.TimeoutExpired:
            log.error("feed writer process did not stop; killing it", pid=child.pid)
            child.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(child.wait, _STOP_SECONDS)


def _deliver(sock: socket.socket, message: bytes, fd: int | None) -> None:
    """One control message, with the descriptor ``fd`` attached when there is one."""
    if fd is None:
        sock.send(message)
    else:
        socket.send_fds(sock, [message], [fd])


class LoopFanout:
    """The same calls as :class:`Fanout`, writing on the event loop: where the writer process cannot run.

    A round of writes refuses the next until the writer process would write
    it (:func:`_fanout_proc.pause_after`); the hub offers it again at its
    next poll.
    """

    def __init__(self, max_buffer: int, poll: float, on_gone: Callable[[int, bool, int], None]) -> None:
        self._max_buffer = max_buffer
        self._poll = poll
        self._on_gone = on_gone
        self._every: dict[int, asyncio.Transport] = {}
        self._one: dict[str, dict[int, asyncio.Transport]] = {}
        self._skus: dict[int, str | None] = {}
        self._next = 0.0
        self.last_round = 0.0

    def add(self, ident: int, transport: asyncio.Transport, sku: str | None, first: bytes) -> bool:
        transport.write(first)
        (self._every if sku is None else self._one.setdefault(sku, {}))[ident] = transport
        self._skus[ident] = sku
        return True

    def round(self, frames: dict[str, bytes]) -> bool:
        loop = asyncio.get_running_loop()
        began = loop.time()
        if began < self._next:
            return False
        self._write(self._every, b"".join(frames.values()))
        for sku, frame in frames.items():
            self._write(self._one.get(sku, {}), frame)
        self.last_round = loop.time() - began
        self._next = began + proc.pause_after(self.last_round, self._poll)
        return True

    def ping(self) -> None:
        for group in (self._every, *self._one.values()):
            self._write(group, proc._PING)

    def remove(self, ident: int) -> None:
        sku = self._skus.pop(ident, None)
        group = self._every if sku is None else self._one.get(sku, {})
        group.pop(ident, None)

    def _write(self, group: dict[int, asyncio.Transport], data: bytes) -> None:
        """Write ``data`` to every listener of ``group``; let go of the ones gone or too far behind."""
        limit = self._max_buffer
        gone: list[tuple[int, asyncio.Transport]] = []
        for ident, t in group.items():
            if t.is_closing() or t.get_write_buffer_size() > limit:
                gone.append((ident, t))
            else:
                t.write(data)
        for ident, t in gone:
            self.remove(ident)
            self._on_gone(ident, not t.is_closing(), t.get_write_buffer_size())

    async def stop(self) -> None:
        """Nothing runs apart from the loop."""
