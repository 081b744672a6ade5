"""Helpers for the order sink's tests: stream entries in the ledger's format, and reading what landed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson
import psycopg
import pytest
import redis

from flashsale import PostgresConfig, RedisConfig
from flashsale.redis._schema import ROW_FIELDS
from flashsale.redis._sink import OrderSink
from flashsale.redis._sink_stream import GROUP, stream_key

T0 = 1_767_225_600_000_000


def entry(order_id: str, status: str = "reserved", *, user: str = "u", qty: int = 1, key: str = "") -> dict[str, str]:
    """The row of ``order_id`` (``<sku>-<n>``) in ``status``, by field: an entry as earlier versions wrote it."""
    sku, _, n = order_id.rpartition("-")
    changed = T0 + int(n) + (0 if status == "reserved" else 1_000_000)
    return {
        "order_id": order_id,
        "sku": sku,
        "user": user,
        "qty": str(qty),
        "status": status,
        "created_at": str(T0 + int(n)),
        "expires_at": str(T0 + int(n) + 900_000_000),
        "changed_at": str(changed),
        "idempotency_key": key,
    }


def packed(*rows: dict[str, str]) -> dict[str, str]:
    """One stream entry holding ``rows`` (of one SKU), as the ledger's Lua call writes it."""
    return {"sku": rows[0]["sku"], "rows": orjson.dumps([[r[f] for f in ROW_FIELDS] for r in rows]).decode()}


class Streams:
    """A Redis client on one test's key prefix."""

    def __init__(self, config: RedisConfig) -> None:
        self.redis_config = config
        self.url = config.url
        self.prefix = config.prefix
        self.client = redis.Redis.from_url(config.url, decode_responses=True)

    def key(self, sku: str) -> str:
        return stream_key(self.prefix, sku)

    def add(self, *rows: dict[str, str]) -> None:
        """Append each row to its SKU's stream as an entry of its own, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for fields in rows:
            pipe.xadd(self.key(fields["sku"]), packed(fields))  # type: ignore[arg-type]
        pipe.execute()

    def length(self, sku: str) -> int:
        return int(self.client.xlen(self.key(sku)))

    def pending(self, sku: str) -> int:
        """Entries of ``sku``'s stream read by some consumer and not acknowledged."""
        key = self.key(sku)
        if not self.client.exists(key) or all(g["name"] != GROUP for g in self.client.xinfo_groups(key)):
            return 0  # no consumer group yet: nothing was read
        return int(self.client.xpending(key, GROUP)["pending"])


def stored(pg_url: str) -> dict[str, tuple[Any, ...]]:
    """Every row of ``orders`` by id: ``(sku, user_id, qty, status, created_at, expires_at, changed_at, key)``."""
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT order_id, sku, user_id, qty, status, created_at, expires_at, changed_at, idempotency_key"
            " FROM orders"
        ).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


def statuses(pg_url: str) -> dict[str, str]:
    """Order id -> stored status."""
    return {order_id: row[3] for order_id, row in stored(pg_url).items()}


class Sinks:
    """Starts order sinks on one test's streams and database; stops them all at teardown."""

    def __init__(self, streams: Streams, pg_url: str) -> None:
        self.streams = streams
        self.pg_url = pg_url
        self.started: list[OrderSink] = []

    def start(
        self, skus: Sequence[str], *, name: str | None = None, pg_url: str | None = None, **postgres: Any
    ) -> OrderSink:
        fields: dict[str, Any] = {"url": pg_url or self.pg_url, "batch": 100} | postgres
        sink = OrderSink(self.streams.redis_config, PostgresConfig(**fields), name or f"host:{len(self.started)}", skus)
        sink.start()
        self.started.append(sink)
        return sink

    def stop_all(self) -> None:
        for sink in self.started:
            sink.stop()


@pytest.fixture(name="streams")
def streams_fixture(redis_config: RedisConfig) -> Iterator[Streams]:
    """A Redis client on a key prefix of this test's own."""
    s = Streams(redis_config)
    yield s
    s.client.close()


@pytest.fixture(name="sinks")
def sinks_fixture(streams: Streams, pg_url: str) -> Iterator[Sinks]:
    """Start order sinks for this test; each is stopped at teardown."""
    made = Sinks(streams, pg_url)
    yield made
    made.stop_all()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` (a question to Redis or PostgreSQL, external processes) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)  # sleep-ok: the poll interval of a deadline-bounded wait on Redis or PostgreSQL
