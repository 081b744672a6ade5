"""OrderArchive: orders as PostgreSQL records them, for ``GET /v1/orders/{id}`` when Redis has no such order.

Redis keeps live orders; PostgreSQL keeps every order the sink wrote. An
order Redis does not know (it lost its data, or its hash was dropped after
the sale) is looked up here, by the sale's key and the order id. Calls block:
the engine makes them from a worker thread, a few at a time at most.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from flashsale.actors import Order, OrderStatus

from ._sink import PG_DEFAULTS

SELECT = """
SELECT order_id, sku, user_id, qty, status, created_at, expires_at, idempotency_key
FROM orders WHERE sale = %s AND order_id = %s
"""


class OrderArchive:
    """Reads single orders of one sale from PostgreSQL over one connection, opened on first use."""

    def __init__(self, url: str, sale: str) -> None:
        params = conninfo_to_dict(url)
        for key, value in PG_DEFAULTS.items():
            params.setdefault(key, value)
        params["application_name"] = "flashsale-archive"
        self._conninfo = make_conninfo("", **params)
        self.sale = sale
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None

    def get(self, order_id: str) -> Order | None:
        """The stored order, or ``None``; raises :class:`psycopg.Error` when PostgreSQL does not answer."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = psycopg.connect(self._conninfo, autocommit=True)
                row = self._conn.execute(SELECT, (self.sale, order_id)).fetchone()
            except psycopg.Error:
                self._drop()
                raise
        if row is None:
            return None
        order_id, sku, user, qty, status, created, expires, key = row
        status_: OrderStatus = status
        return Order(order_id, sku, user, qty, status_, created, expires, key)

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()
