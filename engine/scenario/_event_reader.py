"""One explicit traffic event of a scenario file, checked: :func:`read_event`.

Every field is checked against the event's ``op`` (a ``pay`` names an order
or a buyer and SKU, a ``limits`` names a scope, a ``join`` may name its
ticket), so a typo is an error naming its place, never a different event.
"""

from __future__ import annotations

import re
from typing import Any

from flashsale._validate import MAX_KEY_LEN, MAX_USER_LEN
from flashsale.config import SCOPES

from ._events import ADMIN_OPS, Place, TrafficEvent, show

OPS = ("purchase", "pay", "cancel", "restock", "expire", *ADMIN_OPS, "join", "poll", "room_tick")
ROOM_OPS = ("join", "poll", "room_tick")
"""Events only a sale with a waiting room has."""
TICKET_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
HEX_SEED = re.compile(r"[0-9a-f]{64}")

FIELDS: dict[str, frozenset[str]] = {
    "purchase": frozenset({"at", "op", "user", "sku", "qty", "key", "ip", "pass"}),
    "pay": frozenset({"at", "op", "user", "sku", "order"}),
    "cancel": frozenset({"at", "op", "user", "sku", "order"}),
    "restock": frozenset({"at", "op", "sku", "qty"}),
    "expire": frozenset({"at", "op"}),
    "pause": frozenset({"at", "op", "sku"}),
    "resume": frozenset({"at", "op", "sku"}),
    "end": frozenset({"at", "op", "sku"}),
    "limits": frozenset({"at", "op", "scope", "rate", "burst"}),
    "room_pause": frozenset({"at", "op"}),
    "room_resume": frozenset({"at", "op"}),
    "room_rate": frozenset({"at", "op", "rate"}),
    "join": frozenset({"at", "op", "user", "ticket"}),
    "poll": frozenset({"at", "op", "user", "ticket"}),
    "room_tick": frozenset({"at", "op", "seed"}),
}
"""The fields each ``op`` takes."""
EVENT_KEYS = frozenset().union(*FIELDS.values())
"""Every field an event may have."""


def read_event(raw: Any, where: Place, skus: frozenset[str], max_qty: int) -> TrafficEvent:
    """One explicit traffic event.

    Values the engine would refuse outright (a quantity over ``limits.max_qty``,
    a user of more than 128 characters) are errors here: a scenario is traffic
    the engine decides on, not bad input it turns away.
    """
    t = where.table(raw, EVENT_KEYS, ("at",))
    op = t.get("op", "purchase")
    if op not in OPS:
        raise where.at("op").fail(f"must be one of {', '.join(OPS)}, got {show(op)}")
    at = where.at("at").seconds(t["at"])
    allowed = FIELDS[op]
    extra = sorted(set(t) - allowed)
    if extra:
        raise where.at(extra[0]).fail(f"is not a field of a {op!r} event (its fields: {', '.join(sorted(allowed))})")

    def sku() -> str:
        if "sku" not in t:
            raise where.fail(f"a {op!r} event needs 'sku'")
        value = where.at("sku").text(t["sku"])
        assert value is not None
        if value not in skus:
            raise where.at("sku").fail(f"{value!r} is not a sku of the config (skus: {', '.join(sorted(skus))})")
        return value

    def user() -> str:
        if "user" not in t:
            raise where.fail(f"a {op!r} event needs 'user'")
        value = where.at("user").text(t["user"])
        assert value is not None
        if len(value) > MAX_USER_LEN:
            raise where.at("user").fail(f"must be at most {MAX_USER_LEN} characters, got {len(value)}")
        return value

    qty = where.at("qty").whole(t.get("qty", 1))
    if op == "purchase" and qty > max_qty:
        raise where.at("qty").fail(f"must be at most limits.max_qty ({max_qty}), got {qty}")
    key = where.at("key").text(t.get("key"), optional=True)
    if key is not None and len(key) > MAX_KEY_LEN:
        raise where.at("key").fail(f"must be at most {MAX_KEY_LEN} characters, got {len(key)}")
    if op == "purchase":
        if t.get("pass", True) is not True:
            raise where.at("pass").fail(
                f"must be true (the door let this purchase in with a pass), got {show(t['pass'])}"
            )
        return TrafficEvent(
            at,
            "purchase",
            user(),
            sku(),
            qty,
            key=key,
            ip=where.at("ip").text(t.get("ip"), optional=True),
            with_pass="pass" in t,
        )
    if op in ("pay", "cancel"):
        if "order" in t:
            if "sku" in t:
                raise where.fail("name either 'order' (and the acting 'user') or 'user' and 'sku', not both")
            acting = user() if "user" in t else None  # who pays or cancels: only the order's buyer can
            return TrafficEvent(at, op, acting, order=where.at("order").text(t["order"]))
        return TrafficEvent(at, op, user(), sku())
    if op == "restock":
        return TrafficEvent(at, "restock", sku=sku(), qty=qty)
    if op in ("pause", "resume", "end"):
        return TrafficEvent(at, op, sku=sku())
    if op == "limits":
        for k in ("scope", "rate", "burst"):
            if k not in t:
                raise where.fail(f"a 'limits' event needs 'scope', 'rate' and 'burst'; it has no {k!r}")
        if t["scope"] not in SCOPES:
            raise where.at("scope").fail(f"must be one of {', '.join(SCOPES)}, got {show(t['scope'])}")
        rate = where.at("rate").number(t["rate"], positive=True)
        return TrafficEvent(at, "limits", limits=(t["scope"], rate, where.at("burst").whole(t["burst"])))
    if op in ("room_pause", "room_resume"):
        return TrafficEvent(at, op)
    if op == "room_rate":
        if "rate" not in t:
            raise where.fail("a 'room_rate' event needs 'rate' (the room's new admit_rate)")
        return TrafficEvent(at, "room_rate", rate=where.at("rate").number(t["rate"], positive=True))
    if op in ("join", "poll"):
        ticket = t.get("ticket")
        if ticket is not None and (type(ticket) is not str or not TICKET_ID.fullmatch(ticket)):
            raise where.at("ticket").fail(f"must be 1 to 64 letters, digits, '_' or '-', got {show(ticket)}")
        return TrafficEvent(at, op, user(), ticket=ticket)
    if op == "room_tick":
        seed = t.get("seed")
        if seed is not None and (type(seed) is not str or not HEX_SEED.fullmatch(seed)):
            raise where.at("seed").fail(f"must be 64 lowercase hex digits (32 bytes), got {show(seed)}")
        return TrafficEvent(at, "room_tick", seed=seed)
    return TrafficEvent(at, "expire")
