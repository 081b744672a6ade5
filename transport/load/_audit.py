"""The sale's verdict, audited through the API once the crowd is done.

- ``no 5xx``: no answer was a server error and every request got an answer;
- ``every 200 has its order``: each order id a ``200`` gave is found by
  ``GET /v1/orders/{id}`` *as its buyer* (their credential, ``?user=`` in
  trusted mode) with that buyer, SKU and quantity; a ``200`` without an
  order id counts as a lost order too;
- ``no oversell``: per SKU (``GET /v1/skus/{sku}``), ``reserved + paid <=
  stock`` and ``remaining + reserved + paid == stock``, and the open orders
  this run holds are no more units than the stock;
- ``per-user limits``: no buyer holds more units of a SKU than its limit
  (the scenario's config, ``--per-user-limit``, or the SKU's own
  ``per_user_limit`` when the server shows it).

Each check also yields the figure its always-on threshold reads:
``lost_orders``, ``oversold`` (units over the stock, summed over SKUs; at
least 1 for a SKU whose counters do not add up) and ``over_limit``
(buyers over a limit). A server that does not answer the audit fails it
too (``audit.unanswered``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from ._identity import Identity

AUDIT_CONCURRENCY = 64
CHECKS = ("no 5xx", "every 200 has its order", "no oversell", "per-user limits")


@dataclass
class Verdict:
    checks: dict[str, str] = field(default_factory=dict)  # check -> "" when it held, else why not
    lost_orders: int = 0
    oversold: int = 0
    over_limit: int = 0
    orders_checked: int = 0
    orders_total: int = 0
    skus: dict[str, dict[str, Any]] = field(default_factory=dict)
    note: str = ""  # when only a sample of the orders was checked
    unanswered: int = 0  # 1 when the server did not answer the audit itself

    @property
    def violations(self) -> list[str]:
        return [f"{name}: {why}" for name, why in self.checks.items() if why]

    def as_dict(self) -> dict[str, Any]:
        return {
            "checks": {name: {"ok": not why, "detail": why} for name, why in self.checks.items()},
            "lost_orders": self.lost_orders,
            "oversold": self.oversold,
            "over_limit": self.over_limit,
            "orders_checked": self.orders_checked,
            "orders_total": self.orders_total,
            "skus": self.skus,
            "note": self.note,
            "audit_unanswered": self.unanswered,
        }


async def audit(
    base: str,
    identity: Identity,
    *,
    orders: Mapping[str, tuple[str, str, int]],
    bad_200: Sequence[str],
    bad_200_count: int,
    http_5xx: int,
    http_lost: int,
    first_lost: str | None,
    skus: Sequence[str],
    limits: Mapping[str, int],
    max_orders: int,
    request_timeout: float = 10.0,
) -> Verdict:
    """Check the invariants against the server at ``base``."""
    v = Verdict(orders_total=len(orders))
    why = []
    if http_5xx:
        why.append(f"{http_5xx} answers were 5xx")
    if http_lost:
        why.append(f"{http_lost} requests got no answer (first: {first_lost})")
    v.checks["no 5xx"] = "; ".join(why)
    try:
        await _check(
            v,
            base,
            identity,
            orders=orders,
            bad_200=bad_200,
            bad_200_count=bad_200_count,
            skus=skus,
            limits=limits,
            max_orders=max_orders,
            request_timeout=request_timeout,
        )
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        v.unanswered = 1
        v.checks["the server answers the checks"] = str(exc) or type(exc).__name__
    return v


async def _check(
    v: Verdict,
    base: str,
    identity: Identity,
    *,
    orders: Mapping[str, tuple[str, str, int]],
    bad_200: Sequence[str],
    bad_200_count: int,
    skus: Sequence[str],
    limits: Mapping[str, int],
    max_orders: int,
    request_timeout: float,
) -> None:
    slots = asyncio.Semaphore(AUDIT_CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=AUDIT_CONCURRENCY)
    deadline = aiohttp.ClientTimeout(total=request_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=deadline) as session:

        async def get(path: str, user: str | None) -> tuple[int, dict[str, Any]]:
            headers = identity.headers(user) if user is not None else {}
            params = identity.read_params(user) if user is not None else {}
            async with slots, session.get(base + path, headers=headers, params=params) as resp:
                raw = await resp.read()
                try:
                    data = orjson.loads(raw) if raw else {}
                except orjson.JSONDecodeError:
                    data = {}
                return resp.status, data if isinstance(data, dict) else {}

        items = sorted(orders.items())
        step = max(1, -(-len(items) // max_orders)) if max_orders > 0 else len(items) + 1
        sample = items[::step]
        v.orders_checked = len(sample)
        found = await asyncio.gather(*(get(f"/v1/orders/{o}", u) for o, (u, _, _) in sample))
        missing: list[str] = []
        held: Counter[tuple[str, str]] = Counter()
        for (order_id, (user, sku, qty)), (status, body) in zip(sample, found, strict=True):
            if status != 200:
                missing.append(f"{order_id} ({user}): GET answered {status}")
            elif (body.get("user"), body.get("sku"), body.get("qty")) != (user, sku, qty):
                missing.append(
                    f"{order_id}: stored for {body.get('user')!r} {body.get('sku')} x{body.get('qty')},"
                    f" answered to {user!r} {sku} x{qty}"
                )
            elif body.get("status") in ("reserved", "paid"):
                held[(user, sku)] += qty
        v.lost_orders = len(missing) + bad_200_count
        problems = []
        if missing:
            problems.append(f"{len(missing)} of {len(sample)} not found as answered (first: {missing[0]})")
        if bad_200_count:
            first = bad_200[0] if bad_200 else "?"
            problems.append(f"{bad_200_count} answers 200 without an order id (first: {first})")
        if step > 1:
            v.note = f"orders checked: {len(sample):,} of {len(items):,} (every {step}th; --audit-orders)"
        v.checks["every 200 has its order"] = "; ".join(problems)

        oversold = []
        per_sku_limit: dict[str, int] = dict(limits)
        for sku in sorted(set(skus) | {s for _, s, _ in orders.values()}):
            status, view = await get(f"/v1/skus/{sku}", None)
            ours = sum(q for (_, s), q in held.items() if s == sku)
            if status != 200:
                oversold.append(f"{sku}: GET /v1/skus answered {status}")
                v.oversold += 1
                continue
            v.skus[sku] = view
            if isinstance(view.get("per_user_limit"), int) and sku not in per_sku_limit:
                per_sku_limit[sku] = view["per_user_limit"]
            try:
                stock, remaining = int(view["stock"]), int(view["remaining"])
                reserved, paid = int(view["reserved"]), int(view["paid"])
            except (KeyError, TypeError, ValueError):
                oversold.append(f"{sku}: the SKU answer lacks stock/remaining/reserved/paid")
                v.oversold += 1
                continue
            over = max(reserved + paid - stock, ours - stock, 0)
            if remaining + reserved + paid != stock:
                over = max(over, 1)
            if over:
                v.oversold += over
                counters = f"stock {stock}, remaining {remaining}, reserved {reserved}, paid {paid}"
                oversold.append(f"{sku}: {counters}; this run holds {ours} units")
        v.checks["no oversell"] = "; ".join(oversold)

    beyond = [
        f"{u} holds {q} of {sku} (limit {per_sku_limit[sku]})"
        for (u, sku), q in sorted(held.items())
        if sku in per_sku_limit and q > per_sku_limit[sku]
    ]
    v.over_limit = len(beyond)
    v.checks["per-user limits"] = f"{len(beyond)} buyers over (first: {beyond[0]})" if beyond else ""
