"""The PostgreSQL schema: created once, re-applied as a no-op, safe when workers start together."""

from __future__ import annotations

import threading

import psycopg
import pytest

from flashsale.redis._schema import MIGRATIONS, SchemaTooNew, migrate
from tests.distributed.sinkkit import Sinks, Streams, entry, sinks_fixture, stored, streams_fixture  # noqa: F401


def versions(pg_url: str) -> list[int]:
    with psycopg.connect(pg_url) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM flashsale_schema ORDER BY version")]


def test_migrate_creates_the_schema_then_does_nothing(pg_url: str) -> None:
    """A fresh database gets every version; a second run finds it current and changes nothing."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert migrate(conn) == 0
        assert migrate(conn) == len(MIGRATIONS)
        indexes = {row[0] for row in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'orders'")}
    assert versions(pg_url) == [1, 2, 3]
    assert indexes == {"orders_pkey", "orders_sku_status", "orders_user_id"}


def test_workers_migrating_at_once_do_not_race(pg_url: str) -> None:
    """Eight connections migrating at the same instant: one applies every version, the others find them done."""
    barrier = threading.Barrier(8)
    found: list[int] = []

    def run() -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            barrier.wait()
            found.append(migrate(conn))

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(found) == [0] + [len(MIGRATIONS)] * 7
    assert versions(pg_url) == [1, 2, 3]


def test_two_sinks_starting_together_share_the_work(streams: Streams, sinks: Sinks, pg_url: str) -> None:
    """Two sinks on an empty database: the schema is made once, and each order lands once."""
    streams.add(*(entry(f"a-{n}") for n in range(1, 1001)))
    first, second = sinks.start(["a"], name="w:1", batch=20), sinks.start(["a"], name="w:2", batch=20)
    assert first.drain(30)
    assert second.drain(30)
    assert len(stored(pg_url)) == 1000
    assert first.gauges.committed + second.gauges.committed == 1000
    assert versions(pg_url) == [1, 2, 3]


def test_a_newer_schema_is_refused(pg_url: str) -> None:
    """A database migrated by a newer flashsale is left alone."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrate(conn)
        conn.execute("INSERT INTO flashsale_schema (version) VALUES (%s)", (len(MIGRATIONS) + 1,))
        with pytest.raises(SchemaTooNew, match=f"schema version {len(MIGRATIONS) + 1}"):
            migrate(conn)
    assert versions(pg_url) == [*range(1, len(MIGRATIONS) + 2)]
