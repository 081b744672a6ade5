"""SinkGauges: what the order sink is doing, for ``/readyz`` and ``/metrics``."""

from __future__ import annotations

import time

STALL_AFTER = 10.0  # a PostgreSQL call running this long makes ``ok`` false (a hung server answers nothing)


class SinkGauges:
    """What the sink is doing, for ``/readyz`` and ``/metrics``; written by the sink's thread only.

    ``pending`` counts entries read and not yet acknowledged; ``committed``
    entries written to PostgreSQL (a redelivered entry counts again);
    ``reclaimed`` entries taken over from idle consumers; ``rejected``
    malformed entries kept in ``order_rejects`` instead of ``orders``;
    ``failures`` failed attempts against either server.
    """

    __slots__ = (
        "busy_since",
        "committed",
        "failures",
        "idempotency_keys",
        "pending",
        "pg_up",
        "reclaimed",
        "redis_ok",
        "rejected",
    )

    def __init__(self) -> None:
        self.pg_up = False
        self.redis_ok = False
        self.busy_since: float | None = None
        self.pending = 0
        self.committed = 0
        self.failures = 0
        self.reclaimed = 0
        self.rejected = 0
        self.idempotency_keys = 0  # live keys of the sale's SKUs in Redis, read every KEYS_EVERY seconds

    @property
    def ok(self) -> bool:
        """PostgreSQL answered the last call, and no call has been hanging for :data:`STALL_AFTER` seconds."""
        busy = self.busy_since
        return self.pg_up and (busy is None or time.monotonic() - busy < STALL_AFTER)
