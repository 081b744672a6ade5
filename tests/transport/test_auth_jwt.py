"""``[auth] mode = "jwt"`` through a real server: the buyer is a verified token's ``sub``; every bad token is a 401.

Tokens are minted here with PyJWT, as an identity provider would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.scenarios.conftest import StartServer, start_server  # noqa: F401 - the fixture
from tests.transport.authkit import (
    SECRET,
    SKU,
    bearer,
    call,
    hs256,
    public_pem,
    refusals,
    rsa_key,
    sale_toml,
    sign,
    sku_state,
    write_jwks,
)

HS = sale_toml(
    f'mode = "jwt"\njwt_algorithms = ["HS256"]\njwt_secret = "{SECRET}"\n'
    'jwt_issuer = "https://id.example"\njwt_audience = "flashsale"\njwt_leeway = 5',
    limits="per_ip = { rate = 0.001, burst = 1 }",
)
GOOD = {"iss": "https://id.example", "aud": "flashsale"}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_the_token_sub_is_the_buyer_on_every_route(start_server: StartServer) -> None:  # noqa: F811
    """A verified token buys as its sub; orders answer only that sub; a body naming another buyer is 403."""
    server = await start_server(HS)
    base = server.url
    alice, mallory = hs256(GOOD), hs256({**GOOD, "sub": "mallory"})
    async with aiohttp.ClientSession() as s:
        status, bought, _ = await call(s, "POST", f"{base}/v1/purchase", headers=bearer(alice), json_body={"sku": SKU})
        assert status == 200
        order_id = bought["order_id"]
        status, order, _ = await call(s, "GET", f"{base}/v1/orders/{order_id}", headers=bearer(alice))
        assert (status, order["user"]) == (200, "alice")
        for method, path in (("GET", ""), ("POST", "/pay"), ("POST", "/cancel")):
            status, answer, _ = await call(s, method, f"{base}/v1/orders/{order_id}{path}", headers=bearer(mallory))
            assert (status, answer["error"]) == (404, "unknown_order")
        status, answer, _ = await call(
            s, "POST", f"{base}/v1/orders/{order_id}/cancel", headers=bearer(alice), json_body={"user": "mallory"}
        )
        assert (status, answer["error"]) == (403, "forbidden")
        status, paid, _ = await call(
            s, "POST", f"{base}/v1/orders/{order_id}/pay", headers=bearer(alice), json_body={"user": "alice"}
        )
        assert (status, paid["status"]) == (200, "paid")
        status, answer, _ = await call(
            s, "POST", f"{base}/v1/purchase", headers=bearer(alice), json_body={"sku": SKU, "user": "bob"}
        )
        assert (status, answer["error"]) == (403, "forbidden")
        assert answer["detail"] == "'user' names another buyer than the authenticated one"
    await server.stop()


async def test_a_null_user_beside_a_good_token_is_400_and_changes_nothing(start_server: StartServer) -> None:  # noqa: F811
    """``"user": null`` names a buyer wrongly, not "no buyer": 400 on purchase, pay and cancel; nothing moves.

    (The join's is in tests/transport/room/test_room_schemathesis.py, where schemathesis found it.)
    """
    server = await start_server(HS)
    base = server.url
    alice = hs256(GOOD)
    async with aiohttp.ClientSession() as s:
        status, bought, _ = await call(s, "POST", f"{base}/v1/purchase", headers=bearer(alice), json_body={"sku": SKU})
        assert status == 200
        before = await sku_state(s, base)
        status, answer, _ = await call(
            s, "POST", f"{base}/v1/purchase", headers=bearer(alice), json_body={"sku": SKU, "user": None}
        )
        assert (status, answer["error"]) == (400, "invalid_request")
        assert answer["detail"] == "'user' is required and must be a non-empty string"
        for action in ("pay", "cancel"):
            status, answer, _ = await call(
                s,
                "POST",
                f"{base}/v1/orders/{bought['order_id']}/{action}",
                headers=bearer(alice),
                json_body={"user": None},
            )
            assert (status, answer["error"]) == (400, "invalid_request"), action
        assert await sku_state(s, base) == before
        status, order, _ = await call(s, "GET", f"{base}/v1/orders/{bought['order_id']}", headers=bearer(alice))
        assert (status, order["status"]) == (200, "reserved")
    await server.stop()


async def test_every_bad_token_is_401_naming_the_check(start_server: StartServer, tmp_path: Path) -> None:  # noqa: F811
    """Missing, malformed, expired, early, wrongly signed, wrong aud/iss, alg none, no sub, no exp, > 4 KB: 401s.

    Each answer has ``WWW-Authenticate: Bearer``, names the failed check and
    never holds the token; nothing moves, no rate-limit token is spent, and
    the server's log never holds a token either.
    """
    server = await start_server(HS)
    base = server.url
    now = int(time.time())
    unsigned = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64({"sub": "alice", "exp": now + 60, **GOOD}) + "."
    cases: list[tuple[dict[str, str], str]] = [
        ({}, "no Authorization: Bearer token"),
        ({"Authorization": "Basic YWxpY2U6cHc="}, "the Authorization header must be 'Bearer <token>'"),
        ({"Authorization": "Bearer"}, "the Authorization header must be 'Bearer <token>'"),
        (bearer("not-a-jwt"), "the token is malformed (not header.payload.signature in base64url JSON)"),
        (bearer(hs256({**GOOD, "exp": now - 60})), "the token has expired (exp)"),
        (bearer(hs256({**GOOD, "nbf": now + 60})), "the token is not valid yet (nbf)"),
        (bearer(hs256(GOOD, secret="another-secret-that-is-32-bytes-long")), "the token's signature does not verify"),
        (bearer(hs256({**GOOD, "aud": "someone-else"})), "the token's aud does not include this service's audience"),
        (bearer(hs256({**GOOD, "iss": "https://evil.example"})), "the token's iss is not the accepted issuer"),
        (bearer(unsigned), "the token's alg 'none' is not accepted (accepted: HS256)"),
        (bearer(hs256({**GOOD, "sub": None})), "the token has no 'sub' claim"),
        (bearer(hs256({**GOOD, "exp": None})), "the token has no 'exp' claim"),
        (bearer(hs256({**GOOD, "sub": ""})), "the token's sub must be 1 to 128 printable characters"),
        (bearer(hs256({**GOOD, "pad": "x" * 5000})), "the token is longer than 4096 bytes"),
    ]
    async with aiohttp.ClientSession() as s:
        before = await sku_state(s, base)
        for headers, detail in cases:
            status, answer, got = await call(s, "POST", f"{base}/v1/purchase", headers=headers, json_body={"sku": SKU})
            assert (status, answer) == (401, {"error": "unauthenticated", "detail": detail})
            assert got["WWW-Authenticate"].startswith('Bearer realm="flashsale"')
            token = headers.get("Authorization", "").partition(" ")[2]
            if len(token) > 8:
                assert token not in got["WWW-Authenticate"]
        assert await sku_state(s, base) == before
        status, _, _ = await call(s, "POST", f"{base}/v1/purchase", headers=bearer(hs256(GOOD)), json_body={"sku": SKU})
        assert status == 200  # the one per-IP token was still there: no refusal spent it
        async with s.get(f"{base}/metrics") as resp:
            assert refusals(await resp.text())["unauthenticated"] == len(cases)
    await server.stop()
    log = "\n".join(json.dumps(line) if isinstance(line, dict) else str(line) for line in server.log)
    assert "request refused" in log  # debug logging was on: refusals were logged, without their tokens
    for headers, _ in cases:
        token = headers.get("Authorization", "").partition(" ")[2]
        if len(token) > 8:
            assert token not in log
            assert token.split(".")[-1] not in log or not token.split(".")[-1]
    assert SECRET not in log


def _forge_hs256(secret: bytes, claims: dict[str, Any]) -> str:
    """An HS256 token MACed with ``secret`` by hand: PyJWT itself refuses a PEM key as an HMAC secret."""
    signing = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
    mac = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return f"{signing}." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


async def _buy(s: aiohttp.ClientSession, base: str, token: str) -> tuple[int, dict[str, Any]]:
    status, body, _ = await call(s, "POST", f"{base}/v1/purchase", headers=bearer(token), json_body={"sku": SKU})
    return status, body


async def test_public_keys_and_the_classic_attacks(start_server: StartServer, tmp_path: Path) -> None:  # noqa: F811
    """RS256 with a PEM key: a good token buys; an HS256 token signed with the public key (confusion) is 401."""
    key = rsa_key()
    (tmp_path / "pub.pem").write_bytes(public_pem(key))
    server = await start_server(sale_toml('mode = "jwt"\njwt_algorithms = ["RS256"]\njwt_public_key_file = "pub.pem"'))
    base = server.url
    forged = _forge_hs256(public_pem(key), {"sub": "alice", "exp": int(time.time()) + 60})
    async with aiohttp.ClientSession() as s:
        assert (await _buy(s, base, sign(key, "RS256")))[0] == 200
        status, answer = await _buy(s, base, forged)
        assert (status, answer["detail"]) == (401, "the token's alg 'HS256' is not accepted (accepted: RS256)")
        status, answer = await _buy(s, base, sign(rsa_key(), "RS256"))
        assert (status, answer["detail"]) == (401, "the token's signature does not verify")
    await server.stop()


async def test_a_mixed_config_never_verifies_hs256_with_the_public_key(
    start_server: StartServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    """HS256 and RS256 both accepted: an HS256 token signed with the RSA public key still fails (secret only)."""
    key = rsa_key()
    (tmp_path / "pub.pem").write_bytes(public_pem(key))
    server = await start_server(
        sale_toml(
            f'mode = "jwt"\njwt_algorithms = ["HS256", "RS256"]\njwt_secret = "{SECRET}"\n'
            'jwt_public_key_file = "pub.pem"'
        )
    )
    forged = _forge_hs256(public_pem(key), {"sub": "alice", "exp": int(time.time()) + 60})
    async with aiohttp.ClientSession() as s:
        status, answer = await _buy(s, server.url, forged)
        assert (status, answer["detail"]) == (401, "the token's signature does not verify")
        for token in (hs256(), sign(key, "RS256")):
            assert (await _buy(s, server.url, token))[0] == 200
    await server.stop()


async def test_a_key_set_chooses_the_key_by_kid(start_server: StartServer, tmp_path: Path) -> None:  # noqa: F811
    """jwks_file with ES256 and EdDSA keys: each verifies its own kid; an unknown or missing kid is 401."""
    es, ed = ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()
    write_jwks(tmp_path / "jwks.json", {"es-1": es, "ed-1": ed})
    server = await start_server(sale_toml('mode = "jwt"\njwt_algorithms = ["ES256", "EdDSA"]\njwks_file = "jwks.json"'))
    base = server.url
    async with aiohttp.ClientSession() as s:
        for token in (sign(es, "ES256", {"sub": "erin"}, kid="es-1"), sign(ed, "EdDSA", {"sub": "eddy"}, kid="ed-1")):
            status, body = await _buy(s, base, token)
            assert status == 200, body
        for token, detail in (
            (sign(es, "ES256", kid="es-9"), "the token's kid is not in the key set"),
            (sign(es, "ES256"), "the token has no kid, and the key set needs one to choose a key"),
            (sign(es, "ES256", kid="ed-1"), "the token's key does not match its alg"),
        ):
            status, body = await _buy(s, base, token)
            assert (status, body["detail"]) == (401, detail)
    await server.stop()
