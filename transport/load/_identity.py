"""Who each simulated buyer is, as the server's ``[auth] mode`` expects to be told.

- ``trusted``: the buyer is named in the request: ``user`` in the purchase
  and join bodies, ``?user=`` on order and ticket reads, ``{"user"}`` in the
  pay and cancel bodies (a gateway in front of flashsale does this);
- ``header``: every request carries the buyer in a header (``X-User-Id``
  unless told otherwise), as a trusted proxy would set it;
- ``jwt``: every request carries ``Authorization: Bearer <token>``, a token
  minted here with PyJWT: ``sub`` the buyer, ``iat``/``exp`` from the wall
  clock, ``iss``/``aud`` when given. HS256/384/512 sign with a shared secret
  (``--jwt-secret`` or ``--jwt-secret-file``); RS256, ES256 and EdDSA with a
  PEM private key (``--jwt-key-file``). One token per buyer, minted on first
  use and kept for the run.

The body's ``user`` is sent in every mode: the server checks that it matches
the credential.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import orjson

AuthMode = Literal["trusted", "header", "jwt"]
HS = ("HS256", "HS384", "HS512")
ASYMMETRIC = ("RS256", "ES256", "EdDSA")


class IdentityError(ValueError):
    """The credential options cannot mint what the mode needs (read at start, before any request)."""


@dataclass
class Identity:
    """How a buyer's requests say who they are."""

    mode: AuthMode = "trusted"
    header: str = "X-User-Id"
    algorithm: str = "HS256"
    key: str | bytes = ""
    issuer: str | None = None
    audience: str | None = None
    ttl: float = 3600.0
    _tokens: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_options(
        cls,
        mode: AuthMode,
        *,
        header: str = "X-User-Id",
        algorithm: str | None = None,
        secret: str | None = None,
        secret_file: str | None = None,
        key_file: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        ttl: float = 3600.0,
    ) -> Identity:
        if mode != "jwt":
            if secret or secret_file or key_file:
                raise IdentityError("--jwt-secret, --jwt-secret-file and --jwt-key-file need --auth jwt")
            return cls(mode, header=header)
        given = [x for x in (secret, secret_file, key_file) if x]
        if len(given) != 1:
            raise IdentityError("--auth jwt needs exactly one of --jwt-secret, --jwt-secret-file or --jwt-key-file")
        alg = algorithm or ("HS256" if key_file is None else "RS256")
        key: str | bytes
        if key_file is not None:
            if alg not in ASYMMETRIC:
                raise IdentityError(f"--jwt-key-file signs with {', '.join(ASYMMETRIC)}, not {alg}")
            key = _read(key_file)
        else:
            if alg not in HS:
                raise IdentityError(f"a shared secret signs with {', '.join(HS)}, not {alg}")
            key = secret if secret is not None else _read(secret_file or "").decode().strip()
            if not key:
                raise IdentityError("the JWT secret is empty")
        identity = cls("jwt", header=header, algorithm=alg, key=key, issuer=issuer, audience=audience, ttl=ttl)
        identity.token("probe")  # a bad key fails here, at start, not on the first purchase
        identity._tokens.clear()
        return identity

    def token(self, user: str) -> str:
        tok = self._tokens.get(user)
        if tok is None:
            import jwt  # noqa: PLC0415 - PyJWT (and cryptography for RS/ES/EdDSA) only when minting

            now = int(time.time())
            claims: dict[str, object] = {"sub": user, "iat": now, "nbf": now, "exp": now + int(self.ttl)}
            if self.issuer:
                claims["iss"] = self.issuer
            if self.audience:
                claims["aud"] = self.audience
            try:
                tok = jwt.encode(claims, self.key, algorithm=self.algorithm)
            except (ValueError, TypeError, jwt.PyJWTError) as exc:
                raise IdentityError(f"cannot sign a {self.algorithm} token with the key given: {exc}") from None
            self._tokens[user] = tok
        return tok

    def headers(self, user: str) -> dict[str, str]:
        """The credential headers for ``user`` (none in trusted mode)."""
        if self.mode == "header":
            return {self.header: user}
        if self.mode == "jwt":
            return {"Authorization": f"Bearer {self.token(user)}"}
        return {}

    def read_params(self, user: str) -> dict[str, str]:
        """Query parameters naming the buyer on a read (``?user=`` in trusted mode)."""
        return {"user": user} if self.mode == "trusted" else {}

    def change_body(self, user: str) -> bytes:
        """The body of a pay or cancel (``{"user"}`` in trusted mode)."""
        return orjson.dumps({"user": user}) if self.mode == "trusted" else b""


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise IdentityError(f"{path}: cannot read: {exc.strerror}") from None
