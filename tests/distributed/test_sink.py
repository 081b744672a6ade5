"""OrderSink against real Redis and PostgreSQL: entries land once, the apply rule holds, entries are acknowledged."""

from __future__ import annotations

import threading

import orjson
import psycopg

from flashsale.redis._schema import migrate
from flashsale.redis._sink_stream import _entry_id
from tests.distributed.sinkkit import (  # noqa: F401
    T0,
    Sinks,
    Streams,
    entry,
    packed,
    sinks_fixture,
    statuses,
    stored,
    streams_fixture,
    wait_for,
)

SKUS = ("moutai-53", "tshirt", "cap")


def test_every_entry_lands_once_and_leaves_the_stream(streams: Streams, sinks: Sinks, pg_url: str) -> None:
    """750 orders on three SKUs are 750 rows; the streams end empty with nothing pending."""
    streams.add(*(entry(f"{sku}-{n}", user=f"user{n}", qty=1 + n % 3) for sku in SKUS for n in range(1, 251)))
    sink = sinks.start(SKUS)
    assert sink.drain(30)
    rows = stored(pg_url)
    assert len(rows) == 750
    assert rows["tshirt-7"] == ("tshirt", "user7", 2, "reserved", T0 + 7, T0 + 7 + 900_000_000, T0 + 7, None)
    assert [streams.length(sku) for sku in SKUS] == [0, 0, 0]
    assert [streams.pending(sku) for sku in SKUS] == [0, 0, 0]
    assert (sink.gauges.committed, sink.gauges.pending, sink.gauges.ok) == (750, 0, True)


def test_entries_added_while_running_land(streams: Streams, sinks: Sinks, pg_url: str) -> None:
    """A running sink picks up new entries; drain covers everything added before the call."""
    sink = sinks.start(["a"])
    for wave in range(3):
        streams.add(*(entry(f"a-{wave * 100 + n}", key=f"k{n}") for n in range(1, 101)))
        assert sink.drain(30)
        assert len(stored(pg_url)) == (wave + 1) * 100
    assert stored(pg_url)["a-205"][7] == "k5"


def test_changes_apply_in_any_order_and_any_number_of_times(streams: Streams, sinks: Sinks, pg_url: str) -> None:
    """Final statuses win over reserved whatever the order, never change again, and repeats change nothing."""
    sink = sinks.start(["a"])
    streams.add(
        entry("a-1"), entry("a-1", "paid"),  # in order, one batch
        entry("a-2", "cancelled"), entry("a-2"),  # the change before the order
        entry("a-3"), entry("a-3", "expired"), entry("a-3", "paid"),  # a second final status is ignored
        entry("a-4"), entry("a-4"),  # a redelivery
    )  # fmt: skip
    assert sink.drain(30)
    streams.add(entry("a-4", "cancelled"), entry("a-1"), entry("a-2", "paid"), entry("a-5"))  # later batches
    assert sink.drain(30)
    streams.add(entry("a-5", "expired"), entry("a-5"))
    assert sink.drain(30)
    assert statuses(pg_url) == {
        "a-1": "paid",
        "a-2": "cancelled",
        "a-3": "expired",
        "a-4": "cancelled",
        "a-5": "expired",
    }
    changed = {order_id: row[6] for order_id, row in stored(pg_url).items()}
    assert changed["a-1"] == T0 + 1 + 1_000_000  # the final change's time, not the late reserved copy's
    assert sink.gauges.committed == 15


def test_malformed_entries_are_kept_aside_and_acknowledged(streams: Streams, sinks: Sinks, pg_url: str) -> None:
    """Entries that cannot be orders go to order_rejects with the reason; the good ones beside them land."""
    bad_status = entry("a-2") | {"status": "shipped"}
    no_qty = {k: v for k, v in entry("a-3").items() if k != "qty"}
    key = streams.key("a")
    streams.client.xadd(key, packed(entry("b-4")))  # type: ignore[arg-type]
    streams.add(entry("a-1"), bad_status, entry("a-5") | {"qty": "0"}, entry("a-6") | {"user": "x\x00y"})
    streams.client.xadd(key, no_qty)  # type: ignore[arg-type]  # one order by field, as earlier versions wrote
    mixed = packed(entry("a-7"), entry("a-8") | {"created_at": "soon"}, entry("a-9"))
    streams.client.xadd(key, mixed)  # type: ignore[arg-type]
    streams.client.xadd(key, {"sku": "a", "rows": '[["a-10"], 3]'})
    streams.client.xadd(key, {"sku": "a", "rows": "[["})
    sink = sinks.start(["a"])
    assert sink.drain(30)
    assert statuses(pg_url) == {"a-1": "reserved", "a-7": "reserved", "a-9": "reserved"}
    with psycopg.connect(pg_url) as conn:
        found = conn.execute("SELECT entry_id, fields::text, reason FROM order_rejects").fetchall()
    rejects = [(fields, reason) for _, fields, reason in sorted(found, key=lambda r: _entry_id(r[0]))]
    assert [reason for _, reason in rejects] == [
        "sku 'b' in the stream of 'a'",
        "row 0: unknown status 'shipped'",
        "row 0: qty must be 1..2147483647, got 0",
        "row 0: a NUL character in user",
        "missing qty",
        "row 1: created_at is not an integer: 'soon'",
        "row 0: not 8 strings; row 1: not 8 strings",
        "rows is not JSON",
    ]
    assert orjson.loads(rejects[5][0]) == mixed  # kept whole: a-7 and a-9 landed all the same
    assert (streams.length("a"), streams.pending("a"), sink.gauges.rejected) == (0, 0, 8)


def test_stop_writes_what_it_read(streams: Streams, sinks: Sinks, pg_url: str) -> None:
    """stop() waits for the batch in hand to commit and acknowledges it: nothing stays pending under its name."""
    streams.add(*(entry(f"a-{n}") for n in range(1, 2001)))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrate(conn)
    with psycopg.connect(pg_url) as locker:
        locker.execute("LOCK TABLE orders IN EXCLUSIVE MODE")  # the sink's INSERT waits for this
        sink = sinks.start(["a"], batch=50)
        wait_for(lambda: streams.pending("a") == 50, "the sink reads its first batch")
        stopping = threading.Thread(target=sink.stop)
        stopping.start()
        locker.rollback()
        stopping.join()
    assert streams.pending("a") == 0
    assert len(stored(pg_url)) + streams.length("a") == 2000
    assert len(stored(pg_url)) >= 50
    assert (sink.gauges.pending, sink.gauges.ok) == (0, False)
