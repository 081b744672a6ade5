"""Who is buying: the buyer of a request, resolved once, from the credential ``[auth]`` names.

The one entry point for every route is :func:`request_buyer`: it returns
the authenticated buyer of this request (resolved on first call, kept on the
request) or raises :class:`AuthRefused`, which :func:`._handlers.guarded`
answers as JSON (``401 unauthenticated`` with ``WWW-Authenticate: Bearer``,
``403 forbidden``, or ``400 invalid_request``) and counts by code in
``/metrics``. The engine only ever receives the buyer returned here.

- ``trusted``: the buyer is the name the request gives (the body's ``user``,
  or ``?user=``), for flashsale behind a gateway that authenticated the caller.
- ``header``: the buyer is ``[auth] header``, believed only from a socket peer
  in ``server.trusted_proxies``.
- ``jwt``: the buyer is the ``sub`` of ``Authorization: Bearer <JWT>``,
  verified with PyJWT against the configured algorithms and keys only (the
  token's ``alg`` never picks a key type). Verified tokens are kept in a
  bounded cache keyed by the token string until their ``exp``, so a buyer's
  polls and retries cost a dict lookup, not a signature check.

In ``header`` and ``jwt`` modes a name in the request is optional; one that
differs from the credential's buyer is ``403 forbidden``. No detail ever
holds a token, a secret or a key.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from flashsale import AuthConfig, ConfigError

__all__ = [
    "BUYER",
    "IDENTITY",
    "MAX_TOKEN_BYTES",
    "AuthRefused",
    "Identity",
    "JwtVerifier",
    "request_buyer",
]

MAX_TOKEN_BYTES = 4096
"""A longer ``Authorization`` header is refused before any decoding or signature work."""
MAX_CACHED_TOKENS = 8192
"""Verified tokens kept (each at most 4 KB): the cache's memory is bounded by this."""
MAX_BUYER_LEN = 128
_HMAC = frozenset({"HS256", "HS384", "HS512"})


class AuthRefused(Exception):
    """The request's buyer cannot be established (or is not the one it names); nothing was done."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail

    @property
    def headers(self) -> dict[str, str]:
        """``WWW-Authenticate`` on a 401 (RFC 6750), naming the failed check without the token."""
        if self.status != 401:
            return {}
        described = _quote(self.detail)
        return {"WWW-Authenticate": f'Bearer realm="flashsale", error="invalid_token", error_description="{described}"'}


def _quote(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")


def _same(a: str, b: str) -> bool:
    try:
        return hmac.compare_digest(a.encode(), b.encode())
    except UnicodeEncodeError:  # a lone surrogate: never anyone's name
        return False


def _unauthenticated(detail: str) -> AuthRefused:
    return AuthRefused(401, "unauthenticated", detail)


NULL_NAME: Final = object()
"""A JSON body's ``"user": null``: a buyer named, wrongly (400 in every mode, never "not named")."""


def body_buyer(data: Mapping[str, object]) -> object:
    """The buyer a JSON body names: its ``user``, ``None`` when it has none, :data:`NULL_NAME` for ``null``."""
    user = data.get("user")
    return NULL_NAME if user is None and "user" in data else user


def _check_name(name: object, where: str) -> str:
    """A name the request gives: a non-empty string (the engine checks the rest: length, encoding)."""
    if type(name) is not str or not name:
        raise AuthRefused(400, "invalid_request", f"{where} is required and must be a non-empty string")
    return name


class JwtVerifier:
    """Verifies bearer tokens with the configured algorithms and keys; caches the verified ones.

    ``now`` is the wall clock in seconds (injected for tests of the cache's
    expiry). The cache is a dict in insertion order: full, it drops its
    oldest entry (bounded by :data:`MAX_CACHED_TOKENS`).
    """

    __slots__ = ("_audience", "_cache", "_issuer", "_jwks", "_keys", "_leeway", "_max", "_now")

    def __init__(self, auth: AuthConfig, *, now: Callable[[], float] = time.time, max_cached: int = MAX_CACHED_TOKENS):
        self._now = now
        self._max = max_cached
        self._cache: dict[str, tuple[str, float]] = {}
        self._leeway = auth.jwt_leeway
        self._issuer = auth.jwt_issuer
        self._audience = auth.jwt_audience
        self._keys: dict[str, Any] = {}
        self._jwks: jwt.PyJWKSet | None = None
        secret = _secret(auth)
        public = _public_key(auth)
        for alg in auth.jwt_algorithms:
            self._keys[alg] = secret if alg in _HMAC else public
        if auth.jwks_file is not None:
            self._jwks = _jwks(auth.jwks_file)

    def __len__(self) -> int:
        """Tokens in the cache now."""
        return len(self._cache)

    def buyer(self, token: str) -> str:
        """The verified ``sub`` of ``token``; :class:`AuthRefused` naming the failed check otherwise."""
        hit = self._cache.get(token)
        if hit is not None:
            sub, exp = hit
            if self._now() <= exp + self._leeway:
                return sub
            del self._cache[token]
            raise _unauthenticated("the token has expired (exp)")
        sub, exp = self._verify(token)
        cache = self._cache
        if len(cache) >= self._max:
            del cache[next(iter(cache))]
        cache[token] = (sub, exp)
        return sub

    def _verify(self, token: str) -> tuple[str, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _unauthenticated("the token is malformed (not header.payload.signature in base64url JSON)") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._keys:
            shown = alg if isinstance(alg, str) and len(alg) <= 16 and alg.isprintable() else "?"
            raise _unauthenticated(f"the token's alg {shown!r} is not accepted (accepted: {', '.join(self._keys)})")
        # The key comes from the configuration for this alg, never from the token (no algorithm confusion).
        key = self._keys[alg]
        if key is None:  # a public-key algorithm with a key set: the token's kid picks the key
            key = self._by_kid(header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthenticated("the token has expired (exp)") from None
        except jwt.ImmatureSignatureError:
            raise _unauthenticated("the token is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise _unauthenticated("the token's aud does not include this service's audience") from None
        except jwt.InvalidIssuerError:
            raise _unauthenticated("the token's iss is not the accepted issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _unauthenticated(f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise _unauthenticated("the token's signature does not verify") from None
        except (jwt.InvalidKeyError, jwt.InvalidAlgorithmError, jwt.PyJWKError):
            raise _unauthenticated("the token's key does not match its alg") from None
        except jwt.PyJWTError as exc:
            raise _unauthenticated(f"the token is invalid ({type(exc).__name__})") from None
        sub = claims["sub"]
        if type(sub) is not str or not 0 < len(sub) <= MAX_BUYER_LEN or not sub.isprintable():
            raise _unauthenticated(f"the token's sub must be 1 to {MAX_BUYER_LEN} printable characters")
        exp = claims["exp"]
        return sub, float(exp)

    def _by_kid(self, kid: object) -> Any:
        assert self._jwks is not None
        if type(kid) is not str:
            raise _unauthenticated("the token has no kid, and the key set needs one to choose a key")
        for k in self._jwks.keys:
            if k.key_id is not None and _same(k.key_id, kid):
                return k
        raise _unauthenticated("the token's kid is not in the key set")


def _secret(auth: AuthConfig) -> bytes | None:
    if auth.jwt_secret is not None:
        return auth.jwt_secret.encode()
    if auth.jwt_secret_file is None:
        return None
    data = _read(auth.jwt_secret_file, "jwt_secret_file").rstrip(b"\r\n")
    if len(data) < 32:
        raise ConfigError(f"auth.jwt_secret_file: {auth.jwt_secret_file} holds fewer than 32 bytes")
    return data


def _public_key(auth: AuthConfig) -> Any:
    if auth.jwt_public_key_file is None:
        return None
    pem = _read(auth.jwt_public_key_file, "jwt_public_key_file")
    try:
        return load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"auth.jwt_public_key_file: {auth.jwt_public_key_file} is not a PEM public key") from exc


def _jwks(path: str) -> jwt.PyJWKSet:
    text = _read(path, "jwks_file")
    try:
        found = jwt.PyJWKSet.from_json(text.decode())
    except (jwt.PyJWKError, jwt.PyJWKSetError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"auth.jwks_file: {path} is not a usable JWK set: {exc}") from exc
    if any(k.key_id is None for k in found.keys):
        raise ConfigError(f"auth.jwks_file: {path}: every key needs a 'kid'")
    return found


def _read(path: str, key: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"auth.{key}: cannot read {path}: {exc.strerror}") from exc


class Identity:
    """The app's buyer resolver for one ``[auth]`` section; built once by ``create_app``."""

    __slots__ = ("_header", "_is_trusted", "_networks", "mode", "verifier")

    def __init__(self, auth: AuthConfig, trusted_proxies: tuple[str, ...] = ()) -> None:
        self.mode = auth.mode
        self._header = auth.header
        self._networks = tuple(ipaddress.ip_network(n) for n in trusted_proxies)
        self._is_trusted = lru_cache(maxsize=4096)(self._trusted)
        self.verifier = JwtVerifier(auth) if auth.mode == "jwt" else None

    def _trusted(self, peer: str) -> bool:
        try:
            ip = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == n.version and ip in n for n in self._networks)

    def resolve(self, request: web.Request, claimed: object, where: str) -> str:
        """The buyer of ``request``; ``claimed`` is the name it gives (``None`` when it gives none)."""
        if self.mode == "trusted":
            return _check_name(claimed, where)
        buyer = self._from_header(request) if self.mode == "header" else self._from_token(request)
        if claimed is not None and not _same(_check_name(claimed, where), buyer):
            raise AuthRefused(403, "forbidden", f"{where} names another buyer than the authenticated one")
        return buyer

    def _from_header(self, request: web.Request) -> str:
        name = self._header
        peer = request.remote or ""
        if not self._is_trusted(peer):
            raise _unauthenticated(f"{name} is believed only from a trusted proxy, and this peer is not one")
        values = request.headers.getall(name, ())
        if len(values) != 1:
            raise _unauthenticated(f"the trusted proxy must send {name} exactly once (got {len(values)})")
        value = values[0]
        if not 0 < len(value) <= MAX_BUYER_LEN or not value.isprintable():
            raise _unauthenticated(f"{name} must be 1 to {MAX_BUYER_LEN} printable characters")
        return value

    def _from_token(self, request: web.Request) -> str:
        values = request.headers.getall("Authorization", ())
        if not values:
            raise _unauthenticated("no Authorization: Bearer token")
        if len(values) > 1:
            raise _unauthenticated("more than one Authorization header")
        value = values[0]
        if len(value) > MAX_TOKEN_BYTES + 7:
            raise _unauthenticated(f"the token is longer than {MAX_TOKEN_BYTES} bytes")
        scheme, _, token = value.partition(" ")
        if (scheme != "Bearer" and scheme.lower() != "bearer") or not token or " " in token:
            raise _unauthenticated("the Authorization header must be 'Bearer <token>'")
        assert self.verifier is not None
        return self.verifier.buyer(token)


IDENTITY = web.AppKey("identity", Identity)
BUYER = web.RequestKey("buyer", str)


def request_buyer(request: web.Request, claimed: object = None, where: str = "'user'") -> str:
    """The authenticated buyer of ``request``: call this from any route that acts for a buyer.

    ``claimed`` is the buyer the request names (the body's ``user``, a
    ``?user=``), ``None`` when it names none; ``where`` says where, for the
    error detail. Resolved once per request and kept on it (``request[BUYER]``).
    Raises :class:`AuthRefused`; :func:`._handlers.guarded` answers it.
    """
    identity = request.app[IDENTITY]
    buyer = request.get(BUYER)
    if buyer is None:
        buyer = request[BUYER] = identity.resolve(request, claimed, where)
    elif claimed is not None and claimed != buyer:
        identity.resolve(request, claimed, where)  # the same checks, the same refusal
    return buyer
