"""OrderSink: orders from the per-SKU Redis Streams into PostgreSQL, at least once.

In ``backend = "redis"`` an order is confirmed when the ledger's Lua call has
appended it to its SKU's stream ``P:{S}:orders``. Every worker runs one sink:
a thread that reads those streams as consumer ``<hostname>:<pid>`` of the
group ``writers``, writes what it read to PostgreSQL in one transaction
(:data:`engine._pgschema.APPLY`: redelivery and reordering are harmless),
and only after ``COMMIT`` acknowledges and deletes the entries (``XACK`` +
``XDEL``). So each stream holds exactly the entries not yet in PostgreSQL,
and its length is the sink's backlog. A crash between ``COMMIT`` and
``XACK`` redelivers the entries; applying them again changes nothing.

Entries a consumer read and never acknowledged (its worker died) stay
pending in the group. Every ``claim_idle / 2`` seconds each sink takes over
(``XAUTOCLAIM``) the entries idle for longer than ``claim_idle`` and writes
them like its own.

When PostgreSQL or Redis fails (down, or slower than its timeouts) the sink
keeps what it read, reports it (:class:`SinkGauges`), and retries with
doubling waits capped at ``redis.breaker_reset``; it never spins. Entries it
could not write stay pending in Redis, so nothing is lost when the worker
dies meanwhile. It resumes by itself when the server is back. While idle it
checks PostgreSQL every :data:`PROBE_EVERY` seconds, so ``/readyz`` shows an
outage before the next order does.

All Redis and PostgreSQL calls happen in the sink's own thread, except
:meth:`OrderSink.drain` (for tests and tools), which uses a client of its
own in the calling thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson
import psycopg
import redis
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from redis.backoff import NoBackoff
from redis.retry import Retry

from flashsale.config import PostgresConfig, RedisConfig

from ._schema import APPLY, CLASHES, REJECT, OrderRow, apply_params, merge, migrate, sale_key
from ._sink_gauges import STALL_AFTER, SinkGauges
from ._sink_stream import GROUP, _Batch, drained, last_ids, stream_key

log = logging.getLogger("flashsale.sink")
T = TypeVar("T")

IDLE_WAIT = 0.05  # seconds before the next read when the last one found less than a full batch
FIRST_BACKOFF = 0.05  # first wait after a failure; doubled up to redis.breaker_reset
PROBE_EVERY = 1.0  # seconds without a write after which an idle sink checks PostgreSQL with SELECT 1
KEYS_EVERY = 1.0  # seconds between reads of the live idempotency key counts (P:{S}:keys n)
WATCH_EVERY = 0.5  # seconds between the watch thread's looks at a call in progress
# Bounds on every PostgreSQL call, unless the URL sets its own (libpq rounds connect_timeout up to 2 s).
PG_DEFAULTS = {
    "connect_timeout": "2",
    "options": "-c statement_timeout=5000",
    "application_name": "flashsale-sink",
}


class OrderSink:
    """Moves order entries of ``skus``' streams into PostgreSQL; see the module docstring.

    ``start()`` returns at once: connecting, migrating the schema and creating
    the consumer group happen in the sink's thread, retried until they work.
    ``stop()`` writes and acknowledges what was read, then closes.
    """

    def __init__(
        self, redis_config: RedisConfig, postgres: PostgresConfig, consumer_name: str, skus: Sequence[str]
    ) -> None:
        if not skus:
            raise ValueError("an order sink needs at least one SKU")
        self._redis_config = redis_config
        self._postgres = postgres
        self.sale = sale_key(postgres, redis_config)
        self.consumer = consumer_name
        self._streams = {stream_key(redis_config.prefix, sku): sku for sku in skus}
        self._count = max(1, postgres.batch // len(self._streams))  # entries per stream per read
        self._claim_every = postgres.claim_idle / 2
        self.gauges = SinkGauges()
        self.answered = threading.Event()
        """Set once PostgreSQL first answered the sink's thread, or its first try failed: a worker serves after it."""
        self._stopping = threading.Event()
        self._progress = threading.Condition()
        self._thread: threading.Thread | None = None
        # Owned by the sink's thread:
        self._redis: redis.Redis | None = None
        self._pg: psycopg.Connection[tuple[Any, ...]] | None = None
        self._groups_ready = False
        self._own_pending = True  # entries read under this name before (a restart, a lost reply) come first
        self._claim_cursors: dict[str, str] = {}
        self._next_claim = 0.0
        self._next_keys_read = 0.0
        self._held: _Batch | None = None
        self._pg_seen = 0.0  # when PostgreSQL last answered (monotonic)
        self._pg_outage = False  # logged once per outage, and once when it ends
        self._outage_lock = threading.Lock()  # the watch thread marks a hanging call as an outage too
        self._redis_outage = False
        self._bug_logged = False

    def start(self) -> None:
        """Start the sink's thread."""
        if self._thread is not None:
            raise RuntimeError("the order sink was already started")
        self._thread = threading.Thread(target=self._run, name=f"order-sink {self.consumer}", daemon=True)
        self._thread.start()
        threading.Thread(target=self._watch, name=f"order-sink watch {self.consumer}", daemon=True).start()

    def _watch(self) -> None:
        """Log a PostgreSQL call that hangs as an outage, as a failed one is (a stopped server answers nothing)."""
        while not self._stopping.wait(WATCH_EVERY):
            busy = self.gauges.busy_since
            with self._outage_lock:
                if busy is None or self._pg_outage or time.monotonic() - busy < STALL_AFTER:
                    continue
                self._pg_outage = True  # the call's return (or failure) logs the end, as for a stopped server
            log.error(
                "postgresql unavailable",
                extra={"consumer": self.consumer, "error": f"no answer for {STALL_AFTER:g} s"},
            )

    def stop(self, timeout: float = 5.0) -> None:
        """Write and acknowledge what was read, then close; give up waiting after ``timeout`` seconds.

        Entries not written by then stay pending in Redis: another sink (or
        this worker's next run) takes them over.
        """
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("order sink did not stop in time", extra={"pending": self.gauges.pending})

    def drain(self, timeout: float) -> bool:
        """Wait until every entry now in the streams is in PostgreSQL and acknowledged; false on timeout.

        Blocks the calling thread (use ``asyncio.to_thread`` on a loop).
        """
        deadline = time.monotonic() + timeout
        client = self._connect_redis()
        targets: dict[str, str] | None = None
        try:
            while True:
                targets = targets if targets is not None else last_ids(client, self._streams)
                if targets is not None and drained(client, targets):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                with self._progress:  # woken by each acknowledged batch; re-checked at least every IDLE_WAIT
                    self._progress.wait(min(remaining, IDLE_WAIT))
        finally:
            client.close()

    # The sink's thread.

    def _run(self) -> None:
        backoff = FIRST_BACKOFF
        while not (self._stopping.is_set() and self._held is None):
            try:
                worked = self._step()
            except Exception as exc:  # any failure: report, wait, retry; the thread must not die
                self._failed(exc)
                if self._stopping.is_set():
                    break  # what was read stays pending in Redis and is reclaimed
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, max(self._redis_config.breaker_reset, FIRST_BACKOFF))
                continue
            backoff = FIRST_BACKOFF
            self._bug_logged = False
            if not worked:
                self._stopping.wait(IDLE_WAIT)
        self._close()

    def _step(self) -> bool:
        """Do the next piece of work; false when the next read should wait.

        It waits after a read that found less than a full stream's worth: under
        a steady trickle of orders the batches grow instead of the round trips.
        """
        if self._pg is None:
            self._pg = self._pg_call(self._connect_pg)
        if self._redis is None:
            self._redis = self._connect_redis()
        if not self._groups_ready:
            self._create_groups(self._redis)
        batch = self._held
        if batch is None:
            if self._stopping.is_set():
                return False
            batch = self._read(self._redis)
            if batch is None:
                if time.monotonic() - self._pg_seen >= PROBE_EVERY:  # idle: still check PostgreSQL is there
                    self._pg_call(self._probe)
                return False
            self._held = batch
            self.gauges.pending = batch.size
        if not batch.committed:
            self._pg_call(lambda: self._commit(batch))
            batch.committed = True
        self._acknowledge(self._redis, batch)
        self._held = None
        self.gauges.pending = 0
        self.gauges.committed += batch.size
        self.gauges.rejected += len(batch.rejects) + batch.clashes
        with self._progress:
            self._progress.notify_all()
        return batch.size >= self._count

    def _pg_call(self, call: Callable[[], T]) -> T:
        """Run a PostgreSQL call, timing it for the stall check and marking the server up when it answers."""
        self.gauges.busy_since = time.monotonic()
        try:
            result = call()
        finally:
            self.gauges.busy_since = None
        self._pg_seen = time.monotonic()
        with self._outage_lock:
            ended, self._pg_outage = self._pg_outage, False
        if ended:
            log.info("postgresql available again", extra={"consumer": self.consumer})
        self.gauges.pg_up = True
        self.answered.set()
        return result

    def _connect_pg(self) -> psycopg.Connection[tuple[Any, ...]]:
        params = conninfo_to_dict(self._postgres.url)
        for key, value in PG_DEFAULTS.items():
            params.setdefault(key, value)
        conn = psycopg.connect(make_conninfo("", **params), autocommit=True)
        try:
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_redis(self) -> redis.Redis:
        timeout = self._redis_config.timeout
        return redis.Redis.from_url(
            self._redis_config.url,
            decode_responses=True,
            protocol=2,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # the sink's loop retries, with back-off
        )

    def _create_groups(self, client: redis.Redis) -> None:
        for stream in self._streams:
            try:
                client.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._redis_up()
        self._groups_ready = True

    def _read(self, client: redis.Redis) -> _Batch | None:
        """Entries to write next: reclaimed ones when a claim is due, then this consumer's own, then new ones."""
        now = time.monotonic()
        if not self._claim_cursors and now >= self._next_claim:
            self._claim_cursors = dict.fromkeys(self._streams, "0-0")
            self._next_claim = now + self._claim_every
        if self._claim_cursors:
            batch = self._reclaim(client)
            if batch is not None:
                return batch
        start = "0" if self._own_pending else ">"
        pipe = client.pipeline(transaction=False)
        for stream in self._streams:
            pipe.xreadgroup(GROUP, self.consumer, {stream: start}, count=self._count)
        count_keys = now >= self._next_keys_read
        if count_keys:  # the key table's fill for /metrics, in the same round trip
            self._next_keys_read = now + KEYS_EVERY
            for stream in self._streams:
                pipe.hget(stream.removesuffix("orders") + "keys", "n")
        replies = pipe.execute()
        self._redis_up()
        if count_keys:
            counts, replies = replies[len(self._streams) :], replies[: len(self._streams)]
            self.gauges.idempotency_keys = sum(int(n or 0) for n in counts)
        batch = _Batch()
        for reply in replies:
            for stream, entries in reply or ():
                batch.add(stream, self._streams[stream], entries)
        if batch.size == 0:
            self._own_pending = False
            return None
        return batch

    def _reclaim(self, client: redis.Redis) -> _Batch | None:
        """One page of ``XAUTOCLAIM`` per stream still being swept; ``None`` when none was idle long enough."""
        idle_ms = int(self._postgres.claim_idle * 1000)
        pipe = client.pipeline(transaction=False)
        for stream, cursor in self._claim_cursors.items():
            pipe.xautoclaim(stream, GROUP, self.consumer, idle_ms, cursor, count=self._count)
        replies = pipe.execute()
        self._redis_up()
        batch = _Batch()
        taken = 0
        for stream, reply in zip(list(self._claim_cursors), replies, strict=True):
            cursor, entries = reply[0], reply[1]
            if cursor == "0-0":
                del self._claim_cursors[stream]
            else:
                self._claim_cursors[stream] = cursor
            taken += batch.add(stream, self._streams[stream], entries)
        if taken == 0:
            return None
        self.gauges.reclaimed += taken
        log.info("reclaimed idle order entries", extra={"consumer": self.consumer, "count": taken})
        return batch

    def _probe(self) -> None:
        assert self._pg is not None
        self._pg.execute("SELECT 1")

    def _commit(self, batch: _Batch) -> None:
        assert self._pg is not None
        rows, clashes = merge(batch.rows)
        with self._pg.transaction():
            if rows:
                params = apply_params(self.sale, rows)
                self._pg.execute(APPLY, params)
                # After APPLY, in its transaction: every row stored under an id, ours included, is visible.
                stored = {r[0]: r for r in self._pg.execute(CLASHES, params).fetchall()}
                clashes += [row for row in rows if row.order_id in stored]
            rejects = batch.rejects + [self._clash(batch, row) for row in clashes]
            if rejects:
                self._pg.cursor().executemany(REJECT, rejects)
        if batch.rejects:
            log.error("malformed order entries kept in order_rejects", extra={"count": len(batch.rejects)})
        if clashes:
            log.error(
                "order ids already stored for other orders of this sale: kept in order_rejects, not applied",
                extra={"sale": self.sale, "count": len(clashes), "first": sorted({r.order_id for r in clashes})[:10]},
            )
        batch.clashes = len(clashes)

    def _clash(self, batch: _Batch, row: OrderRow) -> tuple[str, str, str, str]:
        """An ``order_rejects`` row for an order whose id is stored for another order of the sale."""
        stream, entry_id = batch.origin.get(row.order_id, ("", ""))
        return (
            stream,
            f"{entry_id}/{row.order_id}",
            orjson.dumps(dict(zip(("order_id", "sku", "user", "qty", "status", "created_at", "expires_at",
                                   "changed_at", "idempotency_key"), row, strict=True))).decode(),
            f"order id {row.order_id!r} of sale {self.sale!r} is stored for another order"
            " (another buyer, quantity or time): not applied",
        )  # fmt: skip

    def _acknowledge(self, client: redis.Redis, batch: _Batch) -> None:
        pipe = client.pipeline(transaction=False)
        for stream, ids in batch.ids.items():
            pipe.xack(stream, GROUP, *ids)
            pipe.xdel(stream, *ids)
        pipe.execute()
        self._redis_up()

    def _redis_up(self) -> None:
        if self._redis_outage:
            log.info("redis available again", extra={"consumer": self.consumer})
            self._redis_outage = False
        self.gauges.redis_ok = True

    def _failed(self, exc: Exception) -> None:
        """Count a failure, log the first of an outage, and drop the connection it broke."""
        self.gauges.failures += 1
        self.answered.set()  # a worker need not wait for a server that failed: its purchases say unavailable
        if isinstance(exc, psycopg.Error):
            with self._outage_lock:
                began, self._pg_outage = not self._pg_outage, True
            if began:
                log.error("postgresql unavailable", extra={"consumer": self.consumer, "error": str(exc)})
            self.gauges.pg_up = False
            if self._pg is not None:
                self._pg.close()
                self._pg = None
        elif isinstance(exc, redis.RedisError):
            if not self._redis_outage:
                log.error("redis unavailable", extra={"consumer": self.consumer, "error": str(exc)})
                self._redis_outage = True
            self.gauges.redis_ok = False
            self._groups_ready = False  # a Redis that lost its data lost the group too
            self._own_pending = True  # a read whose reply was lost left entries pending under this name
        elif not self._bug_logged:  # a failure of neither server: a bug; its traceback once per streak
            log.exception("order sink failed", extra={"consumer": self.consumer})
            self._bug_logged = True

    def _close(self) -> None:
        if self._pg is not None:
            self._pg.close()
            self._pg = None
        if self._redis is not None:
            self._redis.close()
            self._redis = None
        self.gauges.pg_up = False
        self.gauges.redis_ok = False
