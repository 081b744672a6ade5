"""Order sink throughput: stream entries per second from Redis into PostgreSQL.

``python bench/sink.py [--entries 100000] [--skus 4] [--batches 100,500,2000] [--sinks 1]``

For each batch size: a fresh key prefix and database, ``--entries`` orders
(spread over ``--skus`` SKUs, one in five followed by its ``paid`` change)
appended to the streams first in the ledger's format (one stream entry per
Lua call, ``--rows`` orders each: a ledger call carries a batch), then
``--sinks`` :class:`engine._pgsink.OrderSink` threads started and timed until
``drain()`` says every entry is in PostgreSQL and acknowledged. The row count
is checked. Without ``--redis-url``/``--pg-url`` it spawns throwaway
``redis-server`` and PostgreSQL servers (the test fixtures' classes) on
loopback ports and removes them at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable

import orjson
import psycopg
import redis

from flashsale import PostgresConfig, RedisConfig
from flashsale.redis._sink import OrderSink
from flashsale.redis._sink_stream import stream_key
from flashsale.testing import PostgresServer, RedisServer

T0 = 1_767_225_600_000_000


def fill(client: redis.Redis, prefix: str, entries: int, skus: list[str], rows: int) -> int:
    """Append ``entries`` orders (and a paid change for every fifth), ``rows`` per stream entry; return the entries."""
    pending: dict[str, list[list[str]]] = {sku: [] for sku in skus}
    pipe = client.pipeline(transaction=False)
    added = 0

    def flush(sku: str) -> None:
        nonlocal added
        if pending[sku]:
            pipe.xadd(stream_key(prefix, sku), {"sku": sku, "rows": orjson.dumps(pending[sku]).decode()})
            pending[sku] = []
            added += 1

    for n in range(1, entries + 1):
        sku = skus[n % len(skus)]
        at = str(T0 + n)
        row = [f"{sku}-{n}", f"user{n % 50_000}", "1", "reserved", at, str(T0 + n + 900_000_000), at, ""]
        pending[sku].append(row)
        if n % 5 == 0:
            pending[sku].append([*row[:3], "paid", row[4], row[5], str(T0 + n + 1), ""])
        if len(pending[sku]) >= rows:
            flush(sku)
        if n % 5000 == 0:
            pipe.execute()
    for sku in skus:
        flush(sku)
    pipe.execute()
    return added


def run(args: argparse.Namespace, redis_url: str, pg_url_for: Callable[[], str], batch: int) -> tuple[float, int]:
    prefix = f"bench{batch}x{time.monotonic_ns()}"
    skus = [f"sku{i}" for i in range(args.skus)]
    client = redis.Redis.from_url(redis_url)
    added = fill(client, prefix, args.entries, skus, args.rows)
    client.close()
    pg_url = pg_url_for()
    sinks = [
        OrderSink(
            RedisConfig(url=redis_url, prefix=prefix), PostgresConfig(url=pg_url, batch=batch), f"bench:{i}", skus
        )
        for i in range(args.sinks)
    ]
    started = time.perf_counter()
    for sink in sinks:
        sink.start()
    drained = all(sink.drain(args.timeout) for sink in sinks)
    elapsed = time.perf_counter() - started
    for sink in sinks:
        sink.stop()
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT count(*), count(*) FILTER (WHERE status = 'paid') FROM orders").fetchone()
    assert drained, f"not drained in {args.timeout} s"
    assert row == (args.entries, args.entries // 5), f"rows {row}, expected {(args.entries, args.entries // 5)}"
    return elapsed, added


def spawn_redis(cleanup: contextlib.ExitStack) -> str:
    """A throwaway redis-server (AOF on, as in a sale); stopped and deleted by ``cleanup``."""
    server = RedisServer()
    cleanup.callback(server.close)
    server.start()
    return server.url


def spawn_postgres(cleanup: contextlib.ExitStack) -> Callable[[], str]:
    """A throwaway PostgreSQL; returns what makes a fresh database on it. Removed by ``cleanup``."""
    server = PostgresServer()
    cleanup.callback(server.close)
    server.start()
    return server.create_database


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", type=int, default=100_000, help="orders (a fifth also get a paid entry)")
    p.add_argument("--skus", type=int, default=4)
    p.add_argument("--rows", type=int, default=20, help="orders per stream entry (per ledger call)")
    p.add_argument("--batches", default="100,500,2000", help="comma-separated [postgres] batch sizes to compare")
    p.add_argument("--sinks", type=int, default=1, help="sinks (workers) sharing the consumer group")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--redis-url")
    p.add_argument("--pg-url", help="a database URL; each run empties its orders table")
    args = p.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    with contextlib.ExitStack() as cleanup:
        redis_url = args.redis_url or spawn_redis(cleanup)
        if args.pg_url:

            def pg_url_for() -> str:
                with psycopg.connect(args.pg_url, autocommit=True) as conn:
                    conn.execute("DROP TABLE IF EXISTS orders, order_rejects, flashsale_schema")
                return str(args.pg_url)

        else:
            pg_url_for = spawn_postgres(cleanup)
        print(f"{args.entries} orders on {args.skus} SKUs, {args.rows} rows per entry, {args.sinks} sink(s)")
        print(f"{'batch':>6} {'entries':>8} {'seconds':>8} {'entries/s':>10} {'orders/s':>10}")
        for batch in batches:
            elapsed, added = run(args, redis_url, pg_url_for, batch)
            print(f"{batch:>6} {added:>8} {elapsed:>8.2f} {added / elapsed:>10,.0f} {args.entries / elapsed:>10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
