"""The ``[feed]`` section: the live stock feeds (``GET /v1/events``, ``GET /v1/skus/{sku}/events``).

Every key has a default, so a sale without the section has the feeds on:

- ``max_rate``: events per SKU per second at most (changes in between are
  coalesced into the next one); default 10.
- ``max_listeners``: open feed connections per process; one more is
  answered ``503 overloaded``. Default 20,000.
- ``max_buffer``: bytes a listener may have waiting to be sent; a listener
  further behind is dropped (its connection closed). Default 64 KiB.
- ``ping_interval``: seconds between the comment lines that keep proxies
  from closing an idle stream; default 15.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._reader import _Reader

KEYS = frozenset({"max_rate", "max_listeners", "max_buffer", "ping_interval"})
MAX_RATE = 1000.0


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """Bounds of the live stock feeds."""

    max_rate: float = 10.0
    max_listeners: int = 20_000
    max_buffer: int = 65_536
    ping_interval: float = 15.0

    def to_mapping(self) -> dict[str, Any]:
        return {
            "max_rate": self.max_rate,
            "max_listeners": self.max_listeners,
            "max_buffer": self.max_buffer,
            "ping_interval": self.ping_interval,
        }


def read_feed(reader: _Reader, data: Any) -> FeedConfig:
    """The ``[feed]`` table, validated (errors name the key)."""
    t: Mapping[str, Any] = reader.table(data, "feed", set(KEYS))
    d = FeedConfig()
    rate = reader.seconds(t, "max_rate", "feed", d.max_rate)  # "> 0, a number": the same check
    if rate > MAX_RATE:
        raise reader.fail("feed.max_rate", f"must be at most {MAX_RATE:.0f} events per second, got {rate}")
    buffer = reader.positive(t, "max_buffer", "feed", d.max_buffer)
    if buffer < 1024:
        raise reader.fail("feed.max_buffer", f"must be at least 1024 bytes (one event), got {buffer}")
    return FeedConfig(
        max_rate=rate,
        max_listeners=reader.positive(t, "max_listeners", "feed", d.max_listeners),
        max_buffer=buffer,
        ping_interval=reader.seconds(t, "ping_interval", "feed", d.ping_interval),
    )
