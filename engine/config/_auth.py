"""The ``[auth]`` section: where the buyer of a request comes from.

``mode = "trusted"`` (the default) believes the body's ``user``: for
flashsale behind a gateway that authenticated the caller. ``"header"``
believes ``header`` (set by a gateway), only from ``server.trusted_proxies``
peers. ``"jwt"`` believes the ``sub`` of a verified ``Authorization: Bearer``
token. The transport turns this into a resolver (:mod:`flashsale.transport._auth`);
the engine only ever sees the buyer it resolved.

Key material is named here and read by the transport when the server
starts. A config never writes it back out (:meth:`Config.to_mapping` leaves
``[auth]`` out), so a recorded scenario cannot leak a secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ._reader import _Reader

AuthMode = Literal["trusted", "header", "jwt"]
MODES: tuple[AuthMode, ...] = ("trusted", "header", "jwt")
HMAC_ALGORITHMS = {"HS256": 32, "HS384": 48, "HS512": 64}
"""The HMAC algorithms and the fewest secret bytes each takes (RFC 7518 3.2: at least the hash's size)."""
KEY_ALGORITHMS = frozenset({"RS256", "ES256", "EdDSA"})
"""The public-key algorithms: verified with ``jwt_public_key_file`` or a key of ``jwks_file``."""
ALGORITHMS = (*HMAC_ALGORITHMS, *sorted(KEY_ALGORITHMS))
KEYS = frozenset(
    {
        "mode",
        "header",
        "jwt_algorithms",
        "jwt_secret",
        "jwt_secret_file",
        "jwt_public_key_file",
        "jwks_file",
        "jwt_issuer",
        "jwt_audience",
        "jwt_leeway",
    }
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110 token)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Where the buyer comes from; see the module docstring and the README's "Who is buying"."""

    mode: AuthMode = "trusted"
    header: str = "X-User-Id"
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_secret: str | None = field(default=None, repr=False)  # never in a repr, a log line or an error
    jwt_secret_file: str | None = None
    jwt_public_key_file: str | None = None
    jwks_file: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway: float = 5.0


def read_auth(r: _Reader, data: Any, trusted_proxies: tuple[str, ...]) -> AuthConfig:
    """Read and check ``[auth]`` (``server.trusted_proxies`` decides whether header mode can work)."""
    t: Mapping[str, Any] = r.table(data, "auth", set(KEYS))
    d = AuthConfig()
    mode = r.value(t, "mode", str, "auth", d.mode)
    if mode not in MODES:
        raise r.fail("auth.mode", f"must be 'trusted', 'header' or 'jwt', got {mode!r}")
    header = r.value(t, "header", str, "auth", d.header)
    if not _TOKEN.fullmatch(header) or header.lower() == "authorization":
        raise r.fail("auth.header", f"must be an HTTP header name other than Authorization, got {header!r}")
    raw_algs = t.get("jwt_algorithms", list(d.jwt_algorithms))
    if not isinstance(raw_algs, list) or not raw_algs or not all(isinstance(a, str) for a in raw_algs):
        raise r.fail("auth.jwt_algorithms", f"must be a non-empty list of names, got {raw_algs!r}")
    for alg in raw_algs:
        if alg not in ALGORITHMS:
            raise r.fail("auth.jwt_algorithms", f"{alg!r} is not one of {' '.join(ALGORITHMS)} ('none' never is)")
    algorithms = tuple(dict.fromkeys(raw_algs))
    secret = r.value(t, "jwt_secret", str, "auth", None)
    paths = {key: r.value(t, key, str, "auth", None) for key in ("jwt_secret_file", "jwt_public_key_file", "jwks_file")}
    leeway = float(r.value(t, "jwt_leeway", (int, float), "auth", d.jwt_leeway))
    if not 0 <= leeway <= 300:
        raise r.fail("auth.jwt_leeway", f"must be 0 to 300 seconds, got {leeway}")
    auth = AuthConfig(
        mode=mode,
        header=header,
        jwt_algorithms=algorithms,
        jwt_secret=secret,
        jwt_secret_file=paths["jwt_secret_file"],
        jwt_public_key_file=paths["jwt_public_key_file"],
        jwks_file=paths["jwks_file"],
        jwt_issuer=r.value(t, "jwt_issuer", str, "auth", None),
        jwt_audience=r.value(t, "jwt_audience", str, "auth", None),
        jwt_leeway=leeway,
    )
    if mode == "header" and not trusted_proxies:
        raise r.fail(
            "auth.mode",
            "'header' believes the header only from server.trusted_proxies; list your gateway's address there",
        )
    if mode == "jwt":
        _check_jwt(r, auth)
    return auth


def _check_jwt(r: _Reader, auth: AuthConfig) -> None:
    hmac_algs = [a for a in auth.jwt_algorithms if a in HMAC_ALGORITHMS]
    if hmac_algs:
        if (auth.jwt_secret is None) == (auth.jwt_secret_file is None):
            raise r.fail("auth.jwt_secret", f"{', '.join(hmac_algs)} needs exactly one of jwt_secret, jwt_secret_file")
        need = max(HMAC_ALGORITHMS[a] for a in hmac_algs)
        if auth.jwt_secret is not None and len(auth.jwt_secret.encode()) < need:
            raise r.fail("auth.jwt_secret", f"must be at least {need} bytes for {', '.join(hmac_algs)}")
    elif auth.jwt_secret is not None or auth.jwt_secret_file is not None:
        raise r.fail("auth.jwt_secret", "is only for HS256, HS384 or HS512, and jwt_algorithms has none of them")
    key_algs = [a for a in auth.jwt_algorithms if a in KEY_ALGORITHMS]
    if key_algs:
        if (auth.jwt_public_key_file is None) == (auth.jwks_file is None):
            raise r.fail(
                "auth.jwt_public_key_file", f"{', '.join(key_algs)} needs exactly one of jwt_public_key_file, jwks_file"
            )
    elif auth.jwt_public_key_file is not None or auth.jwks_file is not None:
        raise r.fail("auth.jwt_public_key_file", "is only for RS256, ES256 or EdDSA, and jwt_algorithms has none")
