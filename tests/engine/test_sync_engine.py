"""SyncSaleEngine: the blocking face of the engine, safe to call from many threads."""

from __future__ import annotations

import gc
import hashlib
import threading
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from flashsale import (
    Config,
    InvalidRequest,
    ManualClock,
    SkuConfig,
    StoreConfig,
    SyncSaleEngine,
    TickReport,
    Unavailable,
    UnknownOrder,
)
from flashsale.actors._room_passes import solve
from flashsale.config import RoomConfig
from flashsale.room import RoomRefused, UnknownTicket
from tests.conftest import MakeConfig, read_orders

T0 = 1_767_225_600_000_000
STARTS = T0 + 10_000_000


def test_blocking_calls(make_config: MakeConfig, clock: ManualClock, db_path: Path) -> None:
    """purchase, sku_status, order and restock block until answered, on the given clock."""
    with SyncSaleEngine(make_config(SkuConfig("a", 2)), clock=clock) as engine:
        outcome = engine.purchase("a", "u1", 2, idempotency_key="k", client_ip="10.0.0.1")
        assert outcome.result == "reserved"
        assert engine.purchase("a", "u1", 2, idempotency_key="k") == outcome
        assert engine.purchase("a", "u2").result == "sold_out"
        order = engine.order(outcome.order_id or "", user="u1")
        assert (order.user, order.qty, order.created_at) == ("u1", 2, clock.now)
        with pytest.raises(UnknownOrder):
            engine.order("a-99", user="u1")
        assert engine.restock("a", 1).remaining == 1
        assert engine.sku_status("a").state == "on_sale"
        engine.flush()
        assert read_orders(db_path) == [order]
        assert engine.tick() == TickReport(expired=0, released=0, queued=0)
        clock.advance(engine.engine.config.skus[0].payment_timeout)
        assert engine.tick() == TickReport(expired=1, released=0, queued=0)
        assert engine.sku_status("a").remaining == 3


def test_many_threads_sell_exactly_the_stock(make_config: MakeConfig, db_path: Path) -> None:
    """Purchases from 8 threads at once sell exactly the stock, within each buyer's limit."""
    with (
        SyncSaleEngine(make_config(SkuConfig("a", 100, per_user_limit=2))) as engine,
        ThreadPoolExecutor(max_workers=8) as pool,
    ):
        outcomes = list(pool.map(lambda i: engine.purchase("a", f"u{i % 80}"), range(400)))
        status = engine.sku_status("a")
    assert Counter(o.result for o in outcomes)["reserved"] == 100
    assert (status.remaining, status.reserved) == (0, 100)
    per_user = Counter(o.user for o in read_orders(db_path))
    assert sum(per_user.values()) == 100
    assert max(per_user.values()) <= 2


def test_stop_is_idempotent_and_stops_every_thread(make_config: MakeConfig) -> None:
    """stop() twice is fine; afterwards no thread the engine started is left running."""
    before = threading.active_count()
    engine = SyncSaleEngine(make_config(SkuConfig("a", 1)))
    engine.start()
    assert threading.active_count() > before
    engine.stop()
    engine.stop()
    assert threading.active_count() == before


def test_never_started_engine_leaves_nothing_behind(make_config: MakeConfig) -> None:
    """An engine made but never started can be stopped, and leaves no unclosed loop to warn about."""
    engine = SyncSaleEngine(make_config(SkuConfig("a", 1)))
    engine.stop()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del engine
        gc.collect()
    assert [str(w.message) for w in caught] == []


def test_failed_start_leaves_no_thread(tmp_path: Path) -> None:
    """When the store cannot be opened, start() raises Unavailable and stops its loop thread."""
    before = threading.active_count()
    config = Config(skus=(SkuConfig("a", 1),), store=StoreConfig(path=str(tmp_path)))  # a folder, not a file
    with pytest.raises(Unavailable), SyncSaleEngine(config):
        pass
    assert threading.active_count() == before


def _room_sale(db_path: Path, **room: object) -> Config:
    return Config(
        skus=(SkuConfig("a", 3, per_user_limit=1),),
        store=StoreConfig(path=str(db_path)),
        tick_interval=0.0,
        waiting_room=RoomConfig(opens_at=T0, starts_at=STARTS, admit_rate=2.0, admit_burst=2, **room),  # type: ignore[arg-type]
    )


def test_the_waiting_room_blocking(db_path: Path) -> None:
    """join, ticket, room_status, room_draw, room_tick, check_pass and the steering calls block until answered."""
    clock = ManualClock(T0)
    with SyncSaleEngine(_room_sale(db_path), clock=clock, room_seed=bytes(range(32))) as engine:
        tickets = {}
        for user in ("alice", "bob", "carol"):
            ticket, created = engine.join(user)
            assert (created, ticket.state) == (True, "pre_queue")
            tickets[user] = ticket.ticket
        again, created = engine.join("alice")
        assert (again.ticket, created) == (tickets["alice"], False)
        with pytest.raises(UnknownTicket):
            engine.ticket(tickets["alice"], "bob")
        with pytest.raises(RoomRefused) as refused:
            engine.room_draw()
        assert refused.value.code == "draw_not_done"
        with pytest.raises(RoomRefused):
            engine.room_challenge()  # pow_bits = 0: no challenge
        status = engine.room_status()
        assert (status.state, status.waiting, status.seed) == ("pre_queue", 3, None)

        clock.set(STARTS)
        report = engine.room_tick()
        assert len(report.admitted) == 2  # the burst
        draw = engine.room_draw()
        seed = bytes.fromhex(draw.seed)
        assert hashlib.sha256(seed).hexdigest() == draw.commitment == status.commitment
        assert list(draw.tickets) == sorted(tickets.values(), key=lambda t: hashlib.sha256(seed + t.encode()).digest())
        first = {u: engine.ticket(t, u) for u, t in tickets.items()}
        admitted = [u for u, t in first.items() if t.state == "admitted"]
        assert len(admitted) == 2
        user = admitted[0]
        assert engine.check_pass(first[user].admission_pass, user) == ("", "")
        assert engine.check_pass(first[user].admission_pass, "mallory")[0] == "invalid_pass"
        assert engine.check_pass(None, user)[0] == "admission_required"

        assert engine.pause_room().paused
        clock.advance(5.0)
        assert engine.room_tick().admitted == ()
        assert engine.room_status().state == "paused"
        assert not engine.resume_room().paused
        assert engine.set_admit_rate(50.0).admit_rate == 50.0
        clock.advance(1.0)
        assert len(engine.room_tick().admitted) == 1
        with pytest.raises(InvalidRequest):
            engine.set_admit_rate(0)


def test_room_joins_from_many_threads(db_path: Path) -> None:
    """Joins from 8 threads at once: one ticket per buyer, whichever thread asks twice."""
    with (
        SyncSaleEngine(_room_sale(db_path), clock=ManualClock(T0)) as engine,
        ThreadPoolExecutor(max_workers=8) as pool,
    ):
        joined = list(pool.map(lambda i: engine.join(f"u{i % 50}"), range(200)))
        assert engine.room_status().waiting == 50
    by_user: dict[str, set[str]] = {}
    for n, (ticket, _) in enumerate(joined):
        by_user.setdefault(f"u{n % 50}", set()).add(ticket.ticket)
    assert all(len(ids) == 1 for ids in by_user.values())
    assert sum(created for _, created in joined) == 50


def test_a_proof_of_work_join_blocking(db_path: Path) -> None:
    """With pow_bits > 0 a blocking join takes a challenge from room_challenge and a solved nonce, once."""
    with SyncSaleEngine(_room_sale(db_path, pow_bits=6), clock=ManualClock(T0)) as engine:
        challenge = engine.room_challenge()
        assert challenge.bits == 6
        nonce = solve(challenge.challenge, 6)
        assert engine.join("alice", challenge=challenge.challenge, nonce=nonce)[1]
        with pytest.raises(RoomRefused) as refused:
            engine.join("bob", challenge=challenge.challenge, nonce=nonce)
        assert refused.value.code == "challenge_used"
