"""The room's cryptography: the draw formula, passes bound to a buyer and a sale, proof-of-work challenges."""

from __future__ import annotations

import hashlib

from flashsale.actors._room_passes import (
    challenge_expiry,
    check_pass,
    commitment,
    draw_order,
    make_challenge,
    proves_work,
    sign_pass,
    solve,
)

KEY = b"k" * 32
SALE = "c0ffee"


def test_the_draw_is_the_published_formula() -> None:
    """commitment = sha256(seed) hex; the order is by sha256(seed + ticket) ascending."""
    seed = bytes(range(32))
    assert commitment(seed) == hashlib.sha256(seed).hexdigest()
    tickets = [f"t{n}" for n in range(50)]
    assert draw_order(seed, tickets) == sorted(tickets, key=lambda t: hashlib.sha256(seed + t.encode()).digest())
    assert draw_order(seed, tickets) != draw_order(bytes(32), tickets)


def test_a_pass_admits_its_buyer_until_it_expires() -> None:
    """Good for its buyer before expires_at; expired at it; each failure says which check failed."""
    token = sign_pass(KEY, SALE, "alice", 1000)
    assert check_pass(KEY, SALE, token, "alice", 999) == ""
    assert check_pass(KEY, SALE, token, "alice", 1000) == "the pass has expired"
    assert check_pass(KEY, SALE, token, "bob", 10) == "the pass belongs to another buyer"
    assert check_pass(b"x" * 32, SALE, token, "alice", 10) == "the pass's signature does not match"
    assert check_pass(KEY, "another-sale", token, "alice", 10) == "the pass's signature does not match"
    for bad in ("", "a.b", "a.b.c.d", "!!.1.x", "YWxpY2U.notanumber.x", "x" * 2000):
        assert check_pass(KEY, SALE, bad, "alice", 10) == "the pass is malformed", bad


def test_a_pass_for_an_odd_buyer_name_round_trips() -> None:
    """Names with dots, unicode and spaces are bound exactly."""
    for user in ("a.b.c", "张三", "x y", "=="):
        assert check_pass(KEY, SALE, sign_pass(KEY, SALE, user, 50), user, 1) == ""


def test_challenges_are_ours_or_nothing() -> None:
    """A challenge names its expiry; a changed one, a foreign one or junk is not ours."""
    c = make_challenge(KEY, 123_456, "ab" * 16)
    assert challenge_expiry(KEY, c) == 123_456
    exp, rand, sig = c.split(".")
    assert challenge_expiry(KEY, f"{int(exp) + 1}.{rand}.{sig}") is None
    assert challenge_expiry(b"y" * 32, c) is None
    for junk in ("", "...", "1.2", "é.1.2", "1" * 200):
        assert challenge_expiry(KEY, junk) is None


def test_proof_of_work_counts_leading_zero_bits() -> None:
    """A nonce proves b bits when the digest's first b bits are zero; solve finds one; 0 bits is free."""
    c = make_challenge(KEY, 1, "00" * 16)
    for bits in (1, 4, 8, 12):
        nonce = solve(c, bits)
        digest = hashlib.sha256(f"{c}:{nonce}".encode()).digest()
        assert int.from_bytes(digest, "big") >> (256 - bits) == 0
        assert proves_work(c, nonce, bits)
    nonce = solve(c, 8)
    digest = int.from_bytes(hashlib.sha256(f"{c}:{nonce}".encode()).digest(), "big")
    tighter = 256 - digest.bit_length()  # how many zero bits this nonce happens to give
    assert not proves_work(c, nonce, tighter + 1)
    assert proves_work(c, "anything", 0)
