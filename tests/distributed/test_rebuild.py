"""SaleRebuilder on real servers: a SKU Redis lacks comes back from the sale's rows in PostgreSQL, exactly."""

from __future__ import annotations

import logging

import psycopg
import pytest
import redis

from flashsale import PostgresConfig, RedisConfig
from flashsale.actors import LedgerSku
from flashsale.redis._rebuild import RESEQ_GAP, SaleRebuilder
from flashsale.redis._schema import migrate

T0 = 1_767_225_600_000_000
HOLD = 900_000_000


def store(pg_url: str, sale: str, *rows: tuple[str, str, int, str, str | None]) -> None:
    """Orders of SKU ``a`` as the sink would have written them: (id, user, qty, status, key)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrate(conn)
        for order_id, user, qty, status, key in rows:
            conn.execute(
                "INSERT INTO orders VALUES (%s, 'a', %s, %s, %s, %s, %s, %s, %s, %s)",
                (order_id, user, qty, status, T0, T0 + HOLD, T0, key, sale),
            )


def test_a_lost_sku_comes_back_from_postgres(
    redis_config: RedisConfig, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Stock, buyers' units, live orders with their keys and the order numbers; the gap in numbers is reported."""
    store(
        pg_url,
        redis_config.prefix,
        ("a-1", "alice", 2, "paid", None),
        ("a-2", "bob", 1, "reserved", "k"),
        ("a-5", "alice", 1, "expired", None),
    )
    store(pg_url, "another-sale", ("a-9", "eve", 3, "reserved", None))  # never counted here
    caplog.set_level(logging.WARNING, logger="flashsale.rebuild")
    rebuilder = SaleRebuilder(redis_config, PostgresConfig(url=pg_url), idempotency_ttl=60.0)
    sku = LedgerSku("a", 10, 2, None, None, HOLD)
    assert rebuilder.run([sku]) == ["a"]
    assert rebuilder.run([sku]) == []  # present now: left alone
    client = redis.Redis.from_url(redis_config.url, decode_responses=True)
    base = f"{redis_config.prefix}:{{a}}:"
    meta = client.hgetall(base + "meta")
    assert {k: meta[k] for k in ("stock", "remaining", "reserved", "paid", "seq", "limit")} == {
        "stock": "10",
        "remaining": "7",
        "reserved": "1",
        "paid": "2",
        "seq": str(5 + RESEQ_GAP),
        "limit": "2",
    }
    assert client.hgetall(base + "users") == {"alice": "2", "bob": "1"}
    assert client.hget(base + "order:a-2", "status") == "reserved"
    assert client.zrange(base + "due", 0, -1) == ["a-2"]
    assert client.get(base + "idem:bob:k") == f"1|reserved|a-2|{T0 + HOLD}"
    client.close()
    (line,) = [r for r in caplog.records if r.name == "flashsale.rebuild"]
    assert (line.orders_missing, line.live_orders) == (2, 1)  # type: ignore[attr-defined]  # a-3 and a-4 never arrived


def test_a_sale_postgres_never_saw_is_left_to_init(redis_config: RedisConfig, pg_url: str) -> None:
    """No rows for the sale: nothing is rebuilt (the config's INIT sets it up as a new sale)."""
    rebuilder = SaleRebuilder(redis_config, PostgresConfig(url=pg_url), idempotency_ttl=60.0)
    assert rebuilder.run([LedgerSku("a", 10, None, None, None, HOLD)]) == []
