"""What the dashboard shows, as one JSON object, and the sampler behind its sales chart.

:class:`SalesSampler` wakes once a second and records how many units were
sold since its last wake-up, summed over every SKU from the published views
(``stock - remaining``: a restock moves both, so it is not a sale; a
reservation that expires gives units back, counted as no sale rather than a
negative one). It keeps the last :data:`WINDOW` seconds in a ring. The
views are what every worker shares in redis mode, so the chart shows the
whole sale. Answers by result and in-flight purchases are this worker's.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from flashsale import SaleEngine

from ._handlers import ENGINE, METRICS
from ._render import sku_json

WINDOW = 300
"""Seconds of sales history the chart shows."""

INTERVAL = 1.0


class SalesSampler:
    """Units sold per :data:`INTERVAL`, over the last :data:`WINDOW` intervals (a bounded ring).

    With a waiting room it also keeps how many buyers the room admitted in
    the last interval (``admitted_per_second``).
    """

    __slots__ = ("_admitted", "_last", "admitted_per_second", "per_interval")

    def __init__(self) -> None:
        self.per_interval: deque[int] = deque(maxlen=WINDOW)
        self._last: int | None = None
        self._admitted: int | None = None
        self.admitted_per_second = 0.0

    def sample(self, engine: SaleEngine) -> None:
        """Record the units sold (and buyers admitted) since the previous sample."""
        sold = 0
        for sku in engine.config.skus:
            view = engine.view(sku.id)
            sold += view.stock - view.remaining
        if self._last is not None:
            self.per_interval.append(max(0, sold - self._last))
        self._last = sold
        room = engine.waiting_room
        if room is not None and room.running:
            admitted = room.board.room.admitted
            if self._admitted is not None:
                self.admitted_per_second = max(0, admitted - self._admitted) / INTERVAL
            self._admitted = admitted

    async def run(self, engine: SaleEngine, wait: Callable[[float], Any] = asyncio.sleep) -> None:
        """Sample every :data:`INTERVAL` seconds until cancelled."""
        while True:
            if engine.running:
                self.sample(engine)
            await wait(INTERVAL)


SAMPLER = web.AppKey("dashboard_sampler", SalesSampler)


async def run_sampler(app: web.Application) -> AsyncIterator[None]:
    """A ``cleanup_ctx``: the sampler runs while the app does."""
    task = asyncio.get_running_loop().create_task(app[SAMPLER].run(app[ENGINE]))
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _backlog(engine: SaleEngine) -> dict[str, Any]:
    limit = engine.config.limits.max_writer_backlog
    sink = engine.sink_gauges
    if sink is not None:
        return {"name": "order sink pending", "value": sink.pending, "limit": limit}
    return {"name": "writer backlog", "value": engine.gauges.backlog, "limit": limit}


def _latency(app: web.Application) -> dict[str, Any]:
    """p50 and p99 of this worker's purchases (upper bounds of the duration histogram's buckets)."""
    latency = app[METRICS].purchase_latency()
    return {"p50": latency["p50"], "p99": latency["p99"], "count": int(latency["count"] or 0)}


def room_panel(app: web.Application) -> dict[str, Any] | None:
    """The waiting room as the dashboard shows it (``None`` without a running room).

    ``clear_seconds`` is how long the queue takes to clear at ``admit_rate``
    (``None`` while paused or not yet admitting, ``0`` when nobody waits).
    """
    engine = app[ENGINE]
    room = engine.waiting_room
    if room is None or not room.running:
        return None
    s = engine.room_status()
    if s.waiting == 0:
        clear: float | None = 0.0
    elif s.state == "admitting" and s.admit_rate > 0:
        clear = s.waiting / s.admit_rate
    else:
        clear = None
    return {
        "state": s.state,
        "paused": s.state == "paused",
        "admit_rate": s.admit_rate,
        "waiting": s.waiting,
        "admitted": s.admitted,
        "admitted_per_second": app[SAMPLER].admitted_per_second,
        "clear_seconds": clear,
    }


def _has_route(app: web.Application, path: str) -> bool:
    return any(r.get_info().get("path") == path for r in app.router.resources())


async def state_json(app: web.Application) -> dict[str, Any]:
    """The dashboard's view of the sale now."""
    engine = app[ENGINE]
    checks = engine.readiness()
    skus = [sku_json(await engine.sku_status(sku.id)) for sku in engine.config.skus]
    return {
        "skus": skus,
        "sales": {"interval": INTERVAL, "per_interval": list(app[SAMPLER].per_interval)},
        "answers": dict(sorted(app[METRICS].purchases.items())),
        "inflight": {"value": engine.inflight, "limit": engine.config.limits.max_inflight},
        "backlog": _backlog(engine),
        "readiness": {"ready": all(checks.values()), "checks": checks},
        "latency": _latency(app),
        "feed": _has_route(app, "/v1/events"),
        "room": room_panel(app),
    }
