"""MemoryOrderStore keeps the OrderStore contract exactly as the SQLite store does.

A differential test: the same seeded sequence of writes, status changes,
lookups, due queries and reopenings goes to both stores, and every answer
must be equal — including the failures (a duplicate order id fails the whole
write, and nothing of it is kept).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from flashsale import MemoryOrderStore, SQLiteOrderStore
from flashsale.actors import Order, RestockRecord, StoreError
from tests.conftest import T0


def _call(store: Any, method: str, *args: Any) -> Any:
    try:
        return getattr(store, method)(*args)
    except StoreError:
        return "StoreError"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_memory_store_answers_like_sqlite(tmp_path: Path, seed: int) -> None:
    """Three hundred random operations: both stores give the same answer to every one."""
    rng = random.Random(seed)
    sqlite, memory = SQLiteOrderStore(tmp_path / "orders.db"), MemoryOrderStore()
    skus = ["a", "b"]
    assert sqlite.open(skus, 0) == memory.open(skus, 0)
    seq = {"a": 0, "b": 0}
    ids: list[str] = []
    for _ in range(300):
        op = rng.random()
        if op < 0.45:
            orders = []
            for _ in range(rng.randint(1, 4)):
                sku = rng.choice(skus)
                if ids and rng.random() < 0.05:
                    order_id = rng.choice(ids)  # a duplicate: the whole write must fail
                else:
                    seq[sku] += 1
                    order_id = f"{sku}-{seq[sku]}"
                at = T0 + rng.randrange(1_000_000_000)
                key = f"k{rng.randrange(20)}" if rng.random() < 0.3 else None
                orders.append(
                    Order(
                        order_id, sku, f"u{rng.randrange(8)}", rng.randint(1, 3), "reserved", at, at + 60_000_000, key
                    )
                )
            restocks = [RestockRecord(rng.choice(skus), rng.randint(1, 5), T0)] if rng.random() < 0.2 else []
            answers = [_call(s, "write", restocks, orders) for s in (sqlite, memory)]
            assert answers[0] == answers[1]
            if answers[0] is None:
                ids.extend(o.order_id for o in orders)
        elif op < 0.65 and ids:
            closed = [(rng.choice(ids), rng.choice(["paid", "cancelled", "expired"])) for _ in range(rng.randint(1, 3))]
            assert _call(sqlite, "write", [], [], closed) == _call(memory, "write", [], [], closed)
        elif op < 0.8:
            at, limit = T0 + rng.randrange(1_200_000_000), rng.randint(1, 10)
            assert sqlite.due(at, limit) == memory.due(at, limit)
        elif op < 0.95 and ids:
            order_id = rng.choice([*ids, "a-999999"])
            assert sqlite.get(order_id) == memory.get(order_id)
        else:
            bound = rng.choice([0, 100])
            sqlite.close()
            memory.close()
            assert _call(sqlite, "get", "a-1") == _call(memory, "get", "a-1") == "StoreError"
            assert sqlite.open(skus, bound) == memory.open(skus, bound)
    sqlite.close()
    memory.close()
