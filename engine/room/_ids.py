"""What the room draws at random: ticket ids and the pass-signing key, or their seeded forms for a replay."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from flashsale._errors import Unavailable
from flashsale.config import RoomConfig


def load_secret(config: RoomConfig) -> bytes:
    """The pass-signing key: the ``secret_file``'s bytes, or 32 random bytes for this start."""
    if config.secret_file is None:
        return os.urandom(32)
    try:
        raw = Path(config.secret_file).read_bytes().strip()
    except OSError as exc:
        raise Unavailable(f"waiting_room.secret_file {config.secret_file!r}: cannot read: {exc.strerror}") from exc
    if len(raw) < 16:
        raise Unavailable(f"waiting_room.secret_file {config.secret_file!r} holds fewer than 16 bytes")
    return raw


def random_ids(batch: int = 1024) -> Callable[[], str]:
    """Ticket ids: 12 CSPRNG bytes (96 bits) each, as 16 base64url characters, drawn ``batch`` at a time.

    One ``os.urandom`` call per id is a system call that releases the GIL on
    the loop's hot path (and lets the actor threads take it); one call and
    one encoding per ``batch`` ids costs a slice per join. 12 bytes encode to
    exactly 16 characters, so the ids are slices of one encoded pool.
    """
    pool = ""
    offset = 0

    def next_id() -> str:
        nonlocal pool, offset
        if offset >= len(pool):
            pool, offset = base64.urlsafe_b64encode(secrets.token_bytes(12 * batch)).decode("ascii"), 0
        offset += 16
        return pool[offset - 16 : offset]

    return next_id


def seeded_ids(seed: bytes) -> Callable[[], str]:
    """Ticket ids derived from ``seed`` (replays): the same scenario names the same tickets."""
    counter = iter(range(1 << 62))
    key = hashlib.sha256(b"flashsale-ticket-ids/1" + seed).digest()
    return lambda: hashlib.sha256(key + next(counter).to_bytes(8, "big")).hexdigest()[:22]
