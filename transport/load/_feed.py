"""Watching the stock feed (``GET /v1/events``, Server-Sent Events) to stop buying what is gone.

The feed's first events are one ``sku`` snapshot per SKU (the
``GET /v1/skus/{sku}`` JSON), then one event per change. Every event whose
data names a ``sku`` and a ``state`` updates :attr:`StockWatch.sold_out`:
a buyer whose SKU is ``sold_out`` or ``ended`` does not send its purchase (it
is counted as skipped, ``sold out (feed)``). A SKU that comes back (a
cancellation, a restock) is bought again.

``mode`` ``auto`` watches when the server has the feed and says so when it
has not (``404``); ``on`` makes a missing feed an error; ``off`` never asks.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

import aiohttp
import orjson

from . import _sse

FeedMode = Literal["auto", "on", "off"]
CONNECT_TIMEOUT_S = 10.0
GONE = frozenset({"sold_out", "ended"})


class FeedError(RuntimeError):
    """``--feed on`` and the server has no stock feed (or it failed)."""


class StockWatch:
    """The SKUs the feed says are gone, kept up to date by a task reading the stream."""

    def __init__(self, mode: FeedMode) -> None:
        self.mode = mode
        self.sold_out: set[str] = set()
        self.state = "off" if mode == "off" else "not started"
        self.events = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self, session: aiohttp.ClientSession, base: str) -> None:
        """Open the stream; return once it answered (or did not)."""
        if self.mode == "off":
            return
        connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._read(session, base, connected))
        try:
            await asyncio.wait_for(asyncio.shield(connected), CONNECT_TIMEOUT_S)
        except TimeoutError:
            self.state = f"no answer within {CONNECT_TIMEOUT_S:.0f} s"
        if self.mode == "on" and self.state != "watching":
            await self.stop()
            raise FeedError(f"--feed on: GET /v1/events: {self.state}")

    async def _read(self, session: aiohttp.ClientSession, base: str, connected: asyncio.Future[None]) -> None:
        no_deadline = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S)
        try:
            async with session.get(
                base + "/v1/events", timeout=no_deadline, headers={"Accept": "text/event-stream"}
            ) as resp:
                if resp.status != 200:
                    self.state = f"absent (GET /v1/events answered {resp.status})"
                    return
                self.state = "watching"
                connected.set_result(None)
                async for _, data in _sse.events(resp):
                    self._apply(data)
                self.state = "closed by the server"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            self.state = f"failed: {str(exc) or type(exc).__name__}"
        finally:
            if not connected.done():
                connected.set_result(None)

    def _apply(self, data: str) -> None:
        try:
            view = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(view, dict):
            return
        sku, state = view.get("sku"), view.get("state")
        if not isinstance(sku, str) or not isinstance(state, str):
            return
        self.events += 1
        if state in GONE:
            self.sold_out.add(sku)
        else:
            self.sold_out.discard(sku)

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
