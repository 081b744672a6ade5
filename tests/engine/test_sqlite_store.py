"""The SQLite order store: one transaction per write, and everything recovery needs."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from flashsale import SQLiteOrderStore
from flashsale.actors import Order, Recovered, RestockRecord, SkuTotals, StoreError
from tests.conftest import T0, read_orders, read_restocks


def _order(order_id: str, user: str = "u1", qty: int = 1, status: str = "reserved", key: str | None = None) -> Order:
    sku = order_id.rsplit("-", 1)[0]
    return Order(order_id, sku, user, qty, status, T0, T0 + 900_000_000, key, f"req-{order_id}")  # type: ignore[arg-type]


@pytest.fixture
def store(db_path: Path) -> Iterator[SQLiteOrderStore]:
    """An opened store on this test's file, closed afterwards."""
    s = SQLiteOrderStore(db_path)
    s.open()
    yield s
    s.close()


def test_open_creates_file_and_parents(tmp_path: Path) -> None:
    """open() creates the file (and its folders) and recovers nothing from it."""
    path = tmp_path / "deep" / "er" / "orders.db"
    store = SQLiteOrderStore(path)
    assert store.open() == Recovered()
    store.close()
    assert path.exists()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA user_version").fetchone() == (1,)


def test_write_then_get(store: SQLiteOrderStore, db_path: Path) -> None:
    """A written order reads back equal, through get() and from the file itself."""
    order = _order("a-1", key="k")
    store.write([], [order])
    assert store.get("a-1") == order
    assert store.get("a-2") is None
    assert read_orders(db_path) == [order]


@pytest.mark.parametrize("n", [1, 2, 3, 255, 256, 257, 777])
def test_write_many_orders_in_chunks(store: SQLiteOrderStore, db_path: Path, n: int) -> None:
    """Any number of orders in one write is stored, each exactly once."""
    orders = [_order(f"a-{i}", user=f"u{i}") for i in range(1, n + 1)]
    store.write([], orders)
    assert sorted(read_orders(db_path)) == sorted(orders)


def test_failed_write_keeps_nothing(store: SQLiteOrderStore, db_path: Path) -> None:
    """A write that fails (a duplicate order id) is a StoreError and stores none of its rows."""
    store.write([], [_order("a-1")])
    with pytest.raises(StoreError, match="UNIQUE"):
        store.write([RestockRecord("a", 5, T0)], [_order("a-2"), _order("a-1")])
    assert [o.order_id for o in read_orders(db_path)] == ["a-1"]
    assert read_restocks(db_path) == []
    store.write([RestockRecord("a", 5, T0)], [_order("a-2")])  # the connection is usable again
    assert len(read_orders(db_path)) == 2


def test_recovery_totals(db_path: Path) -> None:
    """open() sums reserved, paid and restocked units per SKU and finds each SKU's last order number."""
    store = SQLiteOrderStore(db_path)
    store.open()
    store.write(
        [RestockRecord("moutai-53", 5, T0), RestockRecord("moutai-53", 2, T0 + 1), RestockRecord("tshirt", 1, T0)],
        [
            _order("moutai-53-9", qty=2),
            _order("moutai-53-12", user="u2", status="paid"),
            _order("moutai-53-10", user="u3", qty=3, status="cancelled"),
            _order("moutai-53-11", user="u1", qty=1, status="expired"),
            _order("tshirt-1", qty=4, key="k1"),
            _order("tshirt-2", user="u2", key="k1"),
        ],
    )
    store.close()
    recovered = SQLiteOrderStore(db_path).open()
    assert recovered.skus == {
        "moutai-53": SkuTotals(reserved=2, paid=1, restocked=7, last_seq=12),
        "tshirt": SkuTotals(reserved=5, paid=0, restocked=1, last_seq=2),
    }
    assert recovered.per_user == {
        ("u1", "moutai-53"): 2,
        ("u2", "moutai-53"): 1,
        ("u1", "tshirt"): 4,
        ("u2", "tshirt"): 1,
    }
    assert recovered.keyed == {
        ("u1", "k1"): _order("tshirt-1", qty=4, key="k1"),
        ("u2", "k1"): _order("tshirt-2", user="u2", key="k1"),
    }


def test_restocks_without_orders_are_recovered(db_path: Path) -> None:
    """A SKU that was only restocked recovers its restocks and order number zero."""
    store = SQLiteOrderStore(db_path)
    store.open()
    store.write([RestockRecord("a", 3, T0)], [])
    store.close()
    assert SQLiteOrderStore(db_path).open().skus == {"a": SkuTotals(restocked=3)}


def test_newer_schema_is_refused(db_path: Path) -> None:
    """A file written by a newer flashsale (higher user_version) is a StoreError, not a guess."""
    with closing(sqlite3.connect(db_path)) as db:
        db.execute("PRAGMA user_version=2")
    with pytest.raises(StoreError, match="newer flashsale"):
        SQLiteOrderStore(db_path).open()


def test_not_a_database_is_a_store_error(db_path: Path) -> None:
    """A file that is not SQLite is a StoreError naming the path."""
    db_path.write_bytes(b"this is not a database, just some bytes" * 100)
    with pytest.raises(StoreError, match=str(db_path)):
        SQLiteOrderStore(db_path).open()


def test_path_that_is_a_folder_is_a_store_error(tmp_path: Path) -> None:
    """A path naming a folder cannot be opened: StoreError."""
    with pytest.raises(StoreError):
        SQLiteOrderStore(tmp_path).open()


def test_use_before_open_and_close_twice(db_path: Path) -> None:
    """write/get before open() raise StoreError; close() is safe to call twice."""
    store = SQLiteOrderStore(db_path)
    with pytest.raises(StoreError, match="not open"):
        store.write([], [_order("a-1")])
    with pytest.raises(StoreError, match="not open"):
        store.get("a-1")
    store.open()
    store.close()
    store.close()
    with pytest.raises(StoreError, match="not open"):
        store.get("a-1")


def test_locked_database_write_fails_cleanly(store: SQLiteOrderStore, db_path: Path) -> None:
    """A write blocked by another writer past busy_timeout is a StoreError, and the next one succeeds."""
    with closing(sqlite3.connect(db_path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="locked"):
            store.write([], [_order("a-1")])
        other.execute("ROLLBACK")
    store.write([], [_order("a-1")])
    assert store.get("a-1") == _order("a-1")


def test_reopen_after_close(store: SQLiteOrderStore) -> None:
    """A closed store can be opened again and sees what it wrote."""
    store.write([], [_order("a-1", key="k")])
    store.close()
    assert store.open().keyed == {("u1", "k"): _order("a-1", key="k")}
    assert store.get("a-1") is not None


def test_an_unwritable_shm_refuses_to_open(db_path: Path) -> None:
    """An immutable -shm (chattr +i) is a StoreError at open, before SQLite maps it (a write to it is a SIGBUS)."""
    first = SQLiteOrderStore(db_path)
    first.open(["a"])  # the connection stays open: -wal and -shm stay on disk
    shm = db_path.with_name(db_path.name + "-shm")
    assert shm.exists()
    subprocess.run(["chattr", "+i", str(shm)], check=True)
    try:
        with pytest.raises(StoreError, match=r"-shm: cannot write: Operation not permitted"):
            SQLiteOrderStore(db_path).open(["a"])
    finally:
        subprocess.run(["chattr", "-i", str(shm)], check=True)
        first.close()
