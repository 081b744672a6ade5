"""The dedup actor's table of live idempotency keys, bounded per buyer, per address and in all.

A key is *live* while its answer can still matter: while its purchase is
in flight (duplicates wait for the same answer) and, once it reserved an
order, until that order is final (paid, cancelled, expired) or ``ttl``
has passed. A refused purchase's key is forgotten with the answer: a retry
is decided again, and can only buy if units came back, never twice.

Three bounds, so that no client can lock other buyers out:

- ``per_buyer``: live keys one buyer may hold; beyond it only that buyer's
  new keys are refused (:data:`BUYER`);
- ``per_ip``: live keys of one client address; beyond it only that address
  is refused (:data:`ADDRESS`). Purchases without an address (embedded
  callers that pass none) skip this bound, as they skip the per-IP limit;
- ``max_keys``: the whole table. When it is full, a new key takes the slot
  of the oldest settled key of the address that holds the most keys, unless
  the newcomer's own address holds as many: then the newcomer is refused
  (:data:`FULL`). So a full table refuses only its biggest holder. The
  evicted key's buyer loses only the replay of that answer: a retry with
  it is decided again, within the buyer's per-user limit.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar, Final

from ._messages import Outcome

BUYER: Final = "buyer"
ADDRESS: Final = "address"
FULL: Final = "full"

Key = tuple[str, str]
"""``(user, idempotency_key)``."""


class Keyed:
    """One live idempotency key: the body it came with, its address, and its answer once known."""

    __slots__ = ("expires_at", "ip", "outcome", "qty", "sku", "waiters")

    def __init__(self, sku: str, qty: int, ip: str | None, expires_at: int, outcome: Outcome | None = None) -> None:
        self.sku = sku
        self.qty = qty
        self.ip = ip
        self.outcome = outcome
        self.waiters: list[Any] = []
        self.expires_at = expires_at


class KeyGauges:
    """The table's fill for ``/readyz`` and ``/metrics``; written by the dedup actor's thread only."""

    __slots__ = ("capacity", "evicted", "live", "refused")

    RETRY_AFTER: ClassVar[float] = 1.0
    """Seconds a buyer or address refused for holding too many keys is told to wait (keys free up as orders settle)."""

    def __init__(self, capacity: int = 0) -> None:
        self.capacity = capacity
        self.live = 0
        self.evicted = 0
        self.refused: dict[str, int] = {BUYER: 0, ADDRESS: 0, FULL: 0}


class KeyTable:
    """Live keys in arrival order, counted per buyer and per address; see the module docstring."""

    def __init__(self, max_keys: int, per_buyer: int, per_ip: int, gauges: KeyGauges | None = None) -> None:
        self._max = max_keys
        self._per_buyer = per_buyer
        self._per_ip = per_ip
        self.gauges = gauges or KeyGauges()
        self.gauges.capacity = max_keys
        self._keys: OrderedDict[Key, Keyed] = OrderedDict()
        self._buyers: dict[str, int] = {}
        self._ips: dict[str, dict[Key, None]] = {}  # each address's keys, oldest first
        self._holding: dict[int, set[str]] = {}  # addresses by how many keys they hold
        self._top = 0  # the most keys any address holds

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, k: Key) -> Keyed | None:
        return self._keys.get(k)

    def admit(self, k: Key, entry: Keyed, *, bounded: bool = True) -> str | None:
        """Add ``entry`` under ``k`` (not present); return why it was refused, or ``None``.

        ``bounded=False`` (keys recovered from the store at start-up) skips
        the bounds: forgetting those would let a retry buy twice.
        """
        user = k[0]
        mine = len(self._ips.get(entry.ip, ())) if entry.ip is not None else 0
        if bounded:
            if self._buyers.get(user, 0) >= self._per_buyer:
                return self._refused(BUYER)
            if mine >= self._per_ip:
                return self._refused(ADDRESS)
            if len(self._keys) >= self._max and (mine >= self._top or not self._evict_from_top()):
                return self._refused(FULL)
        self._keys[k] = entry
        self._buyers[user] = self._buyers.get(user, 0) + 1
        if entry.ip is not None:
            self._ips.setdefault(entry.ip, {})[k] = None
            self._moved(entry.ip, mine, mine + 1)
        self.gauges.live = len(self._keys)
        return None

    def forget(self, k: Key) -> Keyed | None:
        """Drop ``k`` (its answer no longer matters); return its entry if it was live."""
        entry = self._keys.pop(k, None)
        if entry is None:
            return None
        user = k[0]
        left = self._buyers[user] - 1
        if left:
            self._buyers[user] = left
        else:
            del self._buyers[user]
        if entry.ip is not None:
            held = self._ips[entry.ip]
            del held[k]
            self._moved(entry.ip, len(held) + 1, len(held))
            if not held:
                del self._ips[entry.ip]
        self.gauges.live = len(self._keys)
        return entry

    def expire(self, at: int) -> None:
        """Forget settled keys whose replay window ended by ``at`` (the oldest first)."""
        keys = self._keys
        while keys:
            k, entry = next(iter(keys.items()))
            if entry.expires_at > at or entry.outcome is None:
                return
            self.forget(k)

    def _evict_from_top(self) -> bool:
        """Forget the oldest settled key of the address holding the most; false if all of its keys are in flight."""
        for ip in self._holding.get(self._top, ()):
            for k in self._ips[ip]:
                if self._keys[k].outcome is not None:
                    self.forget(k)
                    self.gauges.evicted += 1
                    return True
        return False

    def _moved(self, ip: str, before: int, after: int) -> None:
        if before:
            group = self._holding[before]
            group.discard(ip)
            if not group:
                del self._holding[before]
        if after:
            self._holding.setdefault(after, set()).add(ip)
        if after > self._top:
            self._top = after
        elif before == self._top and before not in self._holding:
            self._top = max(after, before - 1) if self._holding else 0

    def _refused(self, why: str) -> str:
        self.gauges.refused[why] += 1
        return why
