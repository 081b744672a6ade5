"""The feed writer process: owns every feed socket after its snapshot and writes each event to all of them.

Started by :class:`flashsale.transport._fanout.Fanout` as
``python -I -S _fanout_proc.py CONTROL_FD MAX_BUFFER POLL``; standard
library only, so it starts in milliseconds and holds nothing of the server.
Writing one event to 10,000 sockets is 10,000 ``send`` calls, most of their
cost the kernel's; here they run under this process's own interpreter lock,
on whatever core is free, instead of on the server's event loop that decides
purchases.

The control socket (``AF_UNIX``, ``SOCK_SEQPACKET``: one message per packet)
carries, from the server:

- ``A`` id, kind, SKU, with the listener's socket attached (``SCM_RIGHTS``):
  a feed of every SKU (kind 0) or of one SKU (kind 1);
- ``D`` id, bytes: the start of a listener's stream (its snapshot, in pieces),
  sent whatever its size;
- ``E`` SKU, frame: the SKU's latest event, framed as an HTTP/1.1 chunk;
- ``P``: a keep-alive comment for every listener;
- ``R`` id: forget a listener the server ended (its socket is closed here);

and to the server ``G`` id, reason, buffered (a listener is gone: 0 the peer
closed or the socket failed, 1 it fell more than ``MAX_BUFFER`` bytes behind)
and ``W`` seconds, frames (the last round of writes). When the server's end
closes (it stopped, or died) this process closes every socket and exits.

Rounds: events that arrive while a round is written are coalesced (the
latest frame per SKU), and a feed of every SKU gets all of a round's changes
in one write. Between rounds this process waits :func:`pause_after` the
last one.
"""

from __future__ import annotations

import array
import contextlib
import os
import select
import signal
import socket
import struct
import sys
import time

SHARE = 0.1
"""The share of a core that writing events takes while the stock changes all the time (unless :data:`DEADLINE`
needs more)."""
DEADLINE = 0.8
"""Seconds within which a change reaches every listener: the server's poll, the wait for a round, the round."""

_HEAD = struct.Struct("!QB")  # listener id, kind
_GONE = struct.Struct("!cQBQ")  # b"G", id, reason, bytes it had pending
_ROUND = struct.Struct("!cdI")  # b"W", seconds, frames
_COMMENT = b": ping\n\n"
_PING = b"%x\r\n%b\r\n" % (len(_COMMENT), _COMMENT)  # the SSE comment as one HTTP/1.1 chunk
MAX_MESSAGE = 1 << 16
"""The longest control message: a SKU's event is a few hundred bytes."""
_FD_SPACE = socket.CMSG_SPACE(struct.calcsize("i"))
ALL, ONE = 0, 1
GONE, SLOW = 0, 1
_WATCH = select.EPOLLRDHUP
_FLUSH = select.EPOLLRDHUP | select.EPOLLOUT


def pause_after(spent: float, poll: float) -> float:
    """Seconds from the start of a round of writes that took ``spent`` to the start of the next, at the soonest.

    Writing one event to 10,000 sockets takes about 0.1 s of CPU, most of it
    the kernel's, and a sale's stock changes all the time; fewer rounds cost
    less. So the next round waits until writing has taken :data:`SHARE` of
    the time, but no longer than keeps a change within :data:`DEADLINE`: it
    may wait one server ``poll`` to be noticed, then this pause, then a round
    as long as the last. Under load listeners get fewer events, each the
    latest state, and every change in time.
    """
    return min(spent / SHARE, max(0.0, DEADLINE - poll - spent))


def _fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors passed with a message (``socket.recv_fds`` without its flags, which Python 3.11 ignores)."""
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return list(fds)


class _Listener:
    __slots__ = ("fd", "id", "pending", "since", "sku")

    def __init__(self, ident: int, fd: int, sku: str | None, since: int) -> None:
        self.id = ident
        self.fd = fd
        self.sku = sku
        self.since = since  # the last message before it: its snapshot is newer than any event up to there
        self.pending = b""


class Writer:
    """The state of the writer process: listeners by group, frames waiting for the next round."""

    def __init__(self, control: socket.socket, max_buffer: int, poll: float) -> None:
        self.control = control
        self.max_buffer = max_buffer
        self.poll = poll  # seconds between the server's looks at the stock
        self.poller = select.epoll()
        self.poller.register(control.fileno(), select.EPOLLIN)
        self.by_fd: dict[int, _Listener] = {}
        self.by_id: dict[int, _Listener] = {}
        self.every: dict[int, _Listener] = {}  # feeds of every SKU
        self.one: dict[str, dict[int, _Listener]] = {}  # feeds of one SKU
        self.dirty: dict[str, tuple[int, bytes]] = {}  # SKU -> its latest frame not yet written, and when it came
        self.seq = 0  # messages read so far
        self.ping = False
        self.next_round = 0.0

    def run(self) -> None:
        while True:
            wait = -1.0
            if self.dirty or self.ping:
                wait = max(0.0, self.next_round - time.monotonic())
            for fd, events in self.poller.poll(wait):
                if fd == self.control.fileno():
                    if not self.read_control():
                        return
                    continue
                listener = self.by_fd.get(fd)
                if listener is None:
                    continue
                if events & (select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR):
                    self.gone(listener, GONE)
                elif events & select.EPOLLOUT:
                    self.flush(listener)
            if (self.dirty or self.ping) and time.monotonic() >= self.next_round:
                self.round()

    def read_control(self) -> bool:
        """Take every message waiting on the control socket; ``False`` when the server's end closed."""
        while True:
            try:
                msg, ancillary, _flags, _addr = self.control.recvmsg(MAX_MESSAGE, _FD_SPACE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return True
            except OSError:
                return False
            fds = _fds(ancillary)
            if not msg:
                for fd in fds:
                    os.close(fd)
                return False
            kind = msg[:1]
            self.seq += 1
            if kind == b"A" and fds:
                ident, group = _HEAD.unpack_from(msg, 1)
                self.add(ident, fds[0], msg[1 + _HEAD.size :].decode() if group == ONE else None)
            elif kind == b"D":
                listener = self.by_id.get(struct.unpack_from("!Q", msg, 1)[0])
                if listener is not None:
                    self.send(listener, msg[9:], limit=False)
            elif kind == b"E":
                (n,) = struct.unpack_from("!H", msg, 1)
                self.dirty[msg[3 : 3 + n].decode()] = (self.seq, msg[3 + n :])
            elif kind == b"P":
                self.ping = True
            elif kind == b"R":
                listener = self.by_id.get(struct.unpack_from("!Q", msg, 1)[0])
                if listener is not None:
                    self.forget(listener)
            else:
                for fd in fds:
                    os.close(fd)

    def add(self, ident: int, fd: int, sku: str | None) -> None:
        listener = _Listener(ident, fd, sku, self.seq)
        self.by_fd[fd] = listener
        self.by_id[ident] = listener
        (self.every if sku is None else self.one.setdefault(sku, {}))[ident] = listener
        self.poller.register(fd, _WATCH)

    def round(self) -> None:
        """Write every waiting frame (and the keep-alive comment) to the listeners that want it."""
        began = time.monotonic()
        dirty, self.dirty = self.dirty, {}
        ping, self.ping = self.ping, False
        tail = _PING if ping else b""
        if self.every and (dirty or ping):
            self.write_all(self.every, list(dirty.values()), tail)
        for sku, group in list(self.one.items()):
            frame = dirty.get(sku)
            if frame is not None or ping:
                self.write_all(group, [] if frame is None else [frame], tail)
        spent = time.monotonic() - began
        self.next_round = began + pause_after(spent, self.poll)
        self.tell(_ROUND.pack(b"W", spent, len(dirty)))

    def write_all(self, group: dict[int, _Listener], frames: list[tuple[int, bytes]], tail: bytes) -> None:
        """``frames`` then ``tail`` to every listener of ``group``; one that joined after a frame came skips it."""
        data = b"".join(frame for _, frame in frames) + tail
        oldest = min((seq for seq, _ in frames), default=self.seq)
        for listener in list(group.values()):
            if listener.since < oldest:
                self.send(listener, data)
            else:  # its snapshot is newer than these frames
                newer = b"".join(frame for seq, frame in frames if seq > listener.since) + tail
                if newer:
                    self.send(listener, newer)

    def send(self, listener: _Listener, data: bytes, *, limit: bool = True) -> None:
        if listener.pending:
            self.queue(listener, data, limit)
            return
        try:
            sent = os.write(listener.fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.gone(listener, GONE)
            return
        if sent < len(data):
            self.queue(listener, data[sent:], limit)

    def queue(self, listener: _Listener, data: bytes, limit: bool = True) -> None:
        """Keep what the socket did not take; beyond ``max_buffer`` bytes the listener is dropped.

        A snapshot (``limit`` false) is kept whatever its size; the first
        event that finds more than ``max_buffer`` bytes still waiting drops it.
        """
        had = len(listener.pending)
        if limit and had + len(data) > self.max_buffer:
            self.gone(listener, SLOW, had)
            return
        if not had:
            self.poller.modify(listener.fd, _FLUSH)
        listener.pending += data

    def flush(self, listener: _Listener) -> None:
        try:
            sent = os.write(listener.fd, listener.pending)
        except BlockingIOError:
            return
        except OSError:
            self.gone(listener, GONE)
            return
        listener.pending = listener.pending[sent:]
        if not listener.pending:
            self.poller.modify(listener.fd, _WATCH)

    def gone(self, listener: _Listener, reason: int, buffered: int = 0) -> None:
        self.forget(listener)
        self.tell(_GONE.pack(b"G", listener.id, reason, buffered))

    def forget(self, listener: _Listener) -> None:
        del self.by_fd[listener.fd]
        del self.by_id[listener.id]
        group = self.every if listener.sku is None else self.one.get(listener.sku, {})
        group.pop(listener.id, None)
        if listener.sku is not None and not group:
            self.one.pop(listener.sku, None)
        self.poller.unregister(listener.fd)
        os.close(listener.fd)

    def tell(self, message: bytes) -> None:
        """A message to the server; blocks while the server's end is full (it reads them on its loop)."""
        with contextlib.suppress(OSError):  # the server is gone: the next read of the control socket ends this process
            self.control.sendall(message)

    def close(self) -> None:
        for listener in list(self.by_id.values()):
            self.forget(listener)
        self.poller.close()
        self.control.close()


def main(argv: list[str]) -> int:
    # Ctrl-C or a signal to the server's process group: the server decides, and this process ends when it closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    control = socket.socket(fileno=int(argv[1]))
    writer = Writer(control, int(argv[2]), float(argv[3]))
    try:
        writer.run()
    finally:
        writer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
