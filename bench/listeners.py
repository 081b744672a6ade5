"""Many Server-Sent Event listeners in their own process: the client of bench/feed.py and bench/room.py.

Runs on uvloop, one ``asyncio.Protocol`` per connection and no HTTP parser:
a listener only looks for a marker (``b"event: sku"``, ``b'"state":"closed"'``)
in the bytes as they arrive, so the client costs about one ``recv`` per
listener per event. It runs apart from the benchmark's driver so that what it
costs is its own process's CPU, reported with every answer.

Driven over stdin/stdout, one JSON object per line each way::

    {"cmd": "open", "port": P, "paths": [...], "ready": "event: sku"}
        -> {"open": n, "seconds": s}    every listener has read ``ready``
    {"cmd": "arm", "marker": "event: sku"}
        -> {"armed": true}              from now on, note when each listener reads ``marker``
    {"cmd": "collect", "t0": T, "wait": S}
        -> {"delays": [...], "missing": m, "cpu": c}
                                        seconds from ``T`` (``time.monotonic()``, shared by
                                        the processes of one machine) to each listener's read
    {"cmd": "gaps"} -> {"gaps": [...]}  per open listener, the longest time between two reads of
                                        the marker since the last "gaps" (which starts them again)
    {"cmd": "cpu"} -> {"cpu": c, "open": n} this process's CPU seconds so far, listeners still open
    {"cmd": "close"} -> {"closed": n}  and the process ends
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import uvloop


class Listener(asyncio.Protocol):
    """One feed: sends its request, then watches the bytes for the marker."""

    __slots__ = ("closed", "gap", "last", "marker", "read", "request", "seen", "tail", "transport", "waiter")

    def __init__(self, request: bytes, marker: bytes, waiter: asyncio.Future[None]) -> None:
        self.request = request
        self.marker = marker
        self.tail = b""
        self.seen = 0.0  # when the marker was read (monotonic), 0 while not yet
        self.waiter: asyncio.Future[None] | None = waiter
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.read = 0
        self.last = 0.0  # when the marker was last read
        self.gap = 0.0  # the longest time between two reads of the marker since the last "gaps"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.read += len(data)
        marker = self.marker
        if marker in data or marker in self.tail + data[: len(marker)]:
            now = time.monotonic()
            if self.last and now - self.last > self.gap:
                self.gap = now - self.last
            self.last = now
            if not self.seen:
                self.seen = now
                if self.waiter is not None and not self.waiter.done():
                    self.waiter.set_result(None)
        self.tail = data[-len(marker) :]

    def arm(self, marker: bytes, waiter: asyncio.Future[None] | None) -> None:
        self.marker, self.tail, self.seen, self.waiter = marker, b"", 0.0, waiter

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class Client:
    def __init__(self) -> None:
        self.listeners: list[Listener] = []
        self.loop = asyncio.get_running_loop()

    async def open(self, port: int, paths: list[str], ready: str, concurrency: int = 500) -> dict[str, Any]:
        began = time.monotonic()
        gate = asyncio.Semaphore(concurrency)

        async def one(path: str) -> None:
            async with gate:
                waiter = self.loop.create_future()
                request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
                _, listener = await self.loop.create_connection(
                    lambda: Listener(request, ready.encode(), waiter), "127.0.0.1", port
                )
                self.listeners.append(listener)
                await asyncio.wait_for(waiter, 30)
                if listener.closed:
                    raise RuntimeError(f"the server closed {path} before its first event (listener bound?)")

        await asyncio.gather(*(one(p) for p in paths))
        return {"open": len(self.listeners), "seconds": time.monotonic() - began}

    def arm(self, marker: str) -> dict[str, Any]:
        for listener in self.listeners:
            listener.arm(marker.encode(), None if listener.closed else self.loop.create_future())
        return {"armed": True}

    async def collect(self, t0: float, wait: float) -> dict[str, Any]:
        cpu = time.process_time()
        waiters = [x.waiter for x in self.listeners if x.waiter is not None and not x.waiter.done()]
        if waiters:
            await asyncio.wait(waiters, timeout=wait)
        delays = [x.seen - t0 for x in self.listeners if x.seen]
        return {"delays": delays, "missing": len(self.listeners) - len(delays), "cpu": time.process_time() - cpu}

    def gaps(self) -> dict[str, Any]:
        """Per listener, the longest time between two events since the last call (then starts again)."""
        gaps = [x.gap for x in self.listeners if not x.closed]
        for x in self.listeners:
            x.gap, x.last = 0.0, 0.0
        return {"gaps": gaps}

    def cpu(self) -> dict[str, Any]:
        return {"cpu": time.process_time(), "open": sum(1 for x in self.listeners if not x.closed)}

    def close(self) -> dict[str, Any]:
        n = 0
        for listener in self.listeners:
            if listener.transport is not None and not listener.closed:
                listener.transport.close()
                n += 1
        return {"closed": n}


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)  # the paths of every listener come in one line
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    client = Client()
    while line := await reader.readline():
        cmd = json.loads(line)
        match cmd["cmd"]:
            case "open":
                answer = await client.open(cmd["port"], cmd["paths"], cmd["ready"])
            case "arm":
                answer = client.arm(cmd["marker"])
            case "collect":
                answer = await client.collect(cmd["t0"], cmd["wait"])
            case "cpu":
                answer = client.cpu()
            case "gaps":
                answer = client.gaps()
            case "close":
                print(json.dumps(client.close()), flush=True)
                await asyncio.sleep(0.2)  # let the closes reach the server
                return
            case other:
                answer = {"error": f"unknown command {other!r}"}
        print(json.dumps(answer), flush=True)


class Fleet:
    """The driver's side: a listener process, spoken to one line at a time."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the listener process ended (exit code {self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            self.ask(cmd="close")
            self.proc.wait(30)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.close()
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(serve())


if __name__ == "__main__":
    main()
