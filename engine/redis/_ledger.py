"""RedisLedger: the :class:`actors.StockLedger` port on Redis (``backend = "redis"``).

Every decision is one Lua script (:mod:`engine._lua`) run with ``EVALSHA``
(loaded on ``NOSCRIPT``); a batch that spans several SKUs is one pipeline,
so a batch costs one round trip. Keys (prefix ``P``, SKU ``S``) carry the
hash tag ``{S}`` so a script touches one Redis Cluster slot; the rate-limit
buckets share the tag ``{rl}``. The README's "Running a cluster" lists every
key.

Every call has a deadline (``[redis] timeout``, the socket timeout) and is
never retried here: a retried reserve could take units twice. A failure or
timeout is a :class:`actors.LedgerError`; the actors count it on their
breaker. Calls come from actor threads; the client's connection pool makes
the ledger safe to share between them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, cast

from redis.exceptions import NoScriptError, RedisError

from flashsale.actors import (
    BucketSpec,
    ChangeResult,
    KeyGauges,
    LedgerError,
    LedgerSku,
    Order,
    OrderIds,
    OrderStatus,
    Outcome,
    Purchase,
    SaleAction,
    Scope,
    SkuView,
    fast_new,
    order_sku,
    paused_outcome,
)
from flashsale.config import RedisConfig

from . import _lua
from ._client import connect

_SCRIPTS = {
    "init": _lua.INIT,
    "reserve": _lua.RESERVE,
    "change": _lua.CHANGE,
    "expire": _lua.EXPIRE,
    "restock": _lua.RESTOCK,
    "throttle": _lua.THROTTLE,
    "control": _lua.CONTROL,
}
_SHA = {name: hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest() for name, text in _SCRIPTS.items()}

Call = tuple[str, list[str], list[str | int]]
"""One script run: its name, its keys, its arguments."""


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


VIEW_FIELDS = 7
"""Values of a view at the end of a script's answer (the Lua ``view()``)."""


def _view(sku: str, v: Sequence[str]) -> SkuView:
    stock, remaining, reserved, paid, starts, ends, paused = v
    return SkuView(
        sku, int(stock), int(remaining), int(reserved), int(paid), int(starts) if starts else None,
        int(ends) if ends else None, paused == "1",
    )  # fmt: skip


def _outcome(p: Purchase, answer: str) -> Outcome:
    """A reserve script's answer for ``p`` as an :class:`actors.Outcome` (see the script's comment)."""
    kind, _, rest = answer.partition("|")
    if kind == "again":
        kind, _, rest = rest.partition("|")
    sku, qty = p.sku, p.qty
    if kind == "reserved":
        order_id, expires = rest.split("|")
        return fast_new(Outcome, ("reserved", sku, qty, order_id, int(expires), None, ""))
    if kind == "sold_out":
        left = int(rest)
        return Outcome("sold_out", sku, qty, detail="sold out" if left <= 0 else f"only {left} left")
    if kind == "limit_reached":
        limit, held = rest.split("|")
        return Outcome("limit_reached", sku, qty, detail=f"at most {limit} per buyer; this buyer already holds {held}")
    if kind == "sale_not_open":
        detail = "the sale has not started yet" if rest == "not_started" else "the sale has ended"
        return Outcome("sale_not_open", sku, qty, detail=detail)
    if kind == "sale_paused":
        return paused_outcome(sku, qty)
    if kind == "key_limit":
        detail = (
            "this buyer has too many purchases with an Idempotency-Key still open; pay or cancel them first"
            if rest == "buyer"
            else "too many purchases with an Idempotency-Key are open from this address"
        )
        return Outcome("rate_limited", sku, qty, retry_after=KeyGauges.RETRY_AFTER, detail=detail)
    if kind == "idempotency_key_reused":
        return Outcome(
            "idempotency_key_reused",
            sku,
            qty,
            detail=(
                f"this Idempotency-Key was first used for sku={sku!r} qty={rest};"
                " use a new key for a different purchase"
            ),
        )
    raise LedgerError(f"the reserve script answered {answer!r}")


class RedisLedger:
    """Stock, per-user totals, idempotency records, live orders and shared rate limits in Redis."""

    def __init__(
        self,
        config: RedisConfig,
        *,
        skus: Sequence[str],
        idempotency_ttl: float,
        keys_per_buyer: int = 16,
        keys_per_ip: int = 1_000,
        per_user: BucketSpec | None = None,
        per_ip: BucketSpec | None = None,
        ids: OrderIds | None = None,
    ) -> None:
        self.prefix = config.prefix
        # The reserve script mints ids with this key (a fresh random one unless the caller injects one).
        self._pads = list((ids or OrderIds.random()).lua_pads())
        self._skus = frozenset(skus)
        self._ttl_ms = max(1, round(idempotency_ttl * 1000))
        self._key_bounds = (keys_per_buyer, keys_per_ip)
        self._buckets: list[str | int] = []
        for spec in (per_user, per_ip):
            self._buckets += ["", 0] if spec is None else [f"{spec.rate / 1_000_000:.17g}", spec.burst]
        self._client = connect(config)

    def base(self, sku: str) -> str:
        """The key prefix of ``sku``: ``P:{S}:``."""
        return f"{self.prefix}:{{{sku}}}:"

    def _keys(self, sku: str) -> list[str]:
        b = self.base(sku)
        return [b + "meta", b + "users", b + "due", b + "orders"]

    def _run(self, calls: Sequence[Call]) -> list[Any]:
        """Run scripts in one round trip (a pipeline when there are several); load them on ``NOSCRIPT``."""
        try:
            results = self._send(calls)
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:  # NOSCRIPT means the script did not run: sending it again is safe
                for text in _SCRIPTS.values():
                    self._client.script_load(text)
                again = self._send([calls[i] for i in missing])
                for i, r in zip(missing, again, strict=True):
                    results[i] = r
        except RedisError as exc:
            raise LedgerError(f"redis: {exc}") from exc
        for r in results:
            if isinstance(r, Exception):
                raise LedgerError(f"redis: {r}")
        return results

    def _send(self, calls: Sequence[Call]) -> list[Any]:
        if len(calls) == 1:
            name, keys, args = calls[0]
            try:
                return [self._client.evalsha(_SHA[name], len(keys), *keys, *map(str, args))]
            except NoScriptError as exc:
                return [exc]
        pipe = self._client.pipeline(transaction=False)
        for name, keys, args in calls:
            pipe.evalsha(_SHA[name], len(keys), *keys, *map(str, args))
        return pipe.execute(raise_on_error=False)

    # -- the StockLedger port -----------------------------------------------

    def open(self, skus: Sequence[LedgerSku]) -> list[SkuView]:
        calls: list[Call] = [
            (
                "init",
                self._keys(s.sku)[:1],
                [s.stock, _opt(s.starts_at), _opt(s.ends_at), _opt(s.per_user_limit), s.hold_us],
            )
            for s in skus
        ]
        self._run(calls)
        return self.expire([s.sku for s in skus], 0, 0)[1]  # expiring nothing at time 0: just the views

    def reserve(self, batches: Sequence[Sequence[Purchase]]) -> list[tuple[list[Outcome], SkuView]]:
        calls: list[Call] = []
        for batch in batches:
            sku = batch[0].sku
            args: list[str | int] = [self.base(sku), sku, self._ttl_ms, *self._key_bounds, *self._pads]
            for p in batch:
                args += [p.user, p.qty, p.idempotency_key or "", p.at, p.client_ip or ""]
            calls.append(("reserve", self._keys(sku), args))
        answers: list[tuple[list[Outcome], SkuView]] = []
        for batch, out in zip(batches, self._run(calls), strict=True):
            if len(out) != len(batch) + VIEW_FIELDS:
                raise LedgerError(f"sku {batch[0].sku!r} is not in the ledger (was Redis emptied?)")
            outcomes = [_outcome(p, a) for p, a in zip(batch, out, strict=False)]
            answers.append((outcomes, _view(batch[0].sku, out[-VIEW_FIELDS:])))
        return answers

    def _sku_of(self, order_id: str) -> str | None:
        sku = order_sku(order_id)
        return sku if sku in self._skus else None

    def change(self, order_id: str, status: OrderStatus, at: int) -> tuple[ChangeResult, SkuView | None]:
        sku = self._sku_of(order_id)
        if sku is None:
            return ChangeResult(None, "unknown_order"), None
        (out,) = self._run([("change", self._keys(sku), [self.base(sku), sku, order_id, status, at])])
        if out[0] == "unknown_order":
            return ChangeResult(None, "unknown_order"), None
        refused, user, qty, now, created, expires, key = out[:7]
        order = Order(order_id, sku, user, int(qty), now, int(created), int(expires), key or None)
        return ChangeResult(order, refused), _view(sku, out[7:])

    def expire(self, skus: Sequence[str], at: int, limit: int) -> tuple[int, list[SkuView]]:
        if not skus:
            return 0, []
        outs = self._run([("expire", self._keys(s), [self.base(s), s, at, limit]) for s in skus])
        return sum(int(o[0]) for o in outs), [_view(s, o[1:]) for s, o in zip(skus, outs, strict=True)]

    def restock(self, sku: str, qty: int, at: int) -> SkuView:
        (out,) = self._run([("restock", self._keys(sku)[:1], [qty])])
        if out == ["no_sku"]:
            raise LedgerError(f"sku {sku!r} is not in the ledger (was Redis emptied?)")
        return _view(sku, out)

    def control(self, sku: str, action: SaleAction, at: int) -> SkuView:
        (out,) = self._run([("control", self._keys(sku)[:1], [action, at])])
        if out == ["no_sku"]:
            raise LedgerError(f"sku {sku!r} is not in the ledger (was Redis emptied?)")
        return _view(sku, out)

    # -- live limits (PUT /v1/admin/limits), shared by every process --------

    def _limits_key(self) -> str:
        return f"{self.prefix}:{{rl}}:limits"

    def set_limits(self, changes: Sequence[tuple[Scope, BucketSpec]]) -> None:
        """Store changed scopes' rate and burst where every process reads them (the shared scopes at once)."""
        mapping = {name: f"{spec.rate:.17g} {spec.burst}" for name, spec in changes}
        try:
            self._client.hset(self._limits_key(), mapping=mapping)
        except RedisError as exc:
            raise LedgerError(f"redis: {exc}") from exc

    def live_limits(self) -> dict[str, tuple[float, int]]:
        """Every scope's live ``(rate, burst)`` an operator set, by scope name."""
        try:
            raw = cast("dict[str, str]", self._client.hgetall(self._limits_key()))
        except RedisError as exc:
            raise LedgerError(f"redis: {exc}") from exc
        out: dict[str, tuple[float, int]] = {}
        for name, value in raw.items():
            rate, _, burst = value.partition(" ")
            out[name] = (float(rate), int(burst))
        return out

    def get(self, order_id: str) -> Order | None:
        sku = self._sku_of(order_id)
        if sku is None:
            return None
        try:
            row = self._client.hmget(
                self.base(sku) + "order:" + order_id, ["user", "qty", "status", "created_at", "expires_at", "key"]
            )
            user, qty, status, created, expires, key = cast("list[Any]", row)
        except RedisError as exc:
            raise LedgerError(f"redis: {exc}") from exc
        if user is None:
            return None
        return Order(order_id, sku, user, int(qty), status, int(created), int(expires), key or None)

    def throttle(self, items: Sequence[Purchase]) -> list[float]:
        args: list[str | int] = [f"{self.prefix}:{{rl}}:", *self._buckets]
        for p in items:
            args += [p.user, p.client_ip or "", p.at]
        (out,) = self._run([("throttle", [self._limits_key()], args)])
        return [int(w) / 1_000_000 for w in out]

    def delete_all(self) -> int:
        """Delete every key under this ledger's prefix (a scratch sale's); returns how many."""
        deleted = 0
        try:
            batch: list[str] = []
            for key in self._client.scan_iter(match=f"{self.prefix}:*", count=1000):
                batch.append(key)
                if len(batch) == 1000:
                    deleted += cast("int", self._client.unlink(*batch))
                    batch = []
            if batch:
                deleted += cast("int", self._client.unlink(*batch))
        except RedisError as exc:
            raise LedgerError(f"redis: {exc}") from exc
        return deleted

    def close(self) -> None:
        self._client.close()
