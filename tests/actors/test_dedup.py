"""The dedup actor: per-user limits in units, and idempotency keys scoped per user."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from flashsale import ManualClock, PurchaseRequest, SkuConfig
from tests.conftest import FlakyStore, MakeConfig, StartEngine, read_orders


async def test_limit_counts_units_not_requests(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """The per-user limit counts quantity: 2 + 2 is over a limit of 3, 2 + 1 is not."""
    engine = await start_engine(make_config(SkuConfig("a", 100, per_user_limit=3)))
    assert (await engine.purchase("a", "u1", 2)).result == "reserved"
    over = await engine.purchase("a", "u1", 2)
    assert over.result == "limit_reached"
    assert over.detail == "at most 3 per buyer; this buyer already holds 2"
    assert (await engine.purchase("a", "u1", 1)).result == "reserved"
    assert (await engine.purchase("a", "u1", 1)).result == "limit_reached"
    assert (await engine.purchase("a", "u2", 3)).result == "reserved"  # limits are per user
    assert (await engine.sku_status("a")).reserved == 6


async def test_limit_is_per_sku(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """A buyer at the limit of one SKU can still buy another; SKUs without a limit have none."""
    engine = await start_engine(make_config(SkuConfig("a", 100, per_user_limit=1), SkuConfig("b", 100)))
    assert (await engine.purchase("a", "u1")).result == "reserved"
    assert (await engine.purchase("a", "u1")).result == "limit_reached"
    assert [(await engine.purchase("b", "u1", 50)).result for _ in range(2)] == ["reserved", "reserved"]


async def test_concurrent_requests_of_one_user_never_double_reserve(
    make_config: MakeConfig, start_engine: StartEngine, db_path: Path
) -> None:
    """Many purchases of one user in one loop tick reserve no more than the limit."""
    engine = await start_engine(make_config(SkuConfig("a", 1000, per_user_limit=3)))
    outcomes = await asyncio.gather(*(engine.purchase("a", "u1", qty) for qty in [1, 2, 1, 1, 2, 1] * 20))
    reserved = sum(o.qty for o in outcomes if o.result == "reserved")
    assert reserved == 3
    assert Counter(o.result for o in outcomes).keys() == {"reserved", "limit_reached"}
    await engine.flush()
    assert sum(o.qty for o in read_orders(db_path)) == 3


async def test_concurrent_requests_of_many_users_each_within_limit(
    make_config: MakeConfig, start_engine: StartEngine
) -> None:
    """Interleaved bursts of several users: each user reserves exactly their limit."""
    engine = await start_engine(make_config(SkuConfig("a", 1000, per_user_limit=2)))
    outcomes = await asyncio.gather(*(engine.purchase("a", f"u{i % 7}") for i in range(140)))
    per_user = Counter(f"u{i % 7}" for i, o in enumerate(outcomes) if o.result == "reserved")
    assert per_user == {f"u{i}": 2 for i in range(7)}


async def test_hold_released_after_sold_out(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """A purchase that lost to sold_out releases its hold: the buyer can buy after a restock."""
    engine = await start_engine(make_config(SkuConfig("a", 1, per_user_limit=1)))
    first, second = await asyncio.gather(engine.purchase("a", "u1"), engine.purchase("a", "u2"))
    assert (first.result, second.result) == ("reserved", "sold_out")
    await engine.restock("a", 2)
    assert (await engine.purchase("a", "u2")).result == "reserved"
    assert (await engine.purchase("a", "u1")).result == "limit_reached"  # the winner's hold stays


async def test_hold_released_after_partial_sold_out(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """Asking for more than is left releases the whole hold of that request."""
    engine = await start_engine(make_config(SkuConfig("a", 3, per_user_limit=3)))
    assert (await engine.purchase("a", "u1", 2)).result == "reserved"
    too_many = await engine.purchase("a", "u2", 2)
    assert (too_many.result, too_many.detail) == ("sold_out", "only 1 left")
    await engine.restock("a", 5)
    assert (await engine.purchase("a", "u2", 3)).result == "reserved"


async def test_idempotent_replay_returns_identical_outcome(
    make_config: MakeConfig, start_engine: StartEngine, clock: ManualClock, db_path: Path
) -> None:
    """The same user and key get the very same Outcome again, and buy only once."""
    engine = await start_engine(make_config(SkuConfig("a", 10)))
    first = await engine.purchase("a", "u1", 2, idempotency_key="k1")
    assert first.result == "reserved"
    clock.advance(5)
    assert await engine.purchase("a", "u1", 2, idempotency_key="k1") == first
    assert (await engine.sku_status("a")).remaining == 8
    await engine.flush()
    assert [o.order_id for o in read_orders(db_path)] == [first.order_id]


async def test_concurrent_duplicates_of_a_key_share_one_answer(
    make_config: MakeConfig, start_engine: StartEngine
) -> None:
    """Duplicates of a key that arrive while the first is in flight wait for its answer."""
    engine = await start_engine(make_config(SkuConfig("a", 10)))
    outcomes = await asyncio.gather(*(engine.purchase("a", "u1", idempotency_key="k1") for _ in range(25)))
    assert outcomes[0].result == "reserved"
    assert set(outcomes) == {outcomes[0]}
    assert (await engine.sku_status("a")).reserved == 1


async def test_refusal_is_decided_again(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """A refused keyed purchase (sold_out) is forgotten: its retry buys once units came back, and only once."""
    engine = await start_engine(make_config(SkuConfig("a", 0)))
    first = await engine.purchase("a", "u1", idempotency_key="k1")
    assert first.result == "sold_out"
    await engine.restock("a", 1)
    again = await engine.purchase("a", "u1", idempotency_key="k1")
    assert again.result == "reserved"
    assert await engine.purchase("a", "u1", idempotency_key="k1") == again
    assert (await engine.sku_status("a")).reserved == 1


async def test_same_key_other_body_is_reused(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """The same key with another SKU or quantity is idempotency_key_reused and buys nothing."""
    engine = await start_engine(make_config(SkuConfig("a", 10), SkuConfig("b", 10)))
    assert (await engine.purchase("a", "u1", 1, idempotency_key="k")).result == "reserved"
    other_qty = await engine.purchase("a", "u1", 2, idempotency_key="k")
    other_sku = await engine.purchase("b", "u1", 1, idempotency_key="k")
    assert other_qty.result == other_sku.result == "idempotency_key_reused"
    assert "sku='a' qty=1" in other_qty.detail
    assert (other_sku.sku, other_sku.qty) == ("b", 1)
    assert (await engine.sku_status("a")).remaining == 9
    assert (await engine.sku_status("b")).remaining == 10


async def test_reused_key_in_one_tick(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """Within one tick the first request defines the key's body; a different body is reused."""
    engine = await start_engine(make_config(SkuConfig("a", 10)))
    first, dup, other = await asyncio.gather(
        engine.purchase("a", "u1", 1, idempotency_key="k"),
        engine.purchase("a", "u1", 1, idempotency_key="k"),
        engine.purchase("a", "u1", 3, idempotency_key="k"),
    )
    assert first.result == "reserved"
    assert dup == first
    assert other.result == "idempotency_key_reused"


async def test_keys_are_scoped_per_user(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """Two users with the same key are two purchases."""
    engine = await start_engine(make_config(SkuConfig("a", 10)))
    one = await engine.purchase("a", "u1", idempotency_key="k")
    two = await engine.purchase("a", "u2", idempotency_key="k")
    three = await engine.purchase("a", "u2", 2, idempotency_key="k")
    assert one.result == two.result == "reserved"
    assert one.order_id != two.order_id
    assert three.result == "idempotency_key_reused"


async def test_transient_outcome_not_remembered(
    make_config: MakeConfig, start_engine: StartEngine, flaky_store: FlakyStore
) -> None:
    """An unavailable answer is not replayed: the same key tries again once the store is back."""
    engine = await start_engine(make_config(SkuConfig("a", 10)), store=flaky_store)
    flaky_store.failing = True
    assert (await engine.purchase("a", "u1", idempotency_key="k")).result == "unavailable"
    flaky_store.failing = False
    retry = await engine.purchase("a", "u1", idempotency_key="k")
    assert retry.result == "reserved"
    assert await engine.purchase("a", "u1", idempotency_key="k") == retry


async def test_overloaded_at_the_gateway_is_not_remembered(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """A key answered overloaded (too many in flight) buys on retry."""
    engine = await start_engine(make_config(SkuConfig("a", 10), max_inflight=1))
    _, second = await asyncio.gather(engine.purchase("a", "u0"), engine.purchase("a", "u1", idempotency_key="k"))
    assert second.result == "overloaded"
    assert (await engine.purchase("a", "u1", idempotency_key="k")).result == "reserved"


async def test_full_key_table_refuses_its_biggest_holder(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """A full table gives a newcomer's key the slot of the biggest address's oldest settled key; known keys replay."""
    engine = await start_engine(make_config(SkuConfig("a", 10), max_idempotency_keys=2))
    one = await engine.purchase("a", "u1", idempotency_key="k1", client_ip="10.0.0.1")
    two = await engine.purchase("a", "u2", idempotency_key="k1", client_ip="10.0.0.1")
    refused = await engine.purchase("a", "u3", idempotency_key="k1", client_ip="10.0.0.1")
    assert (refused.result, refused.retry_after) == ("rate_limited", 1.0)
    assert "from this address" in refused.detail
    assert await engine.purchase("a", "u2", idempotency_key="k1", client_ip="10.0.0.1") == two
    other = await engine.purchase("a", "u4", idempotency_key="k1", client_ip="10.0.0.2")
    assert other.result == "reserved"  # took u1's slot: 10.0.0.1 held the most
    assert engine.key_gauges.live == 2
    assert engine.key_gauges.evicted == 1
    again = await engine.purchase("a", "u1", idempotency_key="k1", client_ip="10.0.0.1")
    assert (again.result, again.order_id != one.order_id) == ("rate_limited", True)  # decided again: still the top


async def test_key_bounds_per_buyer_and_address(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """Beyond its bound only that buyer (or address) is refused; everyone else keys as before."""
    engine = await start_engine(
        make_config(SkuConfig("a", 100), max_idempotency_keys_per_buyer=2, max_idempotency_keys_per_ip=3)
    )
    mine = [await engine.purchase("a", "u1", idempotency_key=f"k{i}", client_ip="10.0.0.1") for i in range(3)]
    assert [o.result for o in mine] == ["reserved", "reserved", "rate_limited"]
    assert "this buyer" in mine[2].detail
    assert (await engine.purchase("a", "u2", idempotency_key="k", client_ip="10.0.0.1")).result == "reserved"
    address = await engine.purchase("a", "u3", idempotency_key="k", client_ip="10.0.0.1")
    assert (address.result, "from this address" in address.detail) == ("rate_limited", True)
    assert (await engine.purchase("a", "u3", idempotency_key="k", client_ip="10.0.0.2")).result == "reserved"
    assert (await engine.purchase("a", "u1", client_ip="10.0.0.1")).result == "reserved"  # no key: unaffected
    assert engine.key_gauges.refused == {"buyer": 1, "address": 1, "full": 0}


async def test_final_order_frees_its_key(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """Paying or cancelling an order forgets its key: the buyer's slot is free again."""
    engine = await start_engine(make_config(SkuConfig("a", 100), max_idempotency_keys_per_buyer=1))
    first = await engine.purchase("a", "u1", idempotency_key="k1")
    assert (await engine.purchase("a", "u1", idempotency_key="k2")).result == "rate_limited"
    assert first.order_id is not None
    await engine.pay(first.order_id, user="u1")
    await engine.flush()
    second = await engine.purchase("a", "u1", idempotency_key="k2")
    assert second.result == "reserved"
    assert second.order_id is not None
    await engine.cancel(second.order_id, user="u1")
    await engine.flush()
    assert (await engine.purchase("a", "u1", idempotency_key="k3")).result == "reserved"
    assert engine.key_gauges.live == 1


async def test_keys_expire_by_message_time(
    make_config: MakeConfig, start_engine: StartEngine, clock: ManualClock
) -> None:
    """A key is replayed until idempotency_ttl after its first use, then forgotten."""
    engine = await start_engine(make_config(SkuConfig("a", 10), idempotency_ttl=10.0))
    first = await engine.purchase("a", "u1", idempotency_key="k1")
    clock.advance(10 - 1e-6)
    assert await engine.purchase("a", "u1", idempotency_key="k1") == first
    clock.advance(1e-6)
    again = await engine.purchase("a", "u1", idempotency_key="k1")
    assert again.result == "reserved"
    assert again.order_id != first.order_id
    assert (await engine.sku_status("a")).reserved == 2


async def test_key_flood_locks_no_one_out(make_config: MakeConfig, start_engine: StartEngine) -> None:
    """Thousands of fresh keys with invented buyers from a few addresses fill the table; others still buy."""
    engine = await start_engine(
        make_config(SkuConfig("a", 100_000), max_idempotency_keys=500, max_idempotency_keys_per_ip=100)
    )
    flood = [
        PurchaseRequest("a", f"bot-{i}", idempotency_key=f"k{i}", client_ip=f"203.0.113.{i % 10}") for i in range(3_000)
    ]
    answers = Counter(o.result for o in await engine.purchase_many(flood))
    assert answers == {"reserved": 500, "rate_limited": 2_500}  # the table holds 500; keys in flight stay
    again = Counter(o.result for o in await engine.purchase_many(flood[500:]))
    assert again == {"rate_limited": 2_500}  # each bot address already holds as many as any: refused
    assert engine.key_gauges.live == 500
    buyers = [
        PurchaseRequest("a", f"buyer-{i}", idempotency_key="checkout", client_ip=f"198.51.100.{i}") for i in range(200)
    ]
    first = await engine.purchase_many(buyers)
    assert {o.result for o in first} == {"reserved"}
    assert await engine.purchase_many(buyers) == first  # each retry replays its own order
    assert engine.key_gauges.live == 500


async def test_a_final_order_frees_only_its_own_key(
    make_config: MakeConfig, start_engine: StartEngine, clock: ManualClock
) -> None:
    """A key used again after its ttl belongs to the new order: the old order's cancel does not forget it."""
    engine = await start_engine(make_config(SkuConfig("a", 10), idempotency_ttl=10.0))
    old = await engine.purchase("a", "u1", idempotency_key="k1")
    clock.advance(10)
    new = await engine.purchase("a", "u1", idempotency_key="k1")
    assert new.order_id != old.order_id
    assert old.order_id is not None
    await engine.cancel(old.order_id, user="u1")
    await engine.flush()
    assert await engine.purchase("a", "u1", idempotency_key="k1") == new
