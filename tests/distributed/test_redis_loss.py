"""A Redis without persistence killed mid-sale and restarted empty: the sale comes back from PostgreSQL, not re-sold."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from flashsale import (
    Config,
    LimitsConfig,
    ManualClock,
    PostgresConfig,
    RedisConfig,
    SaleEngine,
    SkuConfig,
    TransitionRefused,
    Unavailable,
    UnknownOrder,
)
from flashsale.actors import order_number
from flashsale.config import RoomConfig
from flashsale.redis import RoomSeeds
from flashsale.room import UnknownTicket
from flashsale.testing import RedisServer, free_port, wait_until
from tests.conftest import T0

STOCK = 5


@pytest.fixture
def volatile() -> Iterator[RedisServer]:
    """A redis-server with no AOF and no snapshots: a restart comes back empty."""
    with RedisServer(appendfsync=None) as server:
        yield server


def sale(redis_url: str, pg_url: str) -> Config:
    return Config(
        skus=(SkuConfig("hot", stock=STOCK, per_user_limit=1),),
        limits=LimitsConfig(),
        tick_interval=0,
        backend="redis",
        redis=RedisConfig(url=redis_url, prefix="loss", breaker_reset=0.2),
        postgres=PostgresConfig(url=pg_url, batch=50, claim_idle=1.0),
    )


@contextlib.asynccontextmanager
async def running(config: Config, clock: ManualClock) -> AsyncIterator[SaleEngine]:
    engine = SaleEngine(config, clock=clock)
    await engine.start()
    try:
        await asyncio.to_thread(wait_until, lambda: engine.readiness()["postgres_ok"], 20.0, "the order sink")
        yield engine
    finally:
        await engine.stop(grace=5.0)


def held_in_postgres(pg_url: str) -> int:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT coalesce(sum(qty), 0) FROM orders WHERE status IN ('reserved', 'paid')").fetchone()
    assert row is not None
    return int(row[0])


async def test_lost_redis_state_is_rebuilt_and_never_resold(
    volatile: RedisServer, pg_url: str, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Kill Redis mid-sale, restart it empty: stock, limits and live orders come back; the record stays within stock."""
    config = sale(volatile.url, pg_url)
    async with running(config, clock) as engine:
        first = [await engine.purchase("hot", f"early-{i}") for i in range(3)]
        assert [o.result for o in first] == ["reserved"] * 3
        paid = await engine.pay(first[0].order_id, user="early-0")  # type: ignore[arg-type]
        await engine.flush()
        mid = asyncio.gather(*(engine.purchase("hot", f"mid-{i}") for i in range(10)))
        await asyncio.to_thread(volatile.kill)  # mid-sale: some of these may be confirmed and lost with the stream
        outcomes = await mid
        assert {o.result for o in outcomes} <= {"reserved", "sold_out", "unavailable"}
    volatile.start()  # empty
    caplog.set_level(logging.WARNING, logger="flashsale.rebuild")
    async with running(config, clock) as engine:
        (rebuilt,) = [r for r in caplog.records if r.name == "flashsale.rebuild"]
        assert rebuilt.getMessage() == "redis had lost the sale: rebuilt from postgresql"
        assert (rebuilt.sku, rebuilt.paid, rebuilt.orders_missing >= 0) == ("hot", 1, True)  # type: ignore[attr-defined]
        view = engine.view("hot")
        assert (view.stock, view.paid) == (STOCK, 1)
        assert view.reserved + view.paid == held_in_postgres(pg_url)
        again = await engine.purchase("hot", "early-0")
        assert again.result == "limit_reached"  # per-user totals came back
        assert (await engine.order(paid.order_id, user="early-0")) == paid  # a final order: from PostgreSQL
        with pytest.raises(UnknownOrder):
            await engine.order(paid.order_id, user="early-1")  # still only its buyer's
        with pytest.raises(TransitionRefused):
            await engine.cancel(paid.order_id, user="early-0")
        assert (await engine.pay(first[1].order_id, user="early-1")).status == "paid"  # type: ignore[arg-type]  # a live order
        late = await asyncio.gather(*(engine.purchase("hot", f"late-{i}") for i in range(20)))
        sold = [o for o in late if o.result == "reserved"]
        assert len(sold) == view.remaining
        assert all(order_number(o.order_id, "hot") > 1_000_000 for o in sold)  # type: ignore[union-attr]
        await engine.flush()
    assert held_in_postgres(pg_url) <= STOCK


async def test_a_lost_sale_with_postgres_unreadable_refuses_to_start(
    volatile: RedisServer, pg_url: str, clock: ManualClock
) -> None:
    """Redis has no sale and PostgreSQL does not answer: the worker will not start a sale that may have sold."""
    config = sale(volatile.url, f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    engine = SaleEngine(config, clock=clock)
    with pytest.raises(Unavailable, match="redis has no sale for sku hot and postgresql cannot be read"):
        await engine.start()


async def test_a_room_lost_with_redis_opens_again_under_its_commitment(
    volatile: RedisServer, pg_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    """Redis restarts empty: the room's tickets are gone, its seed is not (PostgreSQL keeps it).

    The restarted room shows the commitment buyers were shown, reveals the
    same seed at its draw, and the passes it gave before still admit their
    buyers. The tickets themselves lived only in Redis: their holders join
    again.
    """
    key = tmp_path / "room.key"
    key.write_bytes(b"the room key every worker shares")
    room = RoomConfig(opens_at=T0, starts_at=T0 + 10_000_000, admit_rate=10.0, admit_burst=5, secret_file=str(key))
    config = replace(sale(volatile.url, pg_url), waiting_room=room)
    async with running(config, clock) as engine:
        committed = engine.room_status().commitment
        held, _ = await engine.join("early")
        clock.advance(10)
        await engine.room_tick()
        held = engine.ticket(held.ticket, "early")
        assert held.state == "admitted"
        seed = engine.room_status().seed
        assert seed is not None
    await asyncio.to_thread(volatile.kill)
    volatile.start()  # empty
    async with running(config, clock) as engine:
        assert engine.room_status().commitment == committed
        with pytest.raises(UnknownTicket):
            engine.ticket(held.ticket, "early")
        assert engine.check_pass(held.admission_pass, "early") == ("", "")
        assert engine.check_pass(held.admission_pass, "late")[0] == "invalid_pass"  # still its buyer's only
        fresh, created = await engine.join("late")
        assert created
        await engine.room_tick()
        status = engine.room_status()
        assert status.seed == seed
        assert hashlib.sha256(bytes.fromhex(seed)).hexdigest() == committed
        assert engine.ticket(fresh.ticket, "late").state == "admitted"


def test_a_room_seed_is_kept_per_sale_and_per_room(pg_url: str) -> None:
    """``room_seeds`` is keyed by sale (a new prefix is a new sale); a seed is offered only to its own room.

    A room with another ``starts_at`` under the same sale is a new room: an
    earlier room's seed (revealed by its draw) is never offered to it, and
    its own seed replaces the row.
    """
    seeds = RoomSeeds(PostgresConfig(url=pg_url), "one-sale")
    assert seeds.kept(T0) is None
    seeds.keep(b"\x01" * 32, T0)
    seeds.keep(b"\x02" * 32, T0)  # recorded once per room: a later, different seed does not replace it
    assert seeds.kept(T0) == b"\x01" * 32
    assert RoomSeeds(PostgresConfig(url=pg_url), "another-sale").kept(T0) is None
    assert seeds.kept(T0 + 1) is None  # another room of the same sale
    seeds.keep(b"\x03" * 32, T0 + 1)
    assert seeds.kept(T0 + 1) == b"\x03" * 32
    assert seeds.kept(T0) is None
