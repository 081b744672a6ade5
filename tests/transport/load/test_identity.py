"""Credentials as each auth mode expects them; tokens verified with PyJWT as a server would."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from flashsale.transport.load._identity import Identity, IdentityError


def test_trusted_names_the_buyer_in_requests() -> None:
    """Trusted mode: no credential header, ``?user=`` on reads and ``{"user"}`` on pay/cancel."""
    i = Identity.from_options("trusted")
    assert i.headers("u1") == {}
    assert i.read_params("u1") == {"user": "u1"}
    assert i.change_body("u1") == b'{"user":"u1"}'


def test_header_mode_sets_the_named_header() -> None:
    """Header mode: the buyer in the configured header, nothing in the query or body."""
    i = Identity.from_options("header", header="X-Buyer")
    assert i.headers("u1") == {"X-Buyer": "u1"}
    assert i.read_params("u1") == {}
    assert i.change_body("u1") == b""


def test_jwt_hs256_tokens_verify_with_the_secret(tmp_path: Path) -> None:
    """An HS256 token from a secret file verifies with that secret; sub is the buyer, iss/aud as given."""
    (tmp_path / "secret").write_text("s3cret-s3cret-s3cret-s3cret-s3cret\n")
    i = Identity.from_options("jwt", secret_file=str(tmp_path / "secret"), issuer="https://id", audience="fs")
    token = i.headers("u7")["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, "s3cret-s3cret-s3cret-s3cret-s3cret", algorithms=["HS256"], audience="fs",
                        issuer="https://id")  # fmt: skip
    assert claims["sub"] == "u7"
    assert i.headers("u7")["Authorization"].endswith(token)  # one token per buyer, kept


def test_jwt_es256_tokens_verify_with_the_public_key(tmp_path: Path) -> None:
    """A private key file signs ES256 tokens that the matching public key verifies."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "k.pem").write_bytes(pem)
    i = Identity.from_options("jwt", key_file=str(tmp_path / "k.pem"), algorithm="ES256")
    token = i.token("buyer-1")
    assert jwt.decode(token, key.public_key(), algorithms=["ES256"])["sub"] == "buyer-1"


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"secret": "a", "key_file": "x"}, {"secret": "a", "algorithm": "RS256"}, {"key_file": "/nonexistent"}],
)
def test_jwt_without_a_usable_key_is_refused_at_start(kwargs: dict[str, str]) -> None:
    """No key, two keys, a secret with an asymmetric algorithm, an unreadable file: IdentityError."""
    with pytest.raises(IdentityError):
        Identity.from_options("jwt", **kwargs)  # type: ignore[arg-type]
