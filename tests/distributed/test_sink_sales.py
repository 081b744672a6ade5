"""Many sales in one PostgreSQL: rows keyed by sale and order id; an id reused for another order is rejected aloud."""

from __future__ import annotations

import dataclasses
import logging

import psycopg
import pytest

from flashsale.redis._schema import MIGRATIONS, migrate
from tests.distributed.sinkkit import T0, Sinks, Streams, entry, sinks_fixture, streams_fixture  # noqa: F401


def rows(pg_url: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(sale, order id) -> (user, status) of every stored order."""
    with psycopg.connect(pg_url) as conn:
        found = conn.execute("SELECT sale, order_id, user_id, status FROM orders").fetchall()
    return {(sale, order_id): (user, status) for sale, order_id, user, status in found}


def rejects(pg_url: str) -> list[str]:
    with psycopg.connect(pg_url) as conn:
        return [r[0] for r in conn.execute("SELECT reason FROM order_rejects ORDER BY entry_id").fetchall()]


def test_two_sales_with_the_same_ids_keep_their_own_rows(streams: Streams, pg_url: str) -> None:
    """Two prefixes on one database both sell hot-1..3: six rows; paying hot-1 in one never touches the other's."""
    other = Streams(dataclasses.replace(streams.redis_config, prefix=streams.prefix + "-new"))
    old_sales, new_sales = Sinks(streams, pg_url), Sinks(other, pg_url)
    try:
        streams.add(*(entry(f"hot-{n}", user="old") for n in (1, 2, 3)))
        other.add(*(entry(f"hot-{n}", user="new") for n in (1, 2, 3)))
        first, second = old_sales.start(["hot"]), new_sales.start(["hot"])
        assert first.drain(30)
        assert second.drain(30)
        other.add(entry("hot-1", "paid", user="new"))
        assert second.drain(30)
    finally:
        old_sales.stop_all()
        new_sales.stop_all()
        other.client.close()
    got = rows(pg_url)
    assert len(got) == 6
    assert got[streams.prefix, "hot-1"] == ("old", "reserved")
    assert got[other.prefix, "hot-1"] == ("new", "paid")
    assert rejects(pg_url) == []


def test_an_id_reused_for_another_order_is_rejected_and_logged(
    streams: Streams, sinks: Sinks, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An order id stored for one buyer and sent again for another (in one batch or later) lands in order_rejects."""
    streams.add(entry("a-1", user="alice"), entry("a-2", user="bob"))
    sink = sinks.start(["a"])
    assert sink.drain(30)
    with caplog.at_level(logging.ERROR, logger="flashsale.sink"):
        streams.add(entry("a-1", "paid", user="mallory"), entry("a-3", user="carol"), entry("a-3", user="dave"))
        assert sink.drain(30)
    assert rows(pg_url) == {
        (streams.prefix, "a-1"): ("alice", "reserved"),  # not paid by the other order that reused its id
        (streams.prefix, "a-2"): ("bob", "reserved"),
        (streams.prefix, "a-3"): ("carol", "reserved"),
    }
    reasons = rejects(pg_url)
    assert len(reasons) == 2
    assert all("is stored for another order" in r for r in reasons)
    assert sink.gauges.rejected == 2
    logged = [r for r in caplog.records if "other orders of this sale" in r.getMessage()]
    assert [(r.count, r.sale) for r in logged] == [(2, streams.prefix)]  # type: ignore[attr-defined]


def test_version_1_rows_move_to_the_default_sale(pg_url: str) -> None:
    """A database at version 1 keeps its orders through the upgrade, under sale ''."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("CREATE TABLE flashsale_schema (version integer PRIMARY KEY)")
            for statement in MIGRATIONS[0]:
                conn.execute(statement)
            conn.execute("INSERT INTO flashsale_schema VALUES (1)")
        conn.execute("INSERT INTO orders VALUES ('a-1', 'a', 'u', 1, 'reserved', %s, %s, %s, NULL)", (T0, T0 + 1, T0))
        assert migrate(conn) == 1
    assert rows(pg_url) == {("", "a-1"): ("u", "reserved")}
