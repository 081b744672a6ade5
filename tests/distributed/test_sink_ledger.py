"""Round trip: orders the Redis ledger's Lua scripts append land in PostgreSQL exactly as the ledger holds them."""

from __future__ import annotations

from collections import Counter

from flashsale import RedisConfig
from flashsale.actors import LedgerSku, Purchase
from flashsale.redis._ledger import RedisLedger
from tests.distributed.sinkkit import T0, Sinks, Streams, sinks_fixture, stored, streams_fixture  # noqa: F401
from tests.ids import TEST_IDS, minted

HOLD = 900_000_000


def buy(sku: str, user: str, qty: int = 1, key: str | None = None, at: int = T0) -> Purchase:
    return Purchase("", sku, user, qty, at, key, None, None)  # type: ignore[arg-type]  # the ledger never replies


def test_ledger_orders_land_as_the_ledger_holds_them(
    redis_config: RedisConfig, streams: Streams, sinks: Sinks, pg_url: str
) -> None:
    """Reserve, pay, cancel and expire through the ledger; PostgreSQL ends with the same orders and statuses."""
    ledger = RedisLedger(redis_config, skus=["a", "b"], idempotency_ttl=60.0, ids=TEST_IDS)
    try:
        ledger.open([LedgerSku("a", 50, 2, None, None, HOLD), LedgerSku("b", 50, None, None, None, HOLD)])
        sink = sinks.start(["a", "b"])
        (a_out, _), (b_out, _) = ledger.reserve(
            [
                [buy("a", f"user{n}", key=f"k{n}" if n % 2 else None) for n in range(1, 31)],
                [buy("b", f"user{n}", qty=2, at=T0 + 5) for n in range(1, 31)],
            ]
        )
        assert Counter(o.result for o in a_out) == {"reserved": 30}
        assert Counter(o.result for o in b_out) == {"reserved": 25, "sold_out": 5}
        for n in range(1, 6):
            ledger.change(minted("a", n), "paid", T0 + 10)
        for n in range(6, 9):
            ledger.change(minted("a", n), "cancelled", T0 + 20)
        assert ledger.expire(["b"], T0 + 5 + HOLD, 1000)[0] == 25
        assert sink.drain(30)
        rows = stored(pg_url)
        assert Counter((row[0], row[3]) for row in rows.values()) == {
            ("a", "paid"): 5,
            ("a", "cancelled"): 3,
            ("a", "reserved"): 22,
            ("b", "expired"): 25,
        }
        for order_id in (minted("a", 1), minted("a", 6), minted("a", 9), minted("a", 30), minted("b", 25)):
            order = ledger.get(order_id)
            assert order is not None
            sku, user, qty, status, created_at, expires_at, _, key = rows[order_id]
            assert (sku, user, qty, status, created_at, expires_at, key) == (
                order.sku, order.user, order.qty, order.status, order.created_at, order.expires_at,
                order.idempotency_key,
            )  # fmt: skip
        assert rows[minted("a", 1)][6] == T0 + 10  # changed_at: when it was paid
        assert rows[minted("a", 9)][7] == "k9"
        assert sink.gauges.committed == 1 + 1 + 5 + 3 + 1  # one entry per ledger call that changed orders
    finally:
        ledger.close()
