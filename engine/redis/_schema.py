"""The PostgreSQL side of ``backend = "redis"``: schema, migrations, and the rule that applies order changes.

Orders reach PostgreSQL from the per-SKU Redis Streams (see ``_pgsink``).
Each stream entry carries the whole rows of the orders one ledger call
changed, as they stand after it, and an entry may arrive twice
(at-least-once delivery) or after a later change of the same order
(another worker reclaimed it late). :data:`APPLY` makes that harmless:
a row inserts its order, or moves a stored ``reserved`` order to a final
status (paid, cancelled, expired). A final status never changes and never
goes back to ``reserved``. So any order of arrival, with any repeats, leaves
the same rows.

Rows are keyed by ``(sale, order_id)``: many sales (Redis prefixes) share
one database, and no sale's row is ever touched by another's. A row whose
id is already stored for a *different* order of the same sale (same id,
another buyer, quantity or time: the sign of a Redis that lost its data and
numbered orders again) is never applied: the sink keeps it in
``order_rejects`` with the reason and logs it.

Migrations are lists of statements in :data:`MIGRATIONS` (version n is the
n-th), applied in order inside one transaction that first takes an advisory
lock, so workers starting together do not race. ``flashsale_schema`` holds
one row per applied version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import chain, repeat
from typing import Any, NamedTuple

import orjson
import psycopg

from flashsale.config import PostgresConfig, RedisConfig

STATUSES = frozenset({"reserved", "paid", "cancelled", "expired"})
FIELDS = ("order_id", "sku", "user", "qty", "status", "created_at", "expires_at", "changed_at", "idempotency_key")
ROW_FIELDS = ("order_id", "user", "qty", "status", "created_at", "expires_at", "changed_at", "idempotency_key")
INT4_MAX = 2**31 - 1
INT8_MAX = 2**63 - 1
_NUMBERS = re.compile(r"[0-9]{1,18}(?:\|[0-9]{1,18})*")  # "|"-joined numbers below INT8_MAX, none negative
MIGRATION_LOCK = 0x666C_6173_6873_616C  # "flashsal": pg_advisory_xact_lock key held while migrating

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: orders as the streams describe them; entries that could not be read, kept for a person
        """CREATE TABLE orders (
            order_id        text PRIMARY KEY,
            sku             text NOT NULL,
            user_id         text NOT NULL,
            qty             integer NOT NULL CHECK (qty > 0),
            status          text NOT NULL CHECK (status IN ('reserved', 'paid', 'cancelled', 'expired')),
            created_at      bigint NOT NULL,
            expires_at      bigint NOT NULL,
            changed_at      bigint NOT NULL,
            idempotency_key text
        )""",
        "CREATE INDEX orders_sku_status ON orders (sku, status)",
        "CREATE INDEX orders_user_id ON orders (user_id)",
        """CREATE TABLE order_rejects (
            stream   text NOT NULL,
            entry_id text NOT NULL,
            fields   json NOT NULL,
            reason   text NOT NULL,
            PRIMARY KEY (stream, entry_id)
        )""",
    ),
    (  # 2: one database, many sales: an order is keyed by its sale (the Redis prefix, or postgres.sale) and its id
        "ALTER TABLE orders ADD COLUMN sale text NOT NULL DEFAULT ''",
        "ALTER TABLE orders ALTER COLUMN sale DROP DEFAULT",
        "ALTER TABLE orders DROP CONSTRAINT orders_pkey",
        "ALTER TABLE orders ADD PRIMARY KEY (sale, order_id)",
        "DROP INDEX orders_sku_status",
        "CREATE INDEX orders_sku_status ON orders (sale, sku, status)",
    ),
    (  # 3: each sale's waiting-room seed, so a Redis that lost the room opens it again under the same commitment
        """CREATE TABLE room_seeds (
            sale       text PRIMARY KEY,
            starts_at  bigint NOT NULL,
            seed       text NOT NULL CHECK (seed ~ '^[0-9a-f]{64}$')
        )""",
    ),
)

APPLY = """
INSERT INTO orders AS o (sale, order_id, sku, user_id, qty, status, created_at, expires_at, changed_at, idempotency_key)
SELECT %(sale)s, r->>0, r->>1, r->>2, (r->>3)::integer, r->>4, (r->>5)::bigint, (r->>6)::bigint, (r->>7)::bigint, r->>8
FROM json_array_elements(%(rows)s::json) AS r
ON CONFLICT (sale, order_id) DO UPDATE SET status = excluded.status, changed_at = excluded.changed_at
WHERE o.status = 'reserved' AND excluded.status <> 'reserved'
  AND (o.sku, o.user_id, o.qty, o.created_at) = (excluded.sku, excluded.user_id, excluded.qty, excluded.created_at)
"""
"""Insert each row, or move a stored ``reserved`` order of the same sale to its final status.

Only the row of the very same order moves: same sale, id, SKU, buyer,
quantity and creation time. A row that shares only the id (:data:`CLASHES`)
changes nothing.
"""

CLASHES = """
SELECT r->>0, o.sku, o.user_id, o.qty, o.created_at
FROM json_array_elements(%(rows)s::json) AS r
JOIN orders AS o ON o.sale = %(sale)s AND o.order_id = r->>0
WHERE (o.sku, o.user_id, o.qty, o.created_at) <> (r->>1, r->>2, (r->>3)::integer, (r->>5)::bigint)
"""
"""The rows whose id is stored for another order of the sale; run after :data:`APPLY`, in its transaction."""

REJECT = """
INSERT INTO order_rejects (stream, entry_id, fields, reason) VALUES (%s, %s, %s, %s)
ON CONFLICT (stream, entry_id) DO NOTHING
"""


class SchemaTooNew(psycopg.Error):
    """The database was migrated by a newer flashsale than this one; this one will not write to it.

    A :class:`psycopg.Error`, so the sink treats it as PostgreSQL being
    unavailable: not ok, logged, retried until the deployment is fixed.
    """


class OrderRow(NamedTuple):
    """One order as a stream entry describes it after a change (times in µs).

    A tuple: the sink makes one per order, and sends them to PostgreSQL as
    JSON arrays.
    """

    order_id: str
    sku: str
    user: str
    qty: int
    status: str
    created_at: int
    expires_at: int
    changed_at: int
    idempotency_key: str | None


def sale_key(postgres: PostgresConfig, redis: RedisConfig) -> str:
    """The sale's key in PostgreSQL (its rows are keyed by it): ``[postgres] sale``, else ``[redis] prefix``."""
    return postgres.sale or redis.prefix


def migrate(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """Bring the schema to the newest version; return the version found before.

    ``conn`` must be in autocommit mode: the migration is its own transaction.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS flashsale_schema (version integer PRIMARY KEY)")
        row = conn.execute("SELECT coalesce(max(version), 0) FROM flashsale_schema").fetchone()
        found = int(row[0]) if row is not None else 0  # type: ignore[call-overload]
        if found > len(MIGRATIONS):
            raise SchemaTooNew(f"the database is at schema version {found}; this flashsale knows {len(MIGRATIONS)}")
        for version, statements in enumerate(MIGRATIONS[found:], start=found + 1):
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO flashsale_schema (version) VALUES (%s)", (version,))
    return found


def parse(sku: str, fields: Mapping[str, str]) -> tuple[list[OrderRow], list[str]]:
    """The orders an entry of ``sku``'s stream describes, and why each malformed part of it is malformed.

    The ledger writes one entry per Lua call: ``sku`` and ``rows``, a JSON
    array of :data:`ROW_FIELDS` string arrays. An entry with the fields of
    :data:`FIELDS` is one order, as earlier versions wrote it: streams not
    yet drained when a deployment upgrades still land. Everything PostgreSQL
    would refuse is refused here, so one bad entry cannot make a whole batch
    fail again and again.
    """
    if "rows" not in fields:
        try:
            return [_row(sku, fields)], []
        except ValueError as exc:
            return [], [str(exc)]
    if fields.get("sku") != sku:
        return [], [f"sku {fields.get('sku')!r} in the stream of {sku!r}"]
    try:
        rows = orjson.loads(fields["rows"])
    except orjson.JSONDecodeError:
        return [], ["rows is not JSON"]
    if not isinstance(rows, list):
        return [], ["rows is not an array"]
    fast = _well_formed(sku, rows)
    if fast is not None:
        return fast, []
    good: list[OrderRow] = []
    bad: list[str] = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(ROW_FIELDS) or not all(isinstance(v, str) for v in row):
            bad.append(f"row {i}: not {len(ROW_FIELDS)} strings")
            continue
        try:
            good.append(_row(sku, {"sku": sku, **dict(zip(ROW_FIELDS, row, strict=True))}))
        except ValueError as exc:
            bad.append(f"row {i}: {exc}")
    return good, bad


def _well_formed(sku: str, rows: list[Any]) -> list[OrderRow] | None:
    """``rows`` as orders when every one of them is well formed, checked column by column; else ``None``.

    The same checks as :func:`_row` (numbers of up to 18 digits only), made
    by C loops over whole columns: the sink parses every order, on the
    server's GIL. ``None`` sends the entry to the row-by-row check, which
    says what is wrong.
    """
    if not rows or set(map(type, rows)) != {list} or set(map(len, rows)) != {len(ROW_FIELDS)}:
        return None
    cols: list[tuple[str, ...]] = list(zip(*rows, strict=True))
    ids, users, qtys, statuses, created, expires, changed, keys = cols
    if set(map(type, chain.from_iterable(cols))) != {str} or not STATUSES.issuperset(statuses):
        return None
    if "\x00" in "".join(chain(ids, users, keys)) or not all(ids) or not all(users):
        return None
    if _NUMBERS.fullmatch("|".join(chain(qtys, created, expires, changed))) is None:
        return None
    units = list(map(int, qtys))
    if min(units) < 1 or max(units) > INT4_MAX:
        return None
    return list(
        map(
            OrderRow._make,
            zip(
                ids, repeat(sku), users, units, statuses, map(int, created), map(int, expires), map(int, changed),
                [key or None for key in keys], strict=False,
            ),
        )
    )  # fmt: skip


def _row(sku: str, fields: Mapping[str, str]) -> OrderRow:
    missing = [name for name in FIELDS if name not in fields]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    for name in ("order_id", "user", "idempotency_key"):
        if "\x00" in fields[name]:
            raise ValueError(f"a NUL character in {name}")
    if fields["sku"] != sku:
        raise ValueError(f"sku {fields['sku']!r} in the stream of {sku!r}")
    if fields["status"] not in STATUSES:
        raise ValueError(f"unknown status {fields['status']!r}")
    if not fields["order_id"] or not fields["user"]:
        raise ValueError("empty order_id or user")
    return OrderRow(
        order_id=fields["order_id"],
        sku=sku,
        user=fields["user"],
        qty=_integer(fields, "qty", 1, INT4_MAX),
        status=fields["status"],
        created_at=_integer(fields, "created_at", 0, INT8_MAX),
        expires_at=_integer(fields, "expires_at", 0, INT8_MAX),
        changed_at=_integer(fields, "changed_at", 0, INT8_MAX),
        idempotency_key=fields["idempotency_key"] or None,
    )


def _integer(fields: Mapping[str, str], name: str, low: int, high: int) -> int:
    text = fields[name]
    if not text.isascii() or not text.lstrip("-").isdigit():
        raise ValueError(f"{name} is not an integer: {text!r}")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{name} must be {low}..{high}, got {value}")
    return value


def same_order(a: OrderRow, b: OrderRow) -> bool:
    """Whether two rows describe one order (perhaps at two statuses), not two orders under one id."""
    return (a.sku, a.user, a.qty, a.created_at) == (b.sku, b.user, b.qty, b.created_at)


def merge(rows: Sequence[OrderRow]) -> tuple[list[OrderRow], list[OrderRow]]:
    """One row per order, the latest by the apply rule; and the rows that reuse a kept row's id for another order.

    A final status beats ``reserved``, the first final stays. One ``INSERT
    ... ON CONFLICT DO UPDATE`` may not touch a row twice, so a batch
    holding two changes of one order is reduced here by the same rule.
    """
    kept: dict[str, OrderRow] = {}
    clashes: list[OrderRow] = []
    for row in rows:
        old = kept.get(row.order_id)
        if old is None:
            kept[row.order_id] = row
        elif not same_order(old, row):
            clashes.append(row)
        elif old.status == "reserved" and row.status != "reserved":
            kept[row.order_id] = row
    return list(kept.values()), clashes


def apply_params(sale: str, rows: Sequence[OrderRow]) -> dict[str, str]:
    """The parameters :data:`APPLY` and :data:`CLASHES` take: the sale, and the rows as one JSON array of arrays."""
    return {"sale": sale, "rows": orjson.dumps(rows, default=tuple).decode()}
