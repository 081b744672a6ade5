"""The dedup actor: idempotency keys, the first check of :mod:`actors.rules`.

Only purchases that carry an ``Idempotency-Key`` pass through it; the rest
go straight to their SKU's owner, which checks window, per-user limit and
stock (:mod:`actors.rules`).

An ``Idempotency-Key`` is scoped to its user. The first request with a key
is remembered with its body (SKU and quantity) while it is in flight; a
duplicate that arrives meanwhile waits for the same answer instead of buying
again, and one with another body is refused ``idempotency_key_reused``.
A key that reserved an order is replayed until the order is final (the
writer reports :class:`KeysFinal`) or ``key_ttl`` after the first request,
by message time, whichever comes first. Every other answer is forgotten once
given: a refused purchase's retry is decided again (it can only buy if units
came back), and transient answers (``overloaded``, ``unavailable``) are
retried anyway. The table (:class:`KeyTable`) is bounded per buyer, per
client address and in all, so that a client that floods keys is refused
alone (``rate_limited``) and never locks others out.
"""

from __future__ import annotations

from typing import Any, assert_never

from ._bridge import LoopBridge
from ._keys import BUYER, FULL, Keyed, KeyGauges, KeyTable
from ._messages import DedupMessage, KeysFinal, Outcome, Purchase, PurchaseBatch, Settled
from ._pipeline import Pipeline, Stage
from ._ports import Recovered

_REFUSED_KEY = {
    BUYER: "this buyer has too many purchases with an Idempotency-Key still open; pay or cancel them first",
    FULL: "too many purchases with an Idempotency-Key are open from this address",
}


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
        max_keys_per_buyer: int = 16,
        max_keys_per_ip: int = 1_000,
        key_gauges: KeyGauges | None = None,
    ) -> None:
        super().__init__(pipeline, bridge)
        self._ttl = key_ttl_us
        self._keys = KeyTable(max_keys, max_keys_per_buyer, max_keys_per_ip, key_gauges)
        for (user, key), order in sorted(recovered.keyed.items(), key=lambda kv: kv[1].created_at):
            if order.status != "reserved":
                continue  # final: nothing left to replay
            self._keys.admit(
                (user, key),
                Keyed(
                    order.sku,
                    order.qty,
                    None,
                    order.created_at + key_ttl_us,
                    Outcome("reserved", order.sku, order.qty, order.order_id, order.expires_at),
                ),
                bounded=False,
            )

    def handle(self, message: DedupMessage) -> None:
        match message:
            case PurchaseBatch(items):
                self._admit(items)
            case Settled(items):
                self._settle(items)
            case KeysFinal(items):
                for user, key, order_id in items:
                    entry = self._keys.get((user, key))
                    if entry is not None and entry.outcome is not None and entry.outcome.order_id == order_id:
                        self._keys.forget((user, key))
            case _:
                assert_never(message)

    def _admit(self, items: tuple[Purchase, ...]) -> None:
        replies: list[tuple[Any, Outcome]] = []
        onward: list[Purchase] = []
        if len(self._keys) and items:
            self._keys.expire(items[0].at)
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
                entry = Keyed(p.sku, p.qty, p.client_ip, p.at + self._ttl)
                why = self._keys.admit(k, entry)
                if why is not None:
                    detail = _REFUSED_KEY.get(why, _REFUSED_KEY[FULL])
                    wait = KeyGauges.RETRY_AFTER
                    replies.append((p.reply, Outcome("rate_limited", p.sku, p.qty, retry_after=wait, detail=detail)))
                    continue
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
            if outcome.result == "reserved":
                entry.outcome = outcome
            else:  # refused or transient: a retry is decided again
                self._keys.forget(k)
        self._bridge.resolve(replies)


def _reused(p: Purchase, known: Keyed) -> Outcome:
    return Outcome(
        "idempotency_key_reused",
        p.sku,
        p.qty,
        detail=(
            f"this Idempotency-Key was first used for sku={known.sku!r} qty={known.qty};"
            " use a new key for a different purchase"
        ),
    )
