"""The dashboard's sign-in: the admin token in, a signed session cookie out.

The cookie never holds the token. It holds ``<expiry>.<mac>``, the expiry
(Unix seconds) signed with HMAC-SHA256 under a key derived from the token,
so every worker of a sale checks it without shared state, and changing the
token ends every session. The cookie is ``HttpOnly`` (page scripts cannot
read it), ``SameSite=Strict`` (no other site's page can send it) and
``Secure`` on HTTPS. Requests that change something with the cookie must
also carry ``X-Flashsale-Dashboard: 1``, a header no cross-site form can
send, as a second guard against forged requests.

Tokens and signatures are compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

from aiohttp import web

COOKIE = "flashsale_session"
CSRF_HEADER = "X-Flashsale-Dashboard"
LIFETIME = 8 * 3600
"""Seconds a session lasts; signing in again starts a new one."""

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


class SessionSigner:
    """Checks the admin token and issues and checks session cookies for it."""

    __slots__ = ("_clock", "_digest", "_key", "lifetime")

    def __init__(self, token: str, *, lifetime: int = LIFETIME, clock: Callable[[], float] = time.time) -> None:
        self._digest = hashlib.sha256(token.encode()).digest()
        self._key = hmac.new(token.encode(), b"flashsale dashboard session v1", hashlib.sha256).digest()
        self._clock = clock
        self.lifetime = lifetime

    def token_ok(self, candidate: str) -> bool:
        """Whether ``candidate`` is the admin token (constant time: both sides hashed to one length first)."""
        return hmac.compare_digest(hashlib.sha256(candidate.encode(errors="surrogatepass")).digest(), self._digest)

    def issue(self) -> str:
        """A fresh cookie value, good for :attr:`lifetime` seconds."""
        expires = int(self._clock()) + self.lifetime
        return f"{expires}.{self._mac(expires)}"

    def valid(self, value: str | None) -> bool:
        """Whether ``value`` is a cookie this signer issued and it has not expired."""
        if not value or len(value) > 128:
            return False
        head, _, mac = value.partition(".")
        if not head.isdigit() or len(head) > 12:
            return False
        expires = int(head)
        return hmac.compare_digest(mac.encode(), self._mac(expires).encode()) and expires > self._clock()

    def _mac(self, expires: int) -> str:
        return hmac.new(self._key, str(expires).encode(), hashlib.sha256).hexdigest()

    def set_cookie(self, request: web.Request, response: web.StreamResponse) -> None:
        """Put a fresh session cookie on ``response``."""
        response.set_cookie(
            COOKIE,
            self.issue(),
            max_age=self.lifetime,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )

    def signed_in(self, request: web.Request) -> bool:
        """Whether ``request`` carries a valid session (and, unless it only reads, the dashboard's header)."""
        if not self.valid(request.cookies.get(COOKIE)):
            return False
        return request.method in _SAFE or request.headers.get(CSRF_HEADER) == "1"


def clear_cookie(response: web.StreamResponse) -> None:
    """Remove the session cookie from the browser."""
    response.del_cookie(COOKIE, path="/", httponly=True, samesite="Strict")
