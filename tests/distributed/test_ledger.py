"""RedisLedger on a real redis-server: each Lua script checks before it decrements, and keeps stock conserved."""

from __future__ import annotations

import collections
import random
from collections.abc import Callable, Iterator

import orjson
import pytest

from flashsale import RedisConfig
from flashsale.actors import BucketSpec, LedgerError, LedgerSku, Outcome, Purchase, SkuView
from flashsale.redis._ledger import RedisLedger
from tests.distributed.conftest import RedisServer, client
from tests.ids import TEST_IDS, minted

T0 = 1_767_225_600_000_000
S = 1_000_000
HOLD = 900 * S

MakeLedger = Callable[..., RedisLedger]


def buy(
    user: str, qty: int = 1, *, key: str | None = None, at: int = T0, ip: str | None = None, sku: str = "a"
) -> Purchase:
    return Purchase("", sku, user, qty, at, key, ip, None)  # type: ignore[arg-type]  # the ledger never replies


def sku(stock: int = 10, limit: int | None = None, starts: int | None = None, ends: int | None = None) -> LedgerSku:
    return LedgerSku("a", stock, limit, starts, ends, HOLD)


@pytest.fixture
def make_ledger(redis_config: RedisConfig) -> Iterator[MakeLedger]:
    made: list[RedisLedger] = []

    def make(*skus: LedgerSku, **kw: object) -> RedisLedger:
        kw.setdefault("ids", TEST_IDS)  # a known key: the ids the Lua script mints are the ones OrderIds mints
        ledger = RedisLedger(redis_config, skus=[s.sku for s in skus] or ["a"], idempotency_ttl=60.0, **kw)  # type: ignore[arg-type]
        ledger.open(skus or (sku(),))
        made.append(ledger)
        return ledger

    yield make
    for ledger in made:
        ledger.close()


def one(ledger: RedisLedger, *purchases: Purchase) -> tuple[list[Outcome], SkuView]:
    (answer,) = ledger.reserve([purchases])
    return answer


def results(ledger: RedisLedger, *purchases: Purchase) -> list[str]:
    return [o.result for o in one(ledger, *purchases)[0]]


def conserved(view: SkuView) -> bool:
    return view.remaining + view.reserved + view.paid == view.stock


def test_exact_stock_in_one_batch(make_ledger: MakeLedger) -> None:
    """Ten units, twelve buyers in one call: exactly ten reserved, numbered 1..10, then sold out."""
    ledger = make_ledger(sku(10))
    outcomes, view = one(ledger, *(buy(f"u{i}") for i in range(12)))
    assert [o.result for o in outcomes] == ["reserved"] * 10 + ["sold_out"] * 2
    assert [o.order_id for o in outcomes[:10]] == [minted("a", i) for i in range(1, 11)]
    assert outcomes[0].expires_at == T0 + HOLD
    assert (view.stock, view.remaining, view.reserved, view.paid) == (10, 0, 10, 0)


def test_partial_quantity_is_refused_whole(make_ledger: MakeLedger) -> None:
    """A request for more than is left takes nothing; a smaller one after it still fits."""
    ledger = make_ledger(sku(3))
    outcomes, view = one(ledger, buy("u1", 2), buy("u2", 2), buy("u3", 1))
    assert [o.result for o in outcomes] == ["reserved", "sold_out", "reserved"]
    assert outcomes[1].detail == "only 1 left"
    assert view.remaining == 0


def test_window(make_ledger: MakeLedger) -> None:
    """Before starts_at and from ends_at on: sale_not_open, nothing taken."""
    ledger = make_ledger(sku(5, starts=T0 + S, ends=T0 + 2 * S))
    outcomes, view = one(ledger, buy("u1", at=T0), buy("u2", at=T0 + S), buy("u3", at=T0 + 2 * S))
    assert [o.result for o in outcomes] == ["sale_not_open", "reserved", "sale_not_open"]
    assert [outcomes[0].detail, outcomes[2].detail] == ["the sale has not started yet", "the sale has ended"]
    assert (view.remaining, view.starts_at, view.ends_at) == (4, T0 + S, T0 + 2 * S)


def test_per_user_limit_counts_units(make_ledger: MakeLedger) -> None:
    """A limit of 3 units: 2 + 1 pass, the next unit is limit_reached; another buyer is unaffected."""
    ledger = make_ledger(sku(10, limit=3))
    assert results(ledger, buy("u1", 2), buy("u1", 1), buy("u1", 1), buy("u2", 3)) == [
        "reserved",
        "reserved",
        "limit_reached",
        "reserved",
    ]
    outcomes, _ = one(ledger, buy("u1", 1))
    assert outcomes[0].detail == "at most 3 per buyer; this buyer already holds 3"


def test_idempotency(make_ledger: MakeLedger) -> None:
    """Same key and body: the first answer again, nothing taken; same key, other qty: 422; keys are per user."""
    ledger = make_ledger(sku(5))
    first, _ = one(ledger, buy("u1", 2, key="k"))
    again, view = one(ledger, buy("u1", 2, key="k"), buy("u1", 1, key="k"), buy("u2", 2, key="k"))
    assert again[0] == first[0]
    assert again[1].result == "idempotency_key_reused"
    assert "qty=2" in again[1].detail
    assert again[2].order_id == minted("a", 2)
    assert view.remaining == 1


def test_refused_key_is_decided_again(make_ledger: MakeLedger) -> None:
    """A keyed sold_out is not recorded: after a restock the same key buys, once."""
    ledger = make_ledger(sku(0))
    assert results(ledger, buy("u1", key="k")) == ["sold_out"]
    ledger.restock("a", 5, T0)
    assert results(ledger, buy("u1", key="k"), buy("u1", key="k")) == ["reserved", "reserved"]
    assert one(ledger, buy("u1", key="k"))[1].reserved == 1


def test_key_bounds_per_buyer_and_address(make_ledger: MakeLedger, redis_config: RedisConfig) -> None:
    """Live keys are bounded per buyer and per address; a final order frees its key; others are unaffected."""
    ledger = make_ledger(sku(100), keys_per_buyer=2, keys_per_ip=3)
    got = one(ledger, *(buy("u1", key=f"k{i}", ip="10.0.0.1") for i in range(3)))[0]
    assert [o.result for o in got] == ["reserved", "reserved", "rate_limited"]
    assert (got[2].retry_after, "this buyer" in got[2].detail) == (1.0, True)
    assert results(ledger, buy("u2", key="k", ip="10.0.0.1"), buy("u3", key="k", ip="10.0.0.1")) == [
        "reserved",
        "rate_limited",
    ]
    assert results(ledger, buy("u3", key="k", ip="10.0.0.2"), buy("u1", ip="10.0.0.1")) == ["reserved", "reserved"]
    ledger.change(minted("a", 1), "paid", T0 + S)
    client = ledger._client
    assert client.exists(f"{redis_config.prefix}:{{a}}:idem:u1:k0") == 0
    assert client.hget(f"{redis_config.prefix}:{{a}}:keys", "u:u1") == "1"
    assert results(ledger, buy("u1", key="k9", ip="10.0.0.3")) == ["reserved"]


def test_pay_cancel_expire_exactly_once(make_ledger: MakeLedger) -> None:
    """Pay moves reserved to paid; cancel and expiry return units to stock and allowance, each exactly once."""
    ledger = make_ledger(sku(4, limit=4))
    one(ledger, *(buy("u1", at=T0 + i) for i in range(4)))
    paid, view = ledger.change(minted("a", 1), "paid", T0 + S)
    assert (paid.refused, paid.order.status) == ("", "paid")  # type: ignore[union-attr]
    assert (view.remaining, view.reserved, view.paid) == (0, 3, 1)  # type: ignore[union-attr]
    cancelled, view = ledger.change(minted("a", 2), "cancelled", T0 + S)
    assert cancelled.refused == ""
    assert (view.remaining, view.reserved, view.paid) == (1, 2, 1)  # type: ignore[union-attr]
    twice, _ = ledger.change(minted("a", 2), "cancelled", T0 + S)
    assert (twice.refused, twice.order.status) == ("not_reserved", "cancelled")  # type: ignore[union-attr]
    assert ledger.change(minted("a", 1), "cancelled", T0 + S)[0].refused == "not_reserved"
    # a-3 and a-4 expire at T0+2+HOLD and T0+3+HOLD
    assert ledger.expire(["a"], T0 + 2 + HOLD, 100)[0] == 1
    late, view = ledger.change(minted("a", 4), "paid", T0 + 3 + HOLD)
    assert (late.refused, late.order.status) == ("expired", "expired")  # type: ignore[union-attr]
    expired, views = ledger.expire(["a"], T0 + 10 * HOLD, 100)
    assert expired == 0
    assert (views[0].remaining, views[0].reserved, views[0].paid) == (3, 0, 1)
    assert conserved(views[0])
    # the allowance came back: u1 holds 1 (paid) of 4
    assert results(ledger, buy("u1", 3, at=T0 + 10 * HOLD)) == ["reserved"]
    assert ledger.get(minted("a", 3)).status == "expired"  # type: ignore[union-attr]
    assert ledger.get(minted("a", 99)) is None
    assert ledger.get("nosuch-1") is None
    assert ledger.get("a-1-" + "0" * 16) is None  # order a-1 exists; with a wrong tag it is not found
    assert ledger.change(minted("a", 99), "paid", T0)[0].refused == "unknown_order"


def test_orders_stream_has_every_change(make_ledger: MakeLedger, redis_server: RedisServer) -> None:
    """Each call that changes orders appends one entry to P:{S}:orders: the whole rows of its orders."""
    ledger = make_ledger(sku(2))
    one(ledger, buy("u1", key="k1"), buy("u2"), buy("u3"))
    ledger.change(minted("a", 1), "paid", T0 + 1)
    ledger.change(minted("a", 2), "cancelled", T0 + 2)
    ledger.change(minted("a", 2), "paid", T0 + 3)  # refused: changes nothing, appends nothing
    entries = client(redis_server).xrange(ledger.base("a") + "orders")
    assert [set(fields) for _, fields in entries] == [{"sku", "rows"}] * 3
    assert {fields["sku"] for _, fields in entries} == {"a"}
    rows = [orjson.loads(fields["rows"]) for _, fields in entries]
    created, expires = str(T0), str(T0 + HOLD)
    assert rows == [
        [
            [minted("a", 1), "u1", "1", "reserved", created, expires, created, "k1"],
            [minted("a", 2), "u2", "1", "reserved", created, expires, created, ""],
        ],
        [[minted("a", 1), "u1", "1", "paid", created, expires, str(T0 + 1), "k1"]],
        [[minted("a", 2), "u2", "1", "cancelled", created, expires, str(T0 + 2), ""]],
    ]


def test_a_second_open_never_resets_stock(make_ledger: MakeLedger, redis_config: RedisConfig) -> None:
    """A worker that starts later, even with another stock in its config, sees the sale as it stands."""
    ledger = make_ledger(sku(10))
    one(ledger, buy("u1", 4))
    other = RedisLedger(redis_config, skus=["a"], idempotency_ttl=60.0)
    try:
        (view,) = other.open([sku(500)])
    finally:
        other.close()
    assert (view.stock, view.remaining, view.reserved) == (10, 6, 4)


def test_restock_and_batches_over_several_skus(make_ledger: MakeLedger) -> None:
    """One reserve call for two SKUs (one pipeline) answers each in order; restock adds to stock and remaining."""
    ledger = make_ledger(LedgerSku("a", 1, None, None, None, HOLD), LedgerSku("b", 1, None, None, None, HOLD))
    view = ledger.restock("b", 2, T0)
    assert (view.stock, view.remaining) == (3, 3)
    (a, va), (b, vb) = ledger.reserve([[buy("u1"), buy("u2")], [buy("u1", sku="b"), buy("u2", 2, sku="b")]])
    assert [o.result for o in a] == ["reserved", "sold_out"]
    assert [o.order_id for o in b] == [minted("b", 1), minted("b", 2)]
    assert (va.remaining, vb.remaining) == (0, 0)


def test_shared_token_buckets(make_ledger: MakeLedger) -> None:
    """Per-user burst 2 at 1/s and per-IP burst 3: the third of a user's burst waits 1 s; IPs are counted too."""
    ledger = make_ledger(per_user=BucketSpec(rate=1.0, burst=2), per_ip=BucketSpec(rate=1.0, burst=3))
    waits = ledger.throttle([buy("u1", ip="ip1"), buy("u1", ip="ip1"), buy("u1", ip="ip1"), buy("u2", ip="ip1")])
    assert waits == [0.0, 0.0, 1.0, 0.0]
    # ip1 spent 3 tokens (the refused purchase took none): u3 on ip1 waits, u3 on ip2 does not
    assert ledger.throttle([buy("u3", ip="ip1"), buy("u3", ip="ip2")]) == [1.0, 0.0]
    assert ledger.throttle([buy("u1", ip="ip9", at=T0 + S // 2)]) == [0.5]
    assert ledger.throttle([buy("u1", ip="ip9", at=T0 + S)]) == [0.0]


def test_redis_down_is_a_ledger_error_within_the_timeout() -> None:
    """Nothing listening: every call fails fast with LedgerError, never hangs."""
    ledger = RedisLedger(RedisConfig(url="redis://127.0.0.1:1/0", timeout=0.2), skus=["a"], idempotency_ttl=60.0)
    with pytest.raises(LedgerError):
        ledger.reserve([[buy("u1")]])
    with pytest.raises(LedgerError):
        ledger.get(minted("a", 1))
    ledger.close()


def test_random_operations_agree_with_a_model(make_ledger: MakeLedger) -> None:
    """600 seeded random reserves, keyed retries, pays, cancels, expiries and restocks: the ledger and a dict agree."""
    rng = random.Random(20261111)
    ledger = make_ledger(sku(20, limit=3))
    stock, remaining, reserved, paid = 20, 20, 0, 0
    held: collections.Counter[str] = collections.Counter()
    orders: dict[str, tuple[str, int, str, int]] = {}  # id -> user, qty, status, expires_at
    answers: dict[tuple[str, str], tuple[int, Outcome]] = {}  # keys of reserved orders, until they are final
    keyed: dict[str, tuple[str, str]] = {}  # order id -> its (user, key)
    now = T0
    for _ in range(600):
        now += rng.randrange(10 * S)  # 600 steps of up to 10 s: reservations (900 s) do run out
        op = rng.random()
        if op < 0.55:
            user, qty = f"u{rng.randrange(12)}", rng.randint(1, 3)
            key = f"k{rng.randrange(20)}" if rng.random() < 0.4 else None
            (got,), view = one(ledger, buy(user, qty, key=key, at=now))
            first = answers.get((user, key)) if key else None
            if first is not None:
                want = first[1].result if first[0] == qty else "idempotency_key_reused"
                assert got.result == want
                if first[0] == qty:
                    assert got == first[1]
            elif remaining <= 0:  # the order of flashsale.actors.rules: sold out, limit, stock
                assert got.result == "sold_out"
            elif held[user] + qty > 3:
                assert got.result == "limit_reached"
            elif qty > remaining:
                assert got.result == "sold_out"
            else:
                assert got.result == "reserved"
                assert got.order_id is not None
                remaining, reserved, held[user] = remaining - qty, reserved + qty, held[user] + qty
                orders[got.order_id] = (user, qty, "reserved", now + HOLD)
            if key and first is None and got.result == "reserved":  # a refusal is decided again
                answers[(user, key)] = (qty, got)
                keyed[got.order_id] = (user, key)  # type: ignore[index]
        elif op < 0.85 and orders:
            order_id = rng.choice(sorted(orders))
            user, qty, status, expires = orders[order_id]
            target = rng.choice(["paid", "cancelled"])
            change, _ = ledger.change(order_id, target, now)  # type: ignore[arg-type]
            if status != "reserved":
                assert change.refused == "not_reserved"
                continue
            final = "expired" if now >= expires else target
            assert change.order.status == final  # type: ignore[union-attr]
            reserved -= qty
            if final == "paid":
                paid += qty
            else:
                remaining, held[user] = remaining + qty, held[user] - qty
            orders[order_id] = (user, qty, final, expires)
            answers.pop(keyed.pop(order_id, ("", "")), None)  # a final order's key is forgotten
        elif op < 0.95:
            n, (view,) = ledger.expire(["a"], now, 1000)
            due = [i for i, (_, _, st, exp) in orders.items() if st == "reserved" and exp <= now]
            assert n == len(due)
            for i in due:
                user, qty, _, exp = orders[i]
                orders[i] = (user, qty, "expired", exp)
                answers.pop(keyed.pop(i, ("", "")), None)
                remaining, reserved, held[user] = remaining + qty, reserved - qty, held[user] - qty
        else:
            ledger.restock("a", 2, now)
            stock, remaining = stock + 2, remaining + 2
        (view,) = ledger.expire(["a"], 0, 0)[1]
        assert (view.stock, view.remaining, view.reserved, view.paid) == (stock, remaining, reserved, paid)
        assert remaining + reserved + paid == stock
    statuses = collections.Counter(st for _, _, st, _ in orders.values())
    assert min(statuses[st] for st in ("reserved", "paid", "cancelled", "expired")) > 0, statuses


def test_scripts_are_loaded_again_after_script_flush(make_ledger: MakeLedger, redis_server: RedisServer) -> None:
    """A restarted or flushed Redis answers NOSCRIPT: the ledger loads its scripts and the call goes through once."""
    ledger = make_ledger(LedgerSku("a", 5, None, None, None, HOLD), LedgerSku("b", 5, None, None, None, HOLD))
    client(redis_server).script_flush()
    (outcomes, view), (more, _) = ledger.reserve([[buy("u1")], [buy("u1", sku="b")]])  # a pipeline
    assert (outcomes[0].order_id, more[0].order_id, view.remaining) == (minted("a", 1), minted("b", 1), 4)
    client(redis_server).script_flush()
    assert results(ledger, buy("u2")) == ["reserved"]  # a single call
    assert ledger.expire(["a"], T0, 10)[1][0].reserved == 2
