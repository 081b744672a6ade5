"""Order ids: <sku>-<n>-<64-bit keyed tag>, a pure function of the injected key."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re

import pytest

from flashsale.actors import OrderIds, order_number, order_sku, untagged

KEY = bytes(range(32))


def test_an_id_is_sku_number_and_a_keyed_tag() -> None:
    """The tag is the first 64 bits of HMAC-SHA1(key, '<sku>-<n>') in hex."""
    order_id = OrderIds(KEY).make("moutai-53", 7)
    assert re.fullmatch(r"moutai-53-7-[0-9a-f]{16}", order_id)
    assert order_id.endswith(hmac.new(KEY, b"moutai-53-7", hashlib.sha1).hexdigest()[:16])


@pytest.mark.parametrize("key", [KEY, b"k" * 16, bytes(range(64)), bytes(range(200))], ids=["32", "16", "64", "200"])
def test_the_tag_is_hmac_sha1_for_every_key_length(key: bytes) -> None:
    """Short keys are padded, keys longer than SHA-1's 64-byte block hashed first, as HMAC does."""
    ids = OrderIds(key)
    for sku, n in [("a", 1), ("moutai-53", 123_456_789), ("x" * 64, 2)]:
        tag = hmac.new(key, f"{sku}-{n}".encode(), hashlib.sha1).hexdigest()[:16]
        assert ids.make(sku, n) == f"{sku}-{n}-{tag}"


def test_the_same_key_mints_the_same_ids_and_another_key_others() -> None:
    """Deterministic per key (replays), unrelated across keys (restarts, workers, other sales)."""
    assert OrderIds(KEY).make("a", 1) == OrderIds(KEY).make("a", 1)
    assert OrderIds.from_seed("s/1").make("a", 1) == OrderIds.from_seed("s/1").make("a", 1)
    assert OrderIds.from_seed("s/1").make("a", 1) != OrderIds.from_seed("s/2").make("a", 1)
    tags = {OrderIds.random().make("a", 1) for _ in range(100)}
    assert len(tags) == 100


def test_neighbouring_ids_share_no_tag_bits_by_construction() -> None:
    """Consecutive numbers get unrelated tags: knowing n's id says nothing of n+1's."""
    ids = OrderIds(KEY)
    tags = [int(ids.make("a", n).rsplit("-", 1)[1], 16) for n in range(1, 2001)]
    assert len(set(tags)) == len(tags)
    ones = sum(bin(a ^ b).count("1") for a, b in itertools.pairwise(tags)) / (len(tags) - 1)
    assert 28 < ones < 36  # about half of the 64 bits differ between neighbours


def test_a_short_key_is_refused() -> None:
    """Fewer than 16 key bytes is a ValueError: the tag is only as strong as the key."""
    with pytest.raises(ValueError, match="16 bytes"):
        OrderIds(b"short")


def test_lua_pads_are_the_hmac_pads() -> None:
    """lua_pads() are key^0x36 and key^0x5c over 64 bytes: the script's HMAC equals Python's."""
    inner, outer = OrderIds(KEY).lua_pads()
    padded = KEY.ljust(64, b"\0")
    assert bytes.fromhex(inner) == bytes(b ^ 0x36 for b in padded)
    assert bytes.fromhex(outer) == bytes(b ^ 0x5C for b in padded)
    inner_hash = hashlib.sha1(bytes.fromhex(inner) + b"a-1").digest()
    assert hashlib.sha1(bytes.fromhex(outer) + inner_hash).hexdigest()[:16] == OrderIds(KEY).make("a", 1)[-16:]


def test_ids_parse_back() -> None:
    """order_sku, order_number and untagged read an id (skus with hyphens too); older untagged ids still parse."""
    order_id = OrderIds(KEY).make("moutai-53", 12)
    assert order_sku(order_id) == "moutai-53"
    assert order_number(order_id, "moutai-53") == 12
    assert order_number("moutai-53-12", "moutai-53") == 12
    assert order_number("moutai-53-x", "moutai-53") == 0
    assert untagged(order_id) == "moutai-53-12"
    assert untagged("moutai-53-12") == "moutai-53-12"
    assert order_sku("nohyphen") == ""
