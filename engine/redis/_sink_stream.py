"""The orders streams the sink reads: their keys, entry ids, the batches read from them, the drain check.

Each SKU's orders stream ``P:{S}:orders`` is read by the consumer group
:data:`GROUP`; see :mod:`._sink` for how :class:`~._sink.OrderSink` moves
its entries into PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
import redis

from ._schema import OrderRow, parse

GROUP = "writers"


def stream_key(prefix: str, sku: str) -> str:
    """The orders stream of ``sku``: its hash tag keeps it in the SKU's Redis Cluster slot."""
    return f"{prefix}:{{{sku}}}:orders"


def _entry_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(slots=True)
class _Batch:
    """Entries read together: written in one transaction, then acknowledged together."""

    ids: dict[str, list[str]] = field(default_factory=dict)
    rows: list[OrderRow] = field(default_factory=list)
    rejects: list[tuple[str, str, str, str]] = field(default_factory=list)
    origin: dict[str, tuple[str, str]] = field(default_factory=dict)  # order id -> (stream, entry id) it came in
    clashes: int = 0
    committed: bool = False

    def add(self, stream: str, sku: str, entries: Sequence[tuple[str | None, Mapping[str, str] | None]]) -> int:
        """Take ``entries`` of ``sku``'s stream; malformed ones become rejects. Return how many were taken."""
        taken = 0
        for entry_id, fields in entries:
            if entry_id is None or fields is None:
                continue  # deleted under us: already written and acknowledged
            self.ids.setdefault(stream, []).append(entry_id)
            taken += 1
            rows, bad = parse(sku, fields)
            self.rows += rows
            for row in rows:
                self.origin[row.order_id] = (stream, entry_id)
            if bad:  # its good rows land; the entry is kept whole beside them, with why the rest could not
                self.rejects.append((stream, entry_id, orjson.dumps(dict(fields)).decode(), "; ".join(bad)))
        return taken

    @property
    def size(self) -> int:
        return sum(map(len, self.ids.values()))


def last_ids(client: redis.Redis, streams: Collection[str]) -> dict[str, str] | None:
    """The id of each non-empty stream's last entry; ``None`` while Redis does not answer."""
    pipe = client.pipeline(transaction=False)
    for stream in streams:
        pipe.xrevrange(stream, count=1)
    try:
        replies = pipe.execute()
    except redis.RedisError:
        return None
    return {stream: last[0][0] for stream, last in zip(streams, replies, strict=True) if last}


def drained(client: redis.Redis, targets: Mapping[str, str]) -> bool:
    if not targets:
        return True
    pipe = client.pipeline(transaction=False)
    for stream, last in targets.items():
        pipe.xinfo_groups(stream)
        pipe.xpending_range(stream, GROUP, "-", last, count=1)
    try:
        replies = pipe.execute(raise_on_error=False)
    except redis.RedisError:
        return False  # Redis is away: not drained yet
    if any(isinstance(reply, Exception) for reply in replies):
        return False  # no group yet: nothing was read
    for (_, last), groups, pending in zip(targets.items(), replies[::2], replies[1::2], strict=True):
        delivered = next((g["last-delivered-id"] for g in groups if g["name"] == GROUP), None)
        if delivered is None or _entry_id(delivered) < _entry_id(last) or pending:
            return False
    return True
