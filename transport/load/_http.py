"""One process's HTTP side: requests over the buyers' pool (``_pool``), timed and counted per phase.

Every request goes through :meth:`Http.call`, which counts it against the
process's request budget, stamps it, and records its answer in
:class:`~._stats.Stats` under its phase, its latency measured from the time
the request was *due* (the schedule's time, not the time it left), so a
server that stalls shows as latency, never as fewer requests. A request
without an answer (connection refused or reset, timeout) is recorded as
``lost``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from ._pool import Pool
from ._stats import Stats

MAX_STATUS_KEYS = 64  # distinct "<status> <code>" keys per phase before codes are folded into the status


class BudgetSpent(Exception):
    """The process has sent every request it may send (``--max-requests``)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back: ``status`` 0 when nothing did."""

    status: int
    data: Mapping[str, Any]
    retry_after: float | None = None
    at: float = 0.0  # seconds since the run's start

    @property
    def code(self) -> str:
        """The answer's ``result`` or ``error`` code, or an order's ``status`` (``""`` when it has none)."""
        value = self.data.get("result") or self.data.get("error") or self.data.get("status") or ""
        return value if isinstance(value, str) else ""


LOST = Answer(0, {})


class Http:
    """Requests to one base URL over one pool; answers recorded in ``stats``."""

    def __init__(
        self, base: str, pool: Pool, session: aiohttp.ClientSession, stats: Stats, *, t0: float, budget: int
    ) -> None:
        self.base = base
        self.pool = pool
        self.session = session  # for the streams (ticket events)
        self.stats = stats
        self.t0 = t0  # perf_counter() at the run's start
        self.budget = budget

    def now(self) -> float:
        return time.perf_counter() - self.t0

    async def call(
        self,
        phase: str,
        method: str,
        path: str,
        due: float,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Answer:
        """Send one request due at ``due`` (run seconds) and record its answer."""
        if self.budget <= 0:
            raise BudgetSpent
        self.budget -= 1
        stats = self.stats
        stats.sent(self.now())
        try:
            status, raw, retry_after = await self.pool.request(self.pool.encode(method, path, body, headers, params))
        except (TimeoutError, OSError, ValueError) as exc:
            at = self.now()
            stats.answered(phase, "lost", due, at)
            stats.lost(f"{phase} {method} {path}: {str(exc) or type(exc).__name__}")
            return Answer(0, {}, None, at)
        at = self.now()
        try:
            data = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        answer = Answer(status, data, _seconds(retry_after), at)
        key = f"{status} {answer.code}".rstrip()
        counted = stats.phase(phase).status
        if key not in counted and len(counted) >= MAX_STATUS_KEYS:
            key = str(status)
        stats.answered(phase, key, due, at)
        return answer


def _seconds(value: bytes | None) -> float | None:
    """A ``Retry-After`` in seconds (the HTTP-date form is not used by flashsale and is ignored)."""
    if value is None:
        return None
    try:
        s = float(value)
    except ValueError:
        return None
    return s if 0 <= s < 3600 else None
