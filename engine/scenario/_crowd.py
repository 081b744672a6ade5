"""Generators: compact, seeded crowds of buyers (docs/scenarios.md, "generators").

A crowd is ``users`` buyers of one SKU (or a weighted mix) who arrive in a
pattern over a window — ``burst`` (crowding the opening instant),
``uniform`` or ``poisson`` — click one or more times (duplicate clicks, with
or without an idempotency key), come from one address or a pool, retry
retryable answers with back-off, and pay or cancel a share of what they
reserve.

Expansion draws from ``random.Random(seed)`` only, in a fixed order per
buyer (arrival, SKU, quantity, address, follow-up, clicks), and names buyers
``<prefix><n>``: the same file gives the same events on every machine. No
``hash()`` of strings, no set iteration, and only IEEE arithmetic, which is
the same everywhere — except ``poisson`` gaps, which need a logarithm
(``Random.expovariate``); they are rounded to the microsecond, so a last-bit
difference between two platforms' ``log`` would have to fall on a rounding
boundary to show.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ._events import US, FollowUp, Place, RetryPolicy, TrafficEvent, show

PATTERNS = ("burst", "uniform", "poisson")
KEYS = ("none", "per_user", "per_click")
RETRYABLE = ("rate_limited", "overloaded", "unavailable")
MAX_USERS = 10_000_000
MAX_CLICKS = 10_000


@dataclass(frozen=True, slots=True)
class Crowd:
    """One generator, checked; :meth:`expand` turns it into events."""

    name: str
    seed: int
    users: int
    prefix: str
    skus: tuple[tuple[str, float], ...]
    qty: tuple[int, int]
    pattern: Literal["burst", "uniform", "poisson"]
    start_us: int
    duration: float
    clicks: int
    click_gap: float
    keys: Literal["none", "per_user", "per_click"]
    ip: str | None
    ips: int
    retry: RetryPolicy | None
    pay: tuple[float, int] | None
    cancel: tuple[float, int] | None
    room: bool = False
    """Join the waiting room first: each buyer joins at arrival, polls, and clicks once admitted."""

    def expand(self) -> list[TrafficEvent]:
        """Every click of every buyer, in buyer order (the caller sorts by time, stably)."""
        rng = random.Random(self.seed)
        names = [s for s, _ in self.skus]
        weights = [w for _, w in self.skus]
        lo, hi = self.qty
        span = self.duration * US
        rate = self.users / self.duration if self.duration > 0 else 0.0
        clock = float(self.start_us)
        events: list[TrafficEvent] = []
        for n in range(1, self.users + 1):
            if self.pattern == "poisson" and rate:
                clock += rng.expovariate(rate) * US
                at = round(clock)
            elif self.pattern == "burst":
                u = rng.random()
                u2 = u * u  # products, not u ** 4: pow() comes from the platform's libm, * is IEEE everywhere
                at = self.start_us + round(span * (u2 * u2))
            else:
                at = self.start_us + round(span * rng.random())
            sku = names[0] if len(names) == 1 else rng.choices(names, weights)[0]
            qty = lo if lo == hi else rng.randint(lo, hi)
            ip = self.ip
            if self.ips:
                i = rng.randrange(self.ips)
                ip = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
            then: FollowUp | None = None
            if self.pay is not None or self.cancel is not None:
                draw = rng.random()
                pay_share = self.pay[0] if self.pay else 0.0
                if self.pay is not None and draw < pay_share:
                    then = FollowUp("pay", self.pay[1])
                elif self.cancel is not None and draw < pay_share + self.cancel[0]:
                    then = FollowUp("cancel", self.cancel[1])
            user = f"{self.prefix}{n}"
            for click in range(self.clicks):
                if click:
                    at += max(1, round(self.click_gap * US * rng.random()))
                key = None if self.keys == "none" else f"{user}:{0 if self.keys == 'per_user' else click}"
                if self.room and not click:
                    events.append(TrafficEvent(at, "join", user, source=self.name))
                # In a room crowd each click waits for the buyer's admission (``room`` = 1: held until then).
                events.append(
                    TrafficEvent(
                        at, "purchase", user, sku, qty, key, ip, None, self.name, self.retry, then, room=int(self.room)
                    )
                )
        return events


def read_generators(raw: Any, where: Place, skus: frozenset[str], max_qty: int) -> tuple[Crowd, ...]:
    if not isinstance(raw, list):
        raise where.fail(f"must be a list of crowds, got {show(raw)}")
    crowds = tuple(_crowd(g, where.at(i), skus, max_qty) for i, g in enumerate(raw))
    names = [c.name for c in crowds]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise where.at(i).at("name").fail(f"{name!r} is the name of an earlier generator")
    return crowds


_FIELDS = {
    "name",
    "seed",
    "users",
    "user_prefix",
    "sku",
    "skus",
    "qty",
    "arrival",
    "clicks",
    "click_gap",
    "keys",
    "ip",
    "ips",
    "retry",
    "pay",
    "cancel",
    "room",
}


def _crowd(raw: Any, where: Place, skus: frozenset[str], max_qty: int) -> Crowd:
    t = where.table(raw, _FIELDS, ("name", "seed", "users", "arrival"))
    name = where.at("name").text(t["name"])
    assert name is not None
    seed = t["seed"]
    if type(seed) is not int:
        raise where.at("seed").fail(f"must be a whole number, got {show(seed)}")
    users = where.at("users").whole(t["users"])
    if users > MAX_USERS:
        raise where.at("users").fail(f"must be at most {MAX_USERS:,}, got {users:,}")
    if ("sku" in t) == ("skus" in t):
        raise where.fail("needs exactly one of 'sku' (one SKU) or 'skus' (a weighted mix)")
    mix: tuple[tuple[str, float], ...]
    if "sku" in t:
        mix = ((_sku(where.at("sku"), t["sku"], skus), 1.0),)
    else:
        table = where.at("skus").table(t["skus"], set(skus))
        if not table:
            raise where.at("skus").fail("needs at least one sku: weight")
        mix = tuple((k, where.at("skus").at(k).number(v, positive=True)) for k, v in table.items())
    qty = _qty(where.at("qty"), t.get("qty", 1))
    if qty[1] > max_qty:
        raise where.at("qty").fail(f"must be at most limits.max_qty ({max_qty}), got {qty[1]}")
    arrival = where.at("arrival").table(t["arrival"], {"pattern", "start", "duration"}, ("pattern", "duration"))
    pattern = arrival["pattern"]
    if pattern not in PATTERNS:
        raise where.at("arrival").at("pattern").fail(f"must be one of {', '.join(PATTERNS)}, got {show(pattern)}")
    duration = where.at("arrival").at("duration").number(arrival["duration"])
    start_us = where.at("arrival").at("start").seconds(arrival.get("start", 0))
    clicks = where.at("clicks").whole(t.get("clicks", 1))
    if clicks > MAX_CLICKS:
        raise where.at("clicks").fail(f"must be at most {MAX_CLICKS}, got {clicks}")
    keys = t.get("keys", "none")
    if keys not in KEYS:
        raise where.at("keys").fail(f"must be one of {', '.join(KEYS)}, got {show(keys)}")
    if "ip" in t and "ips" in t:
        raise where.fail("give 'ip' (one address for everyone) or 'ips' (a pool size), not both")
    ips = where.at("ips").whole(t["ips"]) if "ips" in t else 0
    if ips > 1 << 24:
        raise where.at("ips").fail(f"must be at most {1 << 24}, got {ips}")
    pay = _follow(where.at("pay"), t.get("pay"))
    cancel = _follow(where.at("cancel"), t.get("cancel"))
    if pay and cancel and pay[0] + cancel[0] > 1:
        raise where.fail("pay.fraction + cancel.fraction must be at most 1")
    prefix = where.at("user_prefix").text(t.get("user_prefix", f"{name}-"))
    assert prefix is not None
    return Crowd(
        name=name,
        seed=seed,
        users=users,
        prefix=prefix,
        skus=mix,
        qty=qty,
        pattern=pattern,
        start_us=start_us,
        duration=duration,
        clicks=clicks,
        click_gap=where.at("click_gap").number(t.get("click_gap", 0.1)),
        keys=keys,
        ip=where.at("ip").text(t.get("ip"), optional=True),
        ips=ips,
        retry=_retry(where.at("retry"), t["retry"]) if "retry" in t else None,
        pay=pay,
        cancel=cancel,
        room=_room(where.at("room"), t.get("room", False)),
    )


def _room(where: Place, value: Any) -> bool:
    if type(value) is not bool:
        raise where.fail(f"must be true (join the waiting room first) or false, got {show(value)}")
    return value


def _sku(where: Place, value: Any, skus: frozenset[str]) -> str:
    sku = where.text(value)
    assert sku is not None
    if sku not in skus:
        raise where.fail(f"{sku!r} is not a sku of the config (skus: {', '.join(sorted(skus))})")
    return sku


def _qty(where: Place, value: Any) -> tuple[int, int]:
    if isinstance(value, list):
        if len(value) != 2:
            raise where.fail(f"must be a whole number or a range [low, high], got a list of {len(value)}")
        lo, hi = where.at(0).whole(value[0]), where.at(1).whole(value[1])
        if hi < lo:
            raise where.fail(f"the range [{lo}, {hi}] is empty")
        return lo, hi
    n = where.whole(value)
    return n, n


def _retry(where: Place, raw: Any) -> RetryPolicy:
    t = where.table(raw, {"max", "backoff", "factor", "on"}, ("max", "backoff"))
    on = t.get("on", list(RETRYABLE))
    if not isinstance(on, list) or not on or not all(r in RETRYABLE for r in on):
        raise where.at("on").fail(f"must be a non-empty list of {', '.join(RETRYABLE)}, got {show(on)}")
    return RetryPolicy(
        max=where.at("max").whole(t["max"]),
        backoff=where.at("backoff").number(t["backoff"], positive=True),
        factor=where.at("factor").number(t.get("factor", 2.0), positive=True),
        on=frozenset(on),
    )


def _follow(where: Place, raw: Mapping[str, Any] | None) -> tuple[float, int] | None:
    if raw is None:
        return None
    t = where.table(raw, {"fraction", "after"}, ("fraction", "after"))
    return where.at("fraction").fraction(t["fraction"]), where.at("after").seconds(t["after"])
