"""After Redis lost a sale: rebuild it from PostgreSQL before a worker answers a purchase.

A Redis without persistence (or that lost its disk) comes back empty. The
ledger's start-up call (``INIT``) would then set every SKU up afresh from
the config, and sell again what PostgreSQL already records as sold. So a
worker checks first: for each SKU whose ``meta`` key is missing, it reads
the sale's orders (``sale`` = ``postgres.sale`` or ``redis.prefix``) from
PostgreSQL and, when there are any, writes them back in one Lua call per SKU
(:data:`REBUILD`, which does nothing if another worker got there first):

- ``stock``: the config's, or the units PostgreSQL records as held if more
  (restocks live only in Redis and are lost with it);
- ``reserved`` / ``paid`` and each buyer's units (the per-user limit) from
  the stored ``reserved`` and ``paid`` orders; ``remaining`` is the rest;
- every ``reserved`` order as a live order again (its hash, its expiry in
  ``due``, its idempotency record), so it can be paid, cancelled or expire;
- the order numbers resume :data:`RESEQ_GAP` past the highest stored one,
  so an id given out before the loss, whose order may have been in the lost
  stream, is never given to another buyer.

Orders that were confirmed but still in the lost stream never reached
PostgreSQL and cannot be rebuilt: the worker logs how many order numbers
below the highest stored one are missing (a lower bound of the loss). It is
safe only when PostgreSQL has everything the surviving workers had read:
stop every worker (each sink writes what it holds on SIGTERM) before
starting them again; the README's recovery says so.

When Redis lacks a SKU and PostgreSQL cannot be read, the worker refuses to
start (:class:`RebuildError`): starting from the config could re-sell.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from flashsale.actors import LedgerSku
from flashsale.config import PostgresConfig, RedisConfig

from ._client import connect
from ._schema import migrate, sale_key

log = logging.getLogger("flashsale.rebuild")

RESEQ_GAP = 1_000_000
"""Order numbers skipped after a rebuild: more than a lost stream holds in any sale we size for."""

REBUILD = """
-- KEYS: meta, users, due. ARGV: base, stock, remaining, reserved, paid, seq, starts_at, ends_at, limit,
-- hold_us, idempotency ttl (ms), number of buyers, then per buyer: user, units; then per live order:
-- id, user, qty, created_at, expires_at, idempotency key. Does nothing when the SKU exists already.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local base, ttl = ARGV[1], ARGV[11]
redis.call('HSET', KEYS[1], 'stock', ARGV[2], 'remaining', ARGV[3], 'reserved', ARGV[4], 'paid', ARGV[5],
  'seq', ARGV[6], 'starts_at', ARGV[7], 'ends_at', ARGV[8], 'limit', ARGV[9], 'hold_us', ARGV[10])
local i = 13
for _ = 1, tonumber(ARGV[12]) do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  local id, user, qty, created, expires, key = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  redis.call('HSET', base .. 'order:' .. id, 'user', user, 'qty', qty, 'status', 'reserved',
    'created_at', created, 'expires_at', expires, 'key', key, 'ip', '')
  redis.call('ZADD', KEYS[3], expires, id)
  if key ~= '' then
    redis.call('SET', base .. 'idem:' .. user .. ':' .. key, qty .. '|reserved|' .. id .. '|' .. expires, 'PX', ttl)
    redis.call('HINCRBY', base .. 'keys', 'n', 1)
    redis.call('HINCRBY', base .. 'keys', 'u:' .. user, 1)
  end
  i = i + 6
end
return 1
"""

ORDERS = """
SELECT order_id, user_id, qty, status, created_at, expires_at, idempotency_key
FROM orders WHERE sale = %s AND sku = %s
"""


class RebuildError(Exception):
    """Redis has lost a SKU of the sale and PostgreSQL could not be read: starting could re-sell."""


@dataclass(slots=True)
class SkuRecord:
    """What PostgreSQL records of one SKU of the sale."""

    reserved: int = 0
    paid: int = 0
    users: dict[str, int] = field(default_factory=dict)
    live: list[tuple[str, str, int, int, int, str]] = field(default_factory=list)  # id, user, qty, times, key
    numbers: set[int] = field(default_factory=set)
    orders: int = 0

    @property
    def missing(self) -> int:
        """Order numbers below the highest stored one that PostgreSQL does not have (lost with the stream)."""
        return max(self.numbers) - len(self.numbers) if self.numbers else 0


def _number(sku: str, order_id: str) -> int | None:
    match = re.match(r"([0-9]{1,18})", order_id[len(sku) + 1 :]) if order_id.startswith(sku + "-") else None
    return int(match.group(1)) if match else None


def read_record(conn: psycopg.Connection[Any], sale: str, sku: str) -> SkuRecord:
    """The stored orders of ``sku`` in ``sale``, summed up."""
    record = SkuRecord()
    for order_id, user, qty, status, created, expires, key in conn.execute(ORDERS, (sale, sku)):
        record.orders += 1
        n = _number(sku, order_id)
        if n is not None:
            record.numbers.add(n)
        if status not in ("reserved", "paid"):
            continue
        record.users[user] = record.users.get(user, 0) + qty
        if status == "paid":
            record.paid += qty
        else:
            record.reserved += qty
            record.live.append((order_id, user, qty, created, expires, key or ""))
    return record


class SaleRebuilder:
    """Checks Redis for each SKU of the sale and rebuilds the missing ones from PostgreSQL."""

    def __init__(self, redis_config: RedisConfig, postgres: PostgresConfig, idempotency_ttl: float) -> None:
        self._redis_config = redis_config
        self._postgres = postgres
        self.sale = sale_key(postgres, redis_config)
        self._ttl_ms = max(1, round(idempotency_ttl * 1000))

    def run(self, skus: Sequence[LedgerSku]) -> list[str]:
        """Rebuild every SKU Redis lacks and PostgreSQL has orders of; return their ids.

        Raises :class:`RebuildError` when Redis does not answer, or a SKU is
        missing and PostgreSQL cannot be read.
        """
        try:
            return self._run(skus)
        except redis.RedisError as exc:
            raise RebuildError(f"redis: {exc}") from exc

    def _run(self, skus: Sequence[LedgerSku]) -> list[str]:
        prefix = self._redis_config.prefix
        # One call per SKU may carry many orders: a longer deadline.
        client = connect(self._redis_config, timeout=max(self._redis_config.timeout, 5.0))
        try:
            pipe = client.pipeline(transaction=False)
            for s in skus:
                pipe.exists(f"{prefix}:{{{s.sku}}}:meta")
            missing = [s for s, found in zip(skus, pipe.execute(), strict=True) if not found]
            if not missing:
                return []
            records = self._read(missing)
            rebuilt = []
            for s in missing:
                record = records[s.sku]
                if record.orders == 0:
                    continue  # a sale that never sold here: INIT sets it up from the config
                base = f"{prefix}:{{{s.sku}}}:"
                args = map(str, self._args(base, s, record))
                if client.eval(REBUILD, 3, base + "meta", base + "users", base + "due", *args):
                    rebuilt.append(s.sku)
                    log.warning(
                        "redis had lost the sale: rebuilt from postgresql",
                        extra={
                            "sale": self.sale,
                            "sku": s.sku,
                            "reserved": record.reserved,
                            "paid": record.paid,
                            "buyers": len(record.users),
                            "live_orders": len(record.live),
                            "orders_missing": record.missing,
                        },
                    )
            return rebuilt
        finally:
            client.close()

    def _read(self, skus: Sequence[LedgerSku]) -> dict[str, SkuRecord]:
        params = conninfo_to_dict(self._postgres.url)
        params.setdefault("connect_timeout", "5")
        try:
            with psycopg.connect(make_conninfo("", **params), autocommit=True) as conn:
                migrate(conn)  # a database that never saw this sale has no rows yet, and maybe no table
                return {s.sku: read_record(conn, self.sale, s.sku) for s in skus}
        except psycopg.Error as exc:
            missing = ", ".join(s.sku for s in skus)
            raise RebuildError(
                f"redis has no sale for sku {missing} and postgresql cannot be read to rebuild it ({exc});"
                " starting from the config could sell again what was sold"
            ) from exc

    def _args(self, base: str, s: LedgerSku, record: SkuRecord) -> list[str | int]:
        held = record.reserved + record.paid
        stock = max(s.stock, held)
        seq = max(record.numbers, default=0) + RESEQ_GAP
        opt = ["" if v is None else v for v in (s.starts_at, s.ends_at, s.per_user_limit)]
        args: list[str | int] = [base, stock, stock - held, record.reserved, record.paid, seq, *opt, s.hold_us]
        args += [self._ttl_ms, len(record.users)]
        for user, units in record.users.items():
            args += [user, units]
        for order in record.live:
            args += list(order)
        return args
