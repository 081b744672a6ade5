"""Order ids nobody can guess: ``<sku>-<n>-<tag>``, e.g. ``moutai-53-7-3f9a0c1e5b7d2468``.

``n`` counts up per SKU (the store recovers it, so ids stay unique across
restarts; on Redis the ledger hands it out, so they stay unique across
workers). ``tag`` is the first 64 bits of HMAC-SHA1(key, ``"<sku>-<n>"``) in
hex: without the key, no id can be derived from others, so walking ids finds
nothing. HMAC-SHA1 because Redis' Lua has ``redis.sha1hex`` and the ledger's
reserve script must mint the same ids (:meth:`OrderIds.lua_pads`); as a keyed
PRF HMAC-SHA1 is sound.

The key is the id source the engine injects, the actors never pick one: a
fresh CSPRNG key per engine in production (:meth:`OrderIds.random`), a key
derived from a scenario's seed in a replay (:meth:`OrderIds.from_seed`), so
replays keep their digests.
"""

from __future__ import annotations

import hashlib
import secrets

TAG_HEX = 16
"""Hex digits of an id's tag: 64 bits."""

_BLOCK = 64  # SHA-1's block size, for the HMAC pads


class OrderIds:
    """Mints order ids for one key; a pure function of ``(key, sku, n)``."""

    __slots__ = ("_inner", "_key", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("an order id key needs at least 16 bytes")
        self._key = key
        inner, outer = self._pads()
        # HMAC by its definition, its two keyed states hashed once: a copy of each per id is about 40 %
        # cheaper than copying an ``hmac`` object, on the inventory owner's thread, once per reserved order.
        self._inner = hashlib.sha1(inner)
        self._outer = hashlib.sha1(outer)

    @classmethod
    def random(cls) -> OrderIds:
        """A fresh 256-bit key from the OS CSPRNG (production)."""
        return cls(secrets.token_bytes(32))

    @classmethod
    def from_seed(cls, seed: str) -> OrderIds:
        """A key derived from ``seed`` (replays: the same scenario mints the same ids)."""
        return cls(hashlib.sha256(f"flashsale-order-ids/1\n{seed}".encode()).digest())

    def make(self, sku: str, n: int) -> str:
        """The id of ``sku``'s ``n``-th order."""
        base = f"{sku}-{n}"
        inner = self._inner.copy()
        inner.update(base.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return f"{base}-{outer.hexdigest()[:TAG_HEX]}"

    def lua_pads(self) -> tuple[str, str]:
        """The key XOR ipad and XOR opad, in hex: what the reserve script needs to compute the same HMAC."""
        inner, outer = self._pads()
        return inner.hex(), outer.hex()

    def _pads(self) -> tuple[bytes, bytes]:
        key = self._key if len(self._key) <= _BLOCK else hashlib.sha1(self._key).digest()
        key = key.ljust(_BLOCK, b"\0")
        return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def order_sku(order_id: str) -> str:
    """The SKU part of an order id (``""`` when it is not shaped like one)."""
    head, sep, _ = order_id.rpartition("-")
    if not sep:
        return ""
    return head.rpartition("-")[0]


def untagged(order_id: str) -> str:
    """``a-3-<tag>`` -> ``a-3``: the part that names an order within one sale; an id without a tag stays."""
    head, _, tag = order_id.rpartition("-")
    if head and len(tag) == TAG_HEX and all(c in "0123456789abcdef" for c in tag):
        return head
    return order_id


def order_number(order_id: str, sku: str) -> int:
    """The per-SKU number ``n`` in an id of ``sku`` (0 when there is none)."""
    n = order_id[len(sku) + 1 :].partition("-")[0]
    return int(n) if n.isdigit() else 0
