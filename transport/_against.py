"""``flashsale replay FILE --against URL``: a scenario's traffic against a live server.

The traffic is sent in real time — each event at its ``at`` after the
start, as many in flight as it takes up to ``concurrency`` — with the
scenario's feedback: retries after retryable answers (after back-off), and
pays and cancels after reservations. Live timing decides who wins, so the
scenario's own expectations do not apply; what is checked is what holds
whatever the timing:

- ``no 5xx``: no answer was a server error, and every request got an answer;
- ``every 200 has its order``: each reserved order id is found with its
  buyer, SKU and quantity (``GET /v1/orders/{id}``);
- ``no oversell``: per SKU, ``reserved + paid <= stock`` and ``remaining +
  reserved + paid == stock`` (``GET /v1/skus/{sku}``), and the live orders
  this run made hold no more units than that;
- ``per-user limits``: no buyer holds more units of a SKU than its
  ``per_user_limit``.

Restock and expire events are skipped (the HTTP API has no restock; a
server delivers its own time) and counted as skipped. An event's ``ip`` goes
out as ``X-Forwarded-For``. Buyers are named as a gateway names them to a
server in ``[auth] mode = "trusted"``: ``user`` in the bodies, ``?user=`` on
order lookups.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from flashsale import Scenario, TrafficEvent

US = 1_000_000

_TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass
class AgainstReport:
    """What the server answered and which invariants held."""

    url: str
    scenario: str
    answers: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    failed_requests: list[str] = field(default_factory=list)
    server_errors: int = 0
    max_lag: float = 0.0
    wall_seconds: float = 0.0
    checks: dict[str, str] = field(default_factory=dict)  # invariant -> "" when it held, else why not

    @property
    def violations(self) -> list[str]:
        return [f"{name}: {why}" for name, why in self.checks.items() if why]

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "scenario": self.scenario,
            "answers": dict(sorted(self.answers.items())),
            "skipped": dict(self.skipped),
            "failed_requests": len(self.failed_requests),
            "server_errors": self.server_errors,
            "max_lag_seconds": round(self.max_lag, 6),
            "wall_seconds": round(self.wall_seconds, 6),
            "checks": {name: {"ok": not why, "detail": why} for name, why in self.checks.items()},
        }

    def summary(self) -> str:
        lines = [
            f"scenario   {self.scenario} against {self.url}",
            f"answers    {' · '.join(f'{k} {v:,}' for k, v in sorted(self.answers.items())) or '-'}",
        ]
        if self.skipped:
            lines.append(f"skipped    {' · '.join(f'{k} {v:,}' for k, v in self.skipped.items())}")
        lines.append(f"timing     {self.wall_seconds:.3f} s; at most {self.max_lag * 1000:.1f} ms behind the scenario")
        for name, why in self.checks.items():
            lines.append(f"{'VIOLATED' if why else 'ok':10} {name}{': ' + why if why else ''}")
        return "\n".join(lines)


class _Sender:
    def __init__(self, scenario: Scenario, url: str, session: aiohttp.ClientSession, concurrency: int) -> None:
        self.scenario = scenario
        self.url = url
        self.session = session
        self.slots = asyncio.Semaphore(concurrency)
        self.report = AgainstReport(url, scenario.name)
        self.tasks: set[asyncio.Task[None]] = set()
        self.orders: dict[str, tuple[str, str, int]] = {}  # order id -> (user, sku, qty) from 200 answers
        self.closed: set[str] = set()
        self.t0 = 0.0

    def spawn(self, at: float, event: TrafficEvent, attempt: int) -> None:
        task = asyncio.get_running_loop().create_task(self.send_at(at, event, attempt))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def send_at(self, at: float, event: TrafficEvent, attempt: int) -> None:
        loop = asyncio.get_running_loop()
        delay = self.t0 + at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # real time is the point here: the scenario says when
        async with self.slots:
            self.report.max_lag = max(self.report.max_lag, loop.time() - self.t0 - at)
            try:
                if event.op == "purchase":
                    await self.purchase(event, attempt)
                else:
                    await self.change(event)
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:  # no answer we can read
                self.report.failed_requests.append(f"{event.op} {event.user or event.order}: {_say(exc)}")

    async def purchase(self, e: TrafficEvent, attempt: int) -> None:
        headers = {}
        if e.key is not None:
            headers["Idempotency-Key"] = e.key
        if e.ip is not None:
            headers["X-Forwarded-For"] = e.ip
        body = {"sku": e.sku, "user": e.user, "qty": e.qty}
        async with self.session.post(f"{self.url}/v1/purchase", json=body, headers=headers) as resp:
            data = await resp.json(content_type=None)
            status = resp.status
        self.report.server_errors += status >= 500
        result = data.get("result") or data.get("error", "?")
        self.report.answers[f"{status} {result}"] += 1
        now = asyncio.get_running_loop().time() - self.t0
        if status == 200:
            order_id = data["order_id"]
            assert e.user is not None
            assert e.sku is not None
            self.orders[order_id] = (e.user, e.sku, e.qty)
            if e.then is not None:
                self.spawn(now + e.then.after_us / US, TrafficEvent(0, e.then.op, order=order_id, source=e.source), 0)
        elif e.retry is not None and attempt < e.retry.max and result in e.retry.on:
            self.spawn(now + e.retry.delay_us(attempt + 1, data.get("retry_after")) / US, e, attempt + 1)

    async def change(self, e: TrafficEvent) -> None:
        if e.op in ("restock", "expire"):
            self.report.skipped[e.op] += 1
            return
        order_id = e.order or next(
            (o for o, (u, s, _) in self.orders.items() if u == e.user and s == e.sku and o not in self.closed), None
        )
        buyer = e.user or self.orders.get(order_id or "", ("",))[0]
        if order_id is None or not buyer:
            self.report.answers[f"{e.op} no_reservation"] += 1
            return
        # As a gateway in trusted mode would: the buyer is named in the body.
        async with self.session.post(f"{self.url}/v1/orders/{order_id}/{e.op}", json={"user": buyer}) as resp:
            data = await resp.json(content_type=None)
            status = resp.status
        self.report.server_errors += status >= 500
        self.report.answers[f"{e.op} {status} {data.get('status') or data.get('error', '?')}"] += 1
        if status == 200:
            self.closed.add(order_id)

    async def run(self, events: list[TrafficEvent]) -> None:
        loop = asyncio.get_running_loop()
        self.t0 = loop.time()
        began = time.perf_counter()
        for e in events:
            delay = self.t0 + e.at / US - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.spawn(e.at / US, e, 0)
        while self.tasks:
            await asyncio.gather(*list(self.tasks))
        self.report.wall_seconds = time.perf_counter() - began

    async def get(self, path: str, params: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        async with self.slots, self.session.get(f"{self.url}{path}", params=params) as resp:
            return resp.status, await resp.json(content_type=None)

    async def check(self) -> None:
        report = self.report
        why = []
        if report.server_errors:
            why.append(f"{report.server_errors} answers were 5xx")
        if report.failed_requests:
            why.append(f"{len(report.failed_requests)} requests got no answer (first: {report.failed_requests[0]})")
        report.checks["no 5xx"] = "; ".join(why)

        found = await asyncio.gather(
            *(self.get(f"/v1/orders/{o}", {"user": u}) for o, (u, _, _) in self.orders.items())
        )
        missing = []
        held: Counter[tuple[str, str]] = Counter()
        for (order_id, (user, sku, qty)), (status, body) in zip(self.orders.items(), found, strict=True):
            if status != 200 or (body.get("user"), body.get("sku"), body.get("qty")) != (user, sku, qty):
                missing.append(order_id)
            elif body.get("status") in ("reserved", "paid"):
                held[(user, sku)] += qty
        report.checks["every 200 has its order"] = (
            f"{len(missing)} of {len(self.orders)} not found as answered (first: {missing[0]})" if missing else ""
        )

        oversold = []
        for s in self.scenario.config.skus:
            status, v = await self.get(f"/v1/skus/{s.id}")
            ours = sum(q for (_, sku), q in held.items() if sku == s.id)
            if status != 200:
                oversold.append(f"{s.id}: GET answered {status}")
            elif v["reserved"] + v["paid"] > v["stock"] or v["remaining"] + v["reserved"] + v["paid"] != v["stock"]:
                counters = ", ".join(f"{k} {v[k]}" for k in ("stock", "remaining", "reserved", "paid"))
                oversold.append(f"{s.id}: {counters}")
            elif ours > v["stock"]:
                oversold.append(f"{s.id}: this run holds {ours} units of a stock of {v['stock']}")
        report.checks["no oversell"] = "; ".join(oversold)

        limits = {s.id: s.per_user_limit for s in self.scenario.config.skus if s.per_user_limit is not None}
        over = [
            f"{u} holds {q} of {sku} (limit {limits[sku]})" for (u, sku), q in held.items() if q > limits.get(sku, q)
        ]
        report.checks["per-user limits"] = f"{len(over)} buyers over (first: {over[0]})" if over else ""


def _say(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__  # a TimeoutError has no message


async def run_against(scenario: Scenario, url: str, *, concurrency: int = 64) -> AgainstReport:
    """Send ``scenario``'s traffic to the server at ``url`` in real time; check the invariants."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=_TIMEOUT, connector=connector) as session:
        sender = _Sender(scenario, url.rstrip("/"), session, concurrency)
        await sender.run(scenario.traffic())
        try:
            await sender.check()
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            sender.report.checks["the server answers the checks"] = _say(exc)
    return sender.report
