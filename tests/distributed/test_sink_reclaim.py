"""A consumer that read entries and died: another sink takes them over after claim_idle, and they land once."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from flashsale.redis._schema import migrate
from flashsale.redis._sink_stream import GROUP
from tests.distributed.sinkkit import Sinks, Streams, entry, sinks_fixture, stored, streams_fixture, wait_for  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def test_entries_of_a_silent_consumer_are_reclaimed_once(streams: Streams, sinks: Sinks, pg_url: str) -> None:
    """A client reads 50 entries and never acknowledges them; a sink takes them over and writes each once."""
    streams.add(*(entry(f"a-{n}") for n in range(1, 201)))
    streams.client.xgroup_create(streams.key("a"), GROUP, id="0")
    taken = streams.client.xreadgroup(GROUP, "dead:1", {streams.key("a"): ">"}, count=50)
    assert len(taken[0][1]) == 50  # type: ignore[index]
    sink = sinks.start(["a"], claim_idle=0.3)
    assert sink.drain(30)
    assert sorted(stored(pg_url)) == sorted(f"a-{n}" for n in range(1, 201))
    assert (streams.pending("a"), streams.length("a")) == (0, 0)
    assert (sink.gauges.reclaimed, sink.gauges.committed) == (50, 200)


def test_entries_are_not_reclaimed_before_claim_idle(streams: Streams, sinks: Sinks, pg_url: str) -> None:
    """Entries another consumer is working on stay its own until they have been idle for claim_idle."""
    streams.add(*(entry(f"a-{n}") for n in range(1, 101)))
    streams.client.xgroup_create(streams.key("a"), GROUP, id="0")
    streams.client.xreadgroup(GROUP, "busy:1", {streams.key("a"): ">"}, count=30)
    sink = sinks.start(["a"], claim_idle=60)
    assert not sink.drain(1.0)
    assert len(stored(pg_url)) == 70
    assert (streams.pending("a"), sink.gauges.reclaimed) == (30, 0)


VICTIM = """
import sys
from flashsale import PostgresConfig, RedisConfig
from flashsale.redis._sink import OrderSink
redis_url, prefix, pg_url = sys.argv[1:]
OrderSink(RedisConfig(url=redis_url, prefix=prefix), PostgresConfig(url=pg_url, batch=50), "victim:1", ["a"]).start()
sys.stdin.read()
"""


def test_a_killed_worker_s_entries_are_reclaimed(streams: Streams, sinks: Sinks, pg_url: str) -> None:
    """kill -9 of a worker holding a read batch: a live sink writes those entries, and every order lands once."""
    streams.add(*(entry(f"a-{n}") for n in range(1, 1001)))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrate(conn)
    with psycopg.connect(pg_url) as locker:
        locker.execute("LOCK TABLE orders IN EXCLUSIVE MODE")  # the victim reads a batch, then waits to write it
        victim = subprocess.Popen(
            [sys.executable, "-c", VICTIM, streams.url, streams.prefix, pg_url], cwd=ROOT, stdin=subprocess.PIPE
        )
        try:
            wait_for(lambda: streams.pending("a") == 50, "the victim reads its first batch")
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            assert victim.stdin is not None
            victim.stdin.close()
    consumers = {c["name"]: c["pending"] for c in streams.client.xinfo_consumers(streams.key("a"), GROUP)}
    assert consumers == {"victim:1": 50}
    sink = sinks.start(["a"], claim_idle=0.3)
    assert sink.drain(30)
    assert sorted(stored(pg_url)) == sorted(f"a-{n}" for n in range(1, 1001))
    assert (streams.pending("a"), sink.gauges.reclaimed) == (0, 50)


def test_a_restarted_consumer_writes_its_own_pending_entries_first(streams: Streams, sinks: Sinks, pg_url: str) -> None:
    """A sink that comes back under the same name (same host and pid, as in a container) needs no claim_idle."""
    streams.add(*(entry(f"a-{n}") for n in range(1, 101)))
    streams.client.xgroup_create(streams.key("a"), GROUP, id="0")
    streams.client.xreadgroup(GROUP, "w:1", {streams.key("a"): ">"}, count=30)
    sink = sinks.start(["a"], name="w:1", claim_idle=60)
    assert sink.drain(30)
    assert len(stored(pg_url)) == 100
    assert (streams.pending("a"), sink.gauges.reclaimed) == (0, 0)
