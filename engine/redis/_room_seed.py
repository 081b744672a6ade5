"""The waiting room's seed, kept in PostgreSQL as well as in Redis.

The room's tickets live only in Redis, and a Redis that comes back empty
has lost them. Its seed need not be lost with them: the first worker to
open the room writes the seed Redis holds to ``room_seeds`` (one row per
sale, the sale named as the orders are: ``postgres.sale`` or
``redis.prefix``), with the room's ``starts_at``. A worker that finds no
room in Redis offers PostgreSQL's seed instead of a new one when it was
kept for the same ``starts_at``, so the room opens again under the
commitment buyers were shown, its draw can still be checked against it,
and the passes it gave still admit their buyers. A room with another
``starts_at`` is another room: it gets a seed of its own (one revealed by
an earlier draw must never order a new one), which then replaces the row.
PostgreSQL holds the seed before the draw reveals it: whoever reads that
table could compute the draw early, as whoever reads Redis can.
"""

from __future__ import annotations

import logging

from psycopg import Connection, connect
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from flashsale.config import PostgresConfig

from ._schema import migrate

log = logging.getLogger("flashsale.room")


class RoomSeeds:
    """One sale's row of ``room_seeds``; every call opens its own connection (they run once, at start)."""

    def __init__(self, postgres: PostgresConfig, sale: str) -> None:
        params = conninfo_to_dict(postgres.url)
        params.setdefault("connect_timeout", "5")
        self._conninfo = make_conninfo("", **params)
        self.sale = sale

    def _connect(self) -> Connection[tuple[object, ...]]:
        conn = connect(self._conninfo, autocommit=True)
        migrate(conn)  # a database that never saw this sale may have no table yet
        return conn

    def kept(self, starts_at: int) -> bytes | None:
        """The seed kept for this sale's room starting at ``starts_at``, if any (:class:`psycopg.Error`: cannot say)."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT seed FROM room_seeds WHERE sale = %s AND starts_at = %s", (self.sale, starts_at)
            ).fetchone()
        return None if row is None else bytes.fromhex(str(row[0]))

    def keep(self, seed: bytes, starts_at: int) -> None:
        """Record ``seed`` for the room starting at ``starts_at``; a row for another room is replaced.

        A different seed on record for the same room is logged, not replaced.
        """
        with self._connect() as conn:
            conn.execute(
                """INSERT INTO room_seeds AS r (sale, starts_at, seed) VALUES (%s, %s, %s)
                ON CONFLICT (sale) DO UPDATE SET starts_at = excluded.starts_at, seed = excluded.seed
                WHERE r.starts_at <> excluded.starts_at""",
                (self.sale, starts_at, seed.hex()),
            )
            row = conn.execute("SELECT seed FROM room_seeds WHERE sale = %s", (self.sale,)).fetchone()
        if row is not None and row[0] != seed.hex():
            log.warning(
                "room seed in postgresql differs from the one in redis; redis's is used", extra={"sale": self.sale}
            )
