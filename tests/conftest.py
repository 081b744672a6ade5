"""Engine-level fixtures shared by every test.

Every test stops what it starts: engines started through :func:`start_engine`
are stopped at teardown, and an autouse fixture stops any pykka actor still
alive afterwards (pykka's own test suite does the same).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pykka
import pytest
from aiohttp import web

from flashsale import Config, LimitsConfig, ManualClock, SaleEngine, SkuConfig, SQLiteOrderStore, StoreConfig
from flashsale.actors import Order, OrderStatus, OrderStore, Recovered, RestockRecord, StoreError
from flashsale.transport._server import before_routing

T0 = 1_767_225_600_000_000
"""ManualClock's default start: 2026-01-01T00:00:00Z in microseconds."""

ORDER_COLUMNS = "order_id, sku, user, qty, status, created_at, expires_at, idempotency_key, request_id"

MakeConfig = Callable[..., Config]
StartEngine = Callable[..., Awaitable[SaleEngine]]


@pytest.fixture
def aiohttp_client(aiohttp_client: Any) -> Callable[..., Awaitable[Any]]:
    """pytest-aiohttp's client, with ``before_routing`` in front of an app's router, as ``flashsale serve`` has.

    So every HTTP test meets what a real server's requests meet: the JSON 417
    for an unknown ``Expect``, and the fast lanes (transport/_server.py).
    """

    async def make(app_or_server: Any, *args: Any, **kwargs: Any) -> Any:
        client = await aiohttp_client(app_or_server, *args, **kwargs)
        if isinstance(app_or_server, web.Application):
            server = client.server.runner.server
            server.request_handler = before_routing(app_or_server, server.request_handler)
        return client

    return make


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    """Stop every pykka actor a test left running."""
    yield
    pykka.ActorRegistry.stop_all()


@pytest.fixture
def clock() -> ManualClock:
    """Virtual time, starting at :data:`T0`; moves only when told to."""
    return ManualClock(T0)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh SQLite file path for this test's orders."""
    return tmp_path / "orders.db"


@pytest.fixture
def make_config(db_path: Path) -> MakeConfig:
    """Build a :class:`Config` on this test's database.

    ``make_config(SkuConfig(...), ..., durability="async", inventory_actors=2,
    max_inflight=3, ...)``: keyword arguments other than ``durability``,
    ``inventory_actors`` and ``path`` go to :class:`LimitsConfig`.
    """

    def make(
        *skus: SkuConfig,
        durability: str = "commit",
        inventory_actors: int = 4,
        path: Path | None = None,
        **limits: Any,
    ) -> Config:
        return Config(
            skus=skus or (SkuConfig("a", 10),),
            store=StoreConfig(path=str(path or db_path), durability=durability),  # type: ignore[arg-type]
            limits=LimitsConfig(**limits),
            inventory_actors=inventory_actors,
        )

    return make


@pytest.fixture
async def start_engine(clock: ManualClock) -> AsyncIterator[StartEngine]:
    """Start a :class:`SaleEngine` on the test's clock; stopped at teardown."""
    engines: list[SaleEngine] = []

    async def start(config: Config, *, store: OrderStore | None = None) -> SaleEngine:
        engine = SaleEngine(config, store=store, clock=clock)
        await engine.start()
        engines.append(engine)
        return engine

    yield start
    for engine in reversed(engines):
        await engine.stop()


def read_orders(path: Path) -> list[Order]:
    """Every order in the SQLite file at ``path``, read with a connection of its own."""
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute(f"SELECT {ORDER_COLUMNS} FROM orders ORDER BY created_at, order_id").fetchall()
    return [Order(*row) for row in rows]


def read_restocks(path: Path) -> list[tuple[str, int, int]]:
    """Every restock in the SQLite file at ``path`` as ``(sku, qty, at)``."""
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT sku, qty, at FROM restocks ORDER BY id").fetchall()


@pytest.fixture
def stored_orders(db_path: Path) -> Callable[[], list[Order]]:
    """Read this test's orders straight from its SQLite file."""
    return lambda: read_orders(db_path)


class FlakyStore:
    """A real :class:`SQLiteOrderStore` whose writes (or reads) fail on demand.

    Test-only failure injection for the :class:`actors.OrderStore` port: while
    ``failing`` is true, :meth:`write` raises :class:`StoreError` before
    touching the file, exactly as a failed transaction would leave it. With
    ``get_gate`` set, :meth:`get` holds the writer's thread until the gate
    opens, so a test can line messages up in the writer's mailbox.
    """

    def __init__(self, path: Path) -> None:
        self.inner = SQLiteOrderStore(path)
        self.failing = False
        self.failing_get = False
        self.broken_get: Exception | None = None
        self.writes = 0
        self.get_entered = threading.Event()
        self.get_gate: threading.Event | None = None
        self.write_entered = threading.Event()
        self.write_gate: threading.Event | None = None

    def open(self, skus: Sequence[str] = (), unwritten_bound: int = 0) -> Recovered:
        return self.inner.open(skus, unwritten_bound)

    def write(
        self,
        restocks: Sequence[RestockRecord],
        orders: Sequence[Order],
        closed: Sequence[tuple[str, OrderStatus]] = (),
    ) -> None:
        self.write_entered.set()
        if self.write_gate is not None:
            self.write_gate.wait(30)  # a store that cannot keep up: hold the writer until the test lets go
        if self.failing:
            raise StoreError("injected failure: disk on fire")
        self.inner.write(restocks, orders, closed)
        self.writes += 1

    def due(self, at: int, limit: int) -> list[Order]:
        if self.failing:
            raise StoreError("injected failure: disk on fire")
        return self.inner.due(at, limit)

    def get(self, order_id: str) -> Order | None:
        self.get_entered.set()
        if self.get_gate is not None:
            self.get_gate.wait(30)  # hold the writer's thread until the test lets go
        if self.failing_get:
            raise StoreError("injected failure: cannot read")
        if self.broken_get is not None:
            raise self.broken_get  # an adapter breaking the port's contract (not a StoreError)
        return self.inner.get(order_id)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def flaky_store(db_path: Path) -> FlakyStore:
    """A :class:`FlakyStore` on this test's database, writing until told to fail."""
    return FlakyStore(db_path)
