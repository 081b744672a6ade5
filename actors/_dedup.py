"""The dedup actor: idempotency keys, the first check of :mod:`actors.rules`.

Only purchases that carry an ``Idempotency-Key`` pass through it; the rest
go straight to their SKU's owner, which checks window, per-user limit and
stock (:mod:`actors.rules`).

An ``Idempotency-Key`` is scoped to its user. The first request with a key
is remembered with its body (SKU and quantity) while it is in flight; a
duplicate that arrives meanwhile waits for the same answer instead of buying
again, and one with another body is refused ``idempotency_key_reused``.
Final answers are replayed until ``key_ttl`` after the first request, by
message time. Transient answers (``overloaded``, ``unavailable``) are not
remembered, so a retry with the same key tries again. The table is bounded:
when it is full of live keys, a new key is answered ``overloaded``. Keys are
never forgotten early to make room: a forgotten key would let a retry buy a
second time, which is worse than a fast 503.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, assert_never

from ._bridge import LoopBridge
from ._messages import DedupMessage, Outcome, Purchase, PurchaseBatch, Settled
from ._pipeline import Pipeline, Stage
from ._ports import Recovered

_TRANSIENT = frozenset({"overloaded", "unavailable"})


class _Keyed:
    """One idempotency key: the body it came with and its answer."""

    __slots__ = ("expires_at", "outcome", "qty", "sku", "waiters")

    def __init__(self, sku: str, qty: int, expires_at: int, outcome: Outcome | None = None) -> None:
        self.sku = sku
        self.qty = qty
        self.outcome = outcome
        self.waiters: list[Any] = []
        self.expires_at = expires_at


class DedupActor(Stage):
    """Answers repeated idempotency keys; sends first uses on to the SKU's owner."""

    def __init__(
        self,
        pipeline: Pipeline,
        bridge: LoopBridge,
        *,
        recovered: Recovered,
        key_ttl_us: int = 86_400_000_000,
        max_keys: int = 200_000,
    ) -> None:
        super().__init__(pipeline, bridge)
        self._ttl = key_ttl_us
        self._max_keys = max_keys
        self._keys: OrderedDict[tuple[str, str], _Keyed] = OrderedDict()
        for (user, key), order in sorted(recovered.keyed.items(), key=lambda kv: kv[1].created_at):
            self._keys[(user, key)] = _Keyed(
                order.sku,
                order.qty,
                order.created_at + key_ttl_us,
                Outcome("reserved", order.sku, order.qty, order.order_id, order.expires_at),
            )

    def handle(self, message: DedupMessage) -> None:
        match message:
            case PurchaseBatch(items):
                self._admit(items)
            case Settled(items):
                self._settle(items)
            case _:
                assert_never(message)

    def _admit(self, items: tuple[Purchase, ...]) -> None:
        replies: list[tuple[Any, Outcome]] = []
        onward: list[Purchase] = []
        if self._keys and items:
            self._expire(items[0].at)
        for p in items:
            if p.idempotency_key is not None:
                k = (p.user, p.idempotency_key)
                known = self._keys.get(k)
                if known is not None:
                    if known.sku != p.sku or known.qty != p.qty:
                        replies.append((p.reply, _reused(p, known)))
                    elif known.outcome is not None:
                        replies.append((p.reply, known.outcome))
                    else:
                        known.waiters.append(p.reply)
                    continue
                if len(self._keys) >= self._max_keys:
                    replies.append(
                        (p.reply, Outcome("overloaded", p.sku, p.qty, detail="too many idempotency keys in flight"))
                    )
                    continue
                self._keys[k] = _Keyed(p.sku, p.qty, p.at + self._ttl)
            onward.append(p)
        if onward:
            self._pipeline.to_inventory(onward)
        self._bridge.resolve(replies)

    def _settle(self, items: tuple[tuple[Purchase, Outcome], ...]) -> None:
        replies: list[tuple[Any, Outcome]] = []
        for p, outcome in items:
            if p.idempotency_key is None:
                continue
            k = (p.user, p.idempotency_key)
            entry = self._keys.get(k)
            if entry is None or entry.outcome is not None:
                continue
            replies.extend((w, outcome) for w in entry.waiters)
            entry.waiters.clear()
            if outcome.result in _TRANSIENT:
                del self._keys[k]
            else:
                entry.outcome = outcome
        self._bridge.resolve(replies)

    def _expire(self, at: int) -> None:
        """Forget settled keys whose replay window has passed."""
        keys = self._keys
        while keys:
            k, entry = next(iter(keys.items()))
            if entry.expires_at > at or entry.outcome is None:
                return
            del keys[k]


def _reused(p: Purchase, known: _Keyed) -> Outcome:
    return Outcome(
        "idempotency_key_reused",
        p.sku,
        p.qty,
        detail=(
            f"this Idempotency-Key was first used for sku={known.sku!r} qty={known.qty};"
            " use a new key for a different purchase"
        ),
    )
