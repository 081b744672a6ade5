"""The waiting room's cryptography: the draw, admission passes and proof-of-work challenges.

Pure functions of their arguments (no clock, no randomness drawn here), so
the room actor, the gateway and a replay all compute the same values:

- the draw: ``commitment = sha256(seed).hexdigest()`` is published before the
  first ticket; at the draw the pre-queue is ordered by
  ``sha256(seed + ticket_id.encode("ascii")).digest()``, ascending;
- a pass: ``<user, base64url>.<expires_at µs>.<HMAC-SHA256, base64url>``,
  bound to its buyer and to this sale's commitment, compared in constant time;
- a challenge: ``<expires_at µs>.<random hex>.<HMAC-SHA256 hex>``; a nonce
  proves work when ``sha256((challenge + ":" + nonce).encode())`` starts with
  ``bits`` zero bits.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

MAX_NONCE = 64
MAX_CHALLENGE = 128


def commitment(seed: bytes) -> str:
    """What the room publishes before any ticket exists: ``sha256(seed)`` in hex."""
    return hashlib.sha256(seed).hexdigest()


def draw_order(seed: bytes, tickets: Iterable[str]) -> list[str]:
    """The pre-queue in drawn order: by ``sha256(seed + ticket)``, ascending."""
    return sorted(tickets, key=lambda t: hashlib.sha256(seed + t.encode("ascii")).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _pass_mac(secret: bytes, sale: str, user: str, expires_at: int) -> bytes:
    return hmac.new(secret, f"flashsale-pass/1\n{sale}\n{user}\n{expires_at}".encode(), hashlib.sha256).digest()


def sign_pass(secret: bytes, sale: str, user: str, expires_at: int) -> str:
    """An admission pass for ``user`` in sale ``sale`` (the room's commitment), good until ``expires_at``."""
    return f"{_b64(user.encode())}.{expires_at}.{_b64(_pass_mac(secret, sale, user, expires_at))}"


def check_pass(secret: bytes, sale: str, token: str, user: str, at: int) -> str:
    """Why ``token`` does not admit ``user`` at ``at`` ("" when it does).

    A forged, malformed, expired or other buyer's pass each gets its reason;
    the signature is compared in constant time.
    """
    parts = token.split(".")
    if len(parts) != 3 or len(token) > 1024:
        return "the pass is malformed"
    name, exp, sig = parts
    try:
        holder = _unb64(name).decode()
        expires_at = int(exp)
        given = _unb64(sig)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return "the pass is malformed"
    if not hmac.compare_digest(given, _pass_mac(secret, sale, holder, expires_at)):
        return "the pass's signature does not match"
    if not hmac.compare_digest(holder.encode(), user.encode()):
        return "the pass belongs to another buyer"
    if at >= expires_at:
        return "the pass has expired"
    return ""


def _challenge_mac(secret: bytes, body: str) -> str:
    return hmac.new(secret, f"flashsale-pow/1\n{body}".encode(), hashlib.sha256).hexdigest()[:32]


def make_challenge(secret: bytes, expires_at: int, nonce_hex: str) -> str:
    """A signed challenge good until ``expires_at``; ``nonce_hex`` is the caller's randomness."""
    body = f"{expires_at}.{nonce_hex}"
    return f"{body}.{_challenge_mac(secret, body)}"


def challenge_expiry(secret: bytes, challenge: str) -> int | None:
    """When a challenge this room signed expires; ``None`` when it is not one of ours."""
    if len(challenge) > MAX_CHALLENGE or not challenge.isascii():
        return None
    body, _, sig = challenge.rpartition(".")
    exp, _, _ = body.partition(".")
    if not sig or not exp.isdigit() or not hmac.compare_digest(sig, _challenge_mac(secret, body)):
        return None
    return int(exp)


def proves_work(challenge: str, nonce: str, bits: int) -> bool:
    """True when ``sha256((challenge + ":" + nonce).encode())`` starts with ``bits`` zero bits."""
    digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
    return int.from_bytes(digest, "big") >> (256 - bits) == 0 if bits else True


def solve(challenge: str, bits: int) -> str:
    """A nonce that proves ``bits`` of work on ``challenge`` (what a client does; about 2**bits hashes)."""
    n = 0
    while not proves_work(challenge, str(n), bits):
        n += 1
    return str(n)
