"""The verified-token cache: keyed by the token string, bounded, and never past a token's exp."""

from __future__ import annotations

import time

import pytest

from flashsale import AuthConfig
from flashsale.transport._auth import AuthRefused, JwtVerifier
from tests.transport.authkit import SECRET, hs256

AUTH = AuthConfig(mode="jwt", jwt_secret=SECRET, jwt_leeway=5)


class Clock:
    """The verifier's wall clock, moved by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_verified_token_is_kept_until_its_exp_plus_leeway() -> None:
    """A cached token answers its sub until exp + leeway on the verifier's clock, then is refused and dropped."""
    clock = Clock()
    verifier = JwtVerifier(AUTH, now=clock)
    exp = int(clock.now) + 60
    token = hs256({"exp": exp})
    assert verifier.buyer(token) == "alice"
    assert len(verifier) == 1
    clock.now = exp + 5
    assert verifier.buyer(token) == "alice"  # from the cache: the same string, still within leeway
    clock.now = exp + 5.001
    with pytest.raises(AuthRefused) as info:
        verifier.buyer(token)
    assert (info.value.status, info.value.detail) == (401, "the token has expired (exp)")
    assert len(verifier) == 0


def test_the_cache_is_bounded_oldest_first() -> None:
    """Past max_cached tokens the oldest is dropped: memory stays bounded whatever the traffic."""
    verifier = JwtVerifier(AUTH, max_cached=3)
    tokens = [hs256({"sub": f"u{i}"}) for i in range(10)]
    assert [verifier.buyer(t) for t in tokens] == [f"u{i}" for i in range(10)]
    assert len(verifier) == 3
    assert verifier.buyer(tokens[0]) == "u0"  # verified again, not remembered
    assert len(verifier) == 3


def test_a_refused_token_is_never_cached() -> None:
    """Only verified tokens enter the cache: a bad one is checked (and refused) every time."""
    verifier = JwtVerifier(AUTH)
    bad = hs256(secret="another-secret-that-is-32-bytes-long")
    for _ in range(3):
        with pytest.raises(AuthRefused, match="signature does not verify"):
            verifier.buyer(bad)
    assert len(verifier) == 0
