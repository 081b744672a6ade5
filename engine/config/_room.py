"""The ``[waiting_room]`` table: a fair queue in front of the sale (README, "The waiting room").

Exactly these keys; a wrong or unknown one is a :class:`flashsale.ConfigError`
naming the key. Times are microseconds since the epoch, durations seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._reader import _Reader

ROOM_KEYS = frozenset(
    {"opens_at", "starts_at", "admit_rate", "admit_burst", "pass_ttl", "heartbeat", "pow_bits", "secret_file"}
)
MAX_POW_BITS = 32
MAX_BURST = 1_000_000
MAX_SECONDS = 1_000_000.0
"""Bounds that keep every number of the room's integer bucket and times exact as a double (the Lua on Redis)."""


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """The waiting room: when it opens and draws, how fast it admits, how long a pass lasts.

    ``opens_at`` ``None``: the pre-queue is open from the engine's start.
    ``secret_file`` ``None``: passes are signed with a random key per start
    (one process only).
    """

    starts_at: int
    opens_at: int | None = None
    admit_rate: float = 200.0
    admit_burst: int = 200
    pass_ttl: float = 600.0
    heartbeat: float = 20.0
    pow_bits: int = 0
    secret_file: str | None = None

    def to_mapping(self, instant: Any) -> dict[str, Any]:
        """The table as :func:`read_room` reads it; ``instant`` formats a time."""
        table: dict[str, Any] = {
            "starts_at": instant(self.starts_at),
            "admit_rate": self.admit_rate,
            "admit_burst": self.admit_burst,
            "pass_ttl": self.pass_ttl,
            "heartbeat": self.heartbeat,
            "pow_bits": self.pow_bits,
        }
        if self.opens_at is not None:
            table["opens_at"] = instant(self.opens_at)
        if self.secret_file is not None:
            table["secret_file"] = self.secret_file
        return table


def read_room(reader: _Reader, data: Any, sku_starts: list[int | None]) -> RoomConfig:
    """Read ``[waiting_room]``; ``sku_starts`` are the SKUs' ``starts_at`` (the default draw time)."""
    where = "waiting_room"
    t: Mapping[str, Any] = reader.table(data, where, set(ROOM_KEYS))
    opens = reader.instant(t, "opens_at", where)
    starts = reader.instant(t, "starts_at", where)
    if starts is None:
        known = [s for s in sku_starts if s is not None]
        if not known:
            raise reader.fail(f"{where}.starts_at", "is required when no [[sku]] has a starts_at")
        starts = min(known)
    if opens is not None and opens > starts:
        raise reader.fail(f"{where}.opens_at", "must not be after starts_at (the pre-queue opens before the draw)")
    rate = float(reader.value(t, "admit_rate", (int, float), where, 200.0))
    if not 0 < rate <= 1_000_000:
        raise reader.fail(f"{where}.admit_rate", f"must be > 0 and at most 1000000 buyers per second, got {rate}")
    burst = reader.positive(t, "admit_burst", where, max(1, round(rate)))
    if burst > MAX_BURST:
        raise reader.fail(f"{where}.admit_burst", f"must be at most {MAX_BURST}, got {burst}")
    pass_ttl = reader.seconds(t, "pass_ttl", where, 600.0)
    heartbeat = reader.seconds(t, "heartbeat", where, 20.0)
    for key, value in (("pass_ttl", pass_ttl), ("heartbeat", heartbeat)):
        if value > MAX_SECONDS:
            raise reader.fail(f"{where}.{key}", f"must be at most {MAX_SECONDS:.0f} seconds, got {value}")
    pow_bits = reader.value(t, "pow_bits", int, where, 0)
    if not 0 <= pow_bits <= MAX_POW_BITS:
        raise reader.fail(f"{where}.pow_bits", f"must be 0 to {MAX_POW_BITS}, got {pow_bits}")
    secret = reader.value(t, "secret_file", str, where, "") or None
    return RoomConfig(
        starts_at=starts,
        opens_at=opens,
        admit_rate=rate,
        admit_burst=burst,
        pass_ttl=pass_ttl,
        heartbeat=heartbeat,
        pow_bits=pow_bits,
        secret_file=secret,
    )
