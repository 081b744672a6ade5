"""Order ids in assertions: ``plain`` drops the unguessable tag, leaving ``<sku>-<n>``."""

from __future__ import annotations

import re

from flashsale.actors import OrderIds


def plain(order_id: str | None) -> str:
    """``moutai-53-7-3f9a0c1e5b7d2468`` -> ``moutai-53-7``: the part a test can predict."""
    assert order_id is not None
    head, _, tag = order_id.rpartition("-")
    assert len(tag) == 16, order_id
    int(tag, 16)  # hex, or ValueError
    return head


def untag_log(log: tuple[tuple[object, ...], ...] | list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """A replay's decision log with every order id's tag dropped (ids may be joined by commas)."""
    return [tuple(_untag(v) if isinstance(v, str) else v for v in d) for d in log]


def _untag(text: str) -> str:
    return re.sub(r"(?<=\d)-[0-9a-f]{16}(?=,|$)", "", text)


TEST_IDS = OrderIds(bytes(range(32)))
"""A known id key: inject it (``ids=`` / ``order_ids=``) to know the ids a sale will mint."""


def minted(sku: str, n: int) -> str:
    """The id of ``sku``'s ``n``-th order under :data:`TEST_IDS`."""
    return TEST_IDS.make(sku, n)
