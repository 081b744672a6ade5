"""The dedup actor: per-user limits and idempotency keys.

Per-user limits count units, not requests. A purchase that passes takes a
*hold* of its quantity at once, so two concurrent requests from one user can
never both fit under the limit; the hold is released when the purchase
settles as anything but ``reserved`` (inventory and writer report those
back with :class:`Settled`).

An ``Idempotency-Key`` is scoped to its user. The first request with a key
is remembered with its body (SKU and quantity) while it is in flight; a
duplicate that arrives meanwhile waits for the same answer instead of buying
again. A key that reserved an order is replayed until the order is final
(the writer reports :class:`KeysFinal`) or ``key_ttl`` after the first
request, by message time, whichever comes first. Every other answer is
forgotten once given: a refused purchase's retry is decided again (it can
only buy if units came back), and transient answers (``overloaded``,
``unavailable``) are retried anyway. The table (:class:`KeyTable`) is
bounded per buyer, per client address and in all, so that a client that
floods keys is refused alone (``rate_limited``) and never locks others out.
"""

from __future__ import annotations

from typing import Any, assert_never

from ._bridge import LoopBridge
from ._keys import BUYER, FULL, Keyed, KeyGauges, KeyTable
from ._messages import DedupMessage, KeysFinal, Outcome, Purchase, PurchaseBatch, ReleaseHolds, Settled
from ._pipeline import Pipeline, Stage
from ._ports import Recovered

_REFUSED_KEY = {
    BUYER: "this buyer has too many purchases with an Idempotency-Key still open; pay or cancel them first",
    FULL: "too many purchases with an Idempotency-Key are open from this address",
}


class DedupActor(Stage):
    """Enforces per-user limits and answers repeated idempotency keys."""

    def __init__(
        self,
        pipeline: Pipeline,
        bridge: LoopBridge,
        *,
        per_user_limit: dict[str, int | None],
        recovered: Recovered,
        key_ttl_us: int = 86_400_000_000,
        max_keys: int = 200_000,
        max_keys_per_buyer: int = 16,
        max_keys_per_ip: int = 1_000,
        key_gauges: KeyGauges | None = None,
    ) -> None:
        super().__init__(pipeline, bridge)
        self._limits = {sku: lim for sku, lim in per_user_limit.items() if lim is not None}
        self._held: dict[tuple[str, str], int] = {k: v for k, v in recovered.per_user.items() if k[1] in self._limits}
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
            case ReleaseHolds(items):
                for user, sku, qty in items:
                    if sku in self._limits:
                        self._release(user, sku, qty)
            case KeysFinal(items):
                for k in items:
                    self._keys.forget(k)
            case _:
                assert_never(message)

    def _admit(self, items: tuple[Purchase, ...]) -> None:
        replies: list[tuple[Any, Outcome]] = []
        onward: list[Purchase] = []
        refused: list[tuple[str, str]] = []  # answered here: replayed within this batch, then forgotten
        if len(self._keys) and items:
            self._keys.expire(items[0].at)
        for p in items:
            entry: Keyed | None = None
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
            limit = self._limits.get(p.sku)
            if limit is not None:
                hk = (p.user, p.sku)
                held = self._held.get(hk, 0)
                if held + p.qty > limit:
                    outcome = Outcome(
                        "limit_reached",
                        p.sku,
                        p.qty,
                        detail=f"at most {limit} per buyer; this buyer already holds {held}",
                    )
                    replies.append((p.reply, outcome))
                    if entry is not None:
                        entry.outcome = outcome
                        refused.append((p.user, p.idempotency_key))  # type: ignore[arg-type]  # keyed: entry is set
                    continue
                self._held[hk] = held + p.qty
            onward.append(p)
        for k in refused:  # a refusal is not replayed later: a retry is decided again
            self._keys.forget(k)
        if onward:
            self._pipeline.to_inventory(onward)
        self._bridge.resolve(replies)

    def _settle(self, items: tuple[tuple[Purchase, Outcome], ...]) -> None:
        replies: list[tuple[Any, Outcome]] = []
        for p, outcome in items:
            if outcome.result != "reserved" and p.sku in self._limits:
                self._release(p.user, p.sku, p.qty)
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

    def _release(self, user: str, sku: str, qty: int) -> None:
        left = self._held.get((user, sku), 0) - qty
        if left > 0:
            self._held[(user, sku)] = left
        else:
            self._held.pop((user, sku), None)


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
