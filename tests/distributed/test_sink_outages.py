"""PostgreSQL or Redis down or slow: the sink says so, keeps every entry, backs off, and resumes by itself."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator

import psycopg
import pytest

from flashsale.redis._schema import migrate
from tests.distributed.conftest import RedisServer
from tests.distributed.pg import PostgresServer
from tests.distributed.sinkkit import Sinks, Streams, entry, sinks_fixture, stored, streams_fixture, wait_for  # noqa: F401


@pytest.fixture
def own_pg() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, to stop and start."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


def test_postgres_down_then_back(
    streams: Streams, sinks: Sinks, own_pg: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With PostgreSQL stopped, ok turns false, entries stay in Redis, retries back off; on its return all land."""
    caplog.set_level(logging.INFO, logger="flashsale.sink")
    url = own_pg.create_database()
    sink = sinks.start(["a"], pg_url=url)
    streams.add(*(entry(f"a-{n}") for n in range(1, 101)))
    assert sink.drain(30)
    own_pg.stop()
    stopped = time.monotonic()
    streams.add(*(entry(f"a-{n}") for n in range(101, 301)))
    wait_for(lambda: not sink.gauges.ok, "the sink reports PostgreSQL down")
    assert time.monotonic() - stopped < 5
    failures = sink.gauges.failures
    assert not sink.drain(1.0)
    assert sink.gauges.failures - failures <= 12  # waits double up to breaker_reset (0.2 s): no spinning
    assert streams.length("a") == 200  # nothing acknowledged that is not in PostgreSQL
    own_pg.start()
    assert sink.drain(30)
    assert sorted(stored(url)) == sorted(f"a-{n}" for n in range(1, 301))
    assert (streams.length("a"), streams.pending("a"), sink.gauges.ok) == (0, 0, True)
    said = [r.getMessage() for r in caplog.records if r.name == "flashsale.sink"]
    assert said == ["postgresql unavailable", "postgresql available again"]  # one line each per outage


def test_postgres_down_while_idle(streams: Streams, sinks: Sinks, own_pg: PostgresServer) -> None:
    """A sink with nothing to write still notices PostgreSQL going away, and coming back."""
    sink = sinks.start(["a"], pg_url=own_pg.create_database())
    wait_for(lambda: sink.gauges.ok, "the sink connects")
    own_pg.stop()
    stopped = time.monotonic()
    wait_for(lambda: not sink.gauges.ok, "the sink reports PostgreSQL down")
    assert time.monotonic() - stopped < 5  # PROBE_EVERY plus a refused connection
    own_pg.start()
    wait_for(lambda: sink.gauges.ok, "the sink reports PostgreSQL back")


def test_postgres_slow(streams: Streams, sinks: Sinks, pg_url: str) -> None:
    """A write slower than the statement timeout counts as a failure; the entries land once it is fast again."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrate(conn)
    sink = sinks.start(["a"], pg_url=f"{pg_url}?options=-c%20statement_timeout%3D200")
    streams.add(entry("a-1"))
    assert sink.drain(30)
    with psycopg.connect(pg_url) as locker:
        locker.execute("LOCK TABLE orders IN EXCLUSIVE MODE")  # every write now waits past the timeout
        streams.add(*(entry(f"a-{n}") for n in range(2, 52)))
        wait_for(lambda: not sink.gauges.ok, "the sink reports PostgreSQL too slow")
        assert (streams.length("a"), streams.pending("a")) == (50, 50)
        locker.rollback()
    assert sink.drain(30)
    assert len(stored(pg_url)) == 51
    assert sink.gauges.ok


def test_redis_restarted(streams: Streams, sinks: Sinks, pg_url: str, redis_server: RedisServer) -> None:
    """Redis killed and started again (AOF on): the sink reports it, reconnects, and writes what came after."""
    sink = sinks.start(["a"])
    streams.add(*(entry(f"a-{n}") for n in range(1, 101)))
    assert sink.drain(30)
    redis_server.kill()
    try:
        wait_for(lambda: not sink.gauges.redis_ok, "the sink reports Redis down")
        assert not sink.drain(0.3)  # an answer, not an exception
    finally:
        redis_server.start()
    streams.add(*(entry(f"a-{n}") for n in range(101, 201)))
    assert sink.drain(30)
    assert sorted(stored(pg_url)) == sorted(f"a-{n}" for n in range(1, 201))
    assert sink.gauges.redis_ok


def test_redis_down_between_commit_and_acknowledge(
    streams: Streams, sinks: Sinks, pg_url: str, redis_server: RedisServer
) -> None:
    """A batch committed while Redis is away is acknowledged when it returns, and written once."""
    streams.add(*(entry(f"a-{n}") for n in range(1, 301)))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrate(conn)
    with psycopg.connect(pg_url) as locker:
        locker.execute("LOCK TABLE orders IN EXCLUSIVE MODE")  # hold the sink between reading and committing
        sink = sinks.start(["a"], batch=50)
        wait_for(lambda: streams.pending("a") == 50, "the sink reads its first batch")
        redis_server.kill()
        try:
            locker.rollback()  # the batch commits now; its XACK finds no Redis
            wait_for(lambda: not sink.gauges.redis_ok, "the sink reports Redis down")
            assert sink.gauges.pending == 50
        finally:
            redis_server.start()
    assert sink.drain(30)
    assert sorted(stored(pg_url)) == sorted(f"a-{n}" for n in range(1, 301))
    assert (streams.length("a"), streams.pending("a"), sink.gauges.committed) == (0, 0, 300)


def test_postgres_hung_is_logged_like_a_stopped_one(
    sinks: Sinks, pg_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sink's PostgreSQL backend frozen (SIGSTOP): one "unavailable" line, and "available again" after SIGCONT."""
    caplog.set_level(logging.INFO, logger="flashsale.sink")
    for module in ("_sink_gauges", "_sink"):  # read by SinkGauges.ok and by the watch thread
        monkeypatch.setattr(f"flashsale.redis.{module}.STALL_AFTER", 1.0)
    sink = sinks.start(["a"])
    wait_for(lambda: sink.gauges.ok, "the sink connects")
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE application_name = 'flashsale-sink' AND datname = current_database()"
        ).fetchone()
    assert row is not None
    os.kill(row[0], signal.SIGSTOP)
    try:
        wait_for(lambda: not sink.gauges.ok, "the sink reports PostgreSQL hung")
        wait_for(lambda: any(r.getMessage() == "postgresql unavailable" for r in caplog.records), "the log line")
    finally:
        os.kill(row[0], signal.SIGCONT)
    wait_for(lambda: sink.gauges.ok, "the sink reports PostgreSQL back")
    said = [r.getMessage() for r in caplog.records if r.name == "flashsale.sink"]
    assert said == ["postgresql unavailable", "postgresql available again"]


def test_redis_hung_is_logged_like_a_stopped_one(
    sinks: Sinks, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis frozen (SIGSTOP): the sink's calls time out, one "unavailable" line; "available again" after SIGCONT."""
    caplog.set_level(logging.INFO, logger="flashsale.sink")
    sink = sinks.start(["a"])
    wait_for(lambda: sink.gauges.redis_ok, "the sink connects")
    assert redis_server.proc is not None
    redis_server.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: not sink.gauges.redis_ok, "the sink reports Redis hung")
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: sink.gauges.redis_ok, "the sink reports Redis back")
    said = [r.getMessage() for r in caplog.records if r.name == "flashsale.sink"]
    assert said == ["redis unavailable", "redis available again"]
