"""The apply rule on a real PostgreSQL: any delivery order, any repeats, any batching gives the same rows."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flashsale.redis._schema import APPLY, OrderRow, apply_params, merge, migrate, parse
from tests.distributed.sinkkit import T0, entry, packed

FINALS = (None, "paid", "cancelled", "expired")


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection on a migrated database."""
    with psycopg.connect(pg_url, autocommit=True) as c:
        migrate(c)
        yield c


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), finals=st.lists(st.sampled_from(FINALS), min_size=1, max_size=8))
def test_any_delivery_gives_the_same_rows(
    conn: psycopg.Connection[tuple[object, ...]], data: st.DataObject, finals: list[str | None]
) -> None:
    """Each order's entries (reserved, then at most one final) delivered shuffled, repeated and batched at random."""
    conn.execute("TRUNCATE orders")
    entries: list[OrderRow] = []
    for n, final in enumerate(finals, start=1):
        entries += parse("a", packed(entry(f"a-{n}")))[0]
        if final is not None:
            entries += parse("a", packed(entry(f"a-{n}", final)))[0]
    copies = data.draw(st.lists(st.integers(1, 3), min_size=len(entries), max_size=len(entries)), "copies")
    delivered = data.draw(st.permutations([e for e, c in zip(entries, copies, strict=True) for _ in range(c)]))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(delivered)), max_size=4), "batch ends") | {len(delivered)})
    start = 0
    for end in cuts:
        with conn.transaction():
            conn.execute(APPLY, apply_params("s", merge(delivered[start:end])[0]))
        start = end
    rows = {r[0]: r[1:] for r in conn.execute("SELECT order_id, status, changed_at FROM orders").fetchall()}
    expected = {}
    for n, final in enumerate(finals, start=1):
        last = entry(f"a-{n}", final or "reserved")
        expected[f"a-{n}"] = (final or "reserved", int(last["changed_at"]))
    assert rows == expected


def test_a_packed_entry_gives_the_rows_the_fields_give() -> None:
    """Rows read column by column equal rows read field by field, a 19-digit time (past the quick check) too."""
    first, second = entry("a-1"), entry("a-2", "paid", user='ü/"x', key="k") | {"changed_at": str(2**63 - 1)}
    assert parse("a", packed(first, second)) == (parse("a", first)[0] + parse("a", second)[0], [])
    assert parse("a", packed(first)) == (
        [OrderRow("a-1", "a", "u", 1, "reserved", T0 + 1, T0 + 1 + 900_000_000, T0 + 1, None)],
        [],
    )
    assert parse("a", packed(second))[0][0].changed_at == 2**63 - 1
