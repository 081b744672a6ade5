"""What the identity tests share: configs for each [auth] mode, keys, tokens minted with PyJWT, HTTP calls."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

SECRET = "test-secret-that-is-32-bytes-long-at-least"
SKU = "moutai-53"
STOCK = 50


def sale_toml(auth: str, *, server: str = "", limits: str = "", stock: int = STOCK, extra: str = "") -> str:
    """A flashsale config with one SKU (per-user limit 2) and the given [auth] body."""
    return f"""[[sku]]
id = "{SKU}"
stock = {stock}
per_user_limit = 2

[store]
path = "orders.db"

[server]
log_level = "debug"
{server}

[limits]
{limits}

[auth]
{auth}
{extra}"""


def hs256(claims: dict[str, Any] | None = None, *, secret: str = SECRET, **headers: Any) -> str:
    """A token signed with the shared secret: sub alice, valid for a minute, unless ``claims`` says otherwise."""
    return jwt.encode(_claims(claims), secret, algorithm="HS256", headers=headers or None)


def _claims(claims: dict[str, Any] | None) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"sub": "alice", "exp": now + 60, "iat": now}
    base.update(claims or {})
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Any, algorithm: str, claims: dict[str, Any] | None = None, **headers: Any) -> str:
    """A token signed with a private key."""
    return jwt.encode(_claims(claims), key, algorithm=algorithm, headers=headers or None)


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: Any) -> bytes:
    return bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def write_jwks(path: Path, keys: dict[str, Any]) -> None:
    """A JWK set of the public halves of ``keys`` (kid -> private key)."""
    entries = []
    for kid, key in keys.items():
        if isinstance(key, rsa.RSAPrivateKey):
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            jwk["alg"] = "RS256"
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
            jwk["alg"] = "ES256"
        else:
            assert isinstance(key, ed25519.Ed25519PrivateKey)
            jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
            jwk["alg"] = "EdDSA"
        jwk["kid"] = kid
        entries.append(jwk)
    path.write_text(json.dumps({"keys": entries}), encoding="utf-8")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    data: bytes | None = None,
) -> tuple[int, dict[str, Any], Any]:
    """One request: status, JSON body, response headers."""
    async with session.request(method, url, headers=headers, json=json_body, data=data) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


async def sku_state(session: aiohttp.ClientSession, base: str) -> tuple[int, int, int]:
    """(remaining, reserved, paid) of the SKU now."""
    _, body, _ = await call(session, "GET", f"{base}/v1/skus/{SKU}")
    return body["remaining"], body["reserved"], body["paid"]


def refusals(metrics_text: str) -> dict[str, int]:
    """``flashsale_request_errors_total`` by error code, from /metrics text."""
    found: dict[str, int] = {}
    for line in metrics_text.splitlines():
        if line.startswith("flashsale_request_errors_total{"):
            code = line.split('error="', 1)[1].split('"', 1)[0]
            found[code] = int(float(line.rsplit(" ", 1)[1]))
    return found
