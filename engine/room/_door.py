"""The room's door: who may join, and with what proof of work; the passes it signed, checked.

Proof of work and passes are checked on the loop: they cost microseconds and
need no state but the secret (and the table of challenges spent).
"""

from __future__ import annotations

import re
import secrets

from flashsale._errors import InvalidRequest, Unavailable
from flashsale._validate import MAX_USER_LEN, storable
from flashsale.actors._room_messages import ClosedReason
from flashsale.actors._room_passes import MAX_NONCE, challenge_expiry, check_pass, make_challenge, proves_work

from ._base import MAX_PENDING_JOINS, MAX_TICKETS
from ._errors import RoomRefused
from ._polls import Polls
from ._types import US, Challenge, TicketStatus

CHALLENGE_TTL_US = 60 * US
MAX_USED_CHALLENGES = 1_000_000
BUYER_CHARS = "[^\\u0000-\\u001f\\u007f-\\u009f]"
"""What a buyer's name in the room is made of: any character but a control character (C0, DEL, C1).

The same regular expression in Python and in JSON Schema: the OpenAPI
document's pattern for ``user`` on the room's routes is built from it.
"""
_BUYER = re.compile(f"{BUYER_CHARS}{{1,{MAX_USER_LEN}}}")

REFUSALS = {
    "room_not_open": "the waiting room is not open yet; see opens_at",
    "room_closed": "the sale is over: every item is sold out or off sale",
    "challenge_used": "this challenge was already used for a join; get a new one",
    "room_full": "the waiting room holds as many tickets as it can",
}
"""What each of these refusals says, whether the door or the room actor refuses."""


def valid_buyer(user: str) -> bool:
    """True when ``user`` can hold a ticket: 1 to :data:`MAX_USER_LEN` characters of :data:`BUYER_CHARS`, storable."""
    if 0 < len(user) <= MAX_USER_LEN and user.isprintable():  # the usual name: no regular expression needed
        return True
    return _BUYER.fullmatch(user) is not None and storable(user)


class Door(Polls):
    """Every check of a join, the challenges it spends, and the admission pass checked before an order."""

    def challenge(self) -> Challenge:
        """A fresh signed challenge (only when the room asks for proof of work)."""
        if not self._bits:
            raise RoomRefused("no_challenge", "this waiting room asks no proof of work (pow_bits = 0)")
        assert self._secret is not None
        expires = self._clock() + CHALLENGE_TTL_US
        return Challenge(make_challenge(self._secret, expires, secrets.token_hex(16)), self._bits, expires)

    def check_pass(self, token: str | None, user: str) -> tuple[str, str]:
        """``("", "")`` when ``token`` admits ``user`` now, else ``(code, detail)``."""
        if token is None:
            return "admission_required", "this sale has a waiting room: join it and send the Admission-Pass it gives"
        assert self._secret is not None
        why = check_pass(self._secret, self.board.room.commitment, token, user, self._clock())
        return ("invalid_pass", why) if why else ("", "")

    def _checked(
        self, user: str, challenge: str | None, nonce: str | None, at: int
    ) -> tuple[TicketStatus | None, int, ClosedReason | None]:
        """Every check of a join at ``at``; the buyer's live ticket if it has one (a heartbeat), else ``None``
        once a new ticket may be made (its proof of work spent). Also the units left and why the room closes."""
        if type(user) is not str or not valid_buyer(user):
            raise InvalidRequest("user", f"must be 1 to {MAX_USER_LEN} characters, none of them a control character")
        if self._ref is None:
            raise Unavailable("the waiting room is not running")
        remaining, closing = self.facts(at)
        state, _ = self.state_at(at, closing)
        if state == "closed":
            raise RoomRefused("room_closed", REFUSALS["room_closed"])
        if state == "not_open":
            raise RoomRefused("room_not_open", REFUSALS["room_not_open"])
        board = self.board
        existing = board.by_user.get(user) or self._provisional_user.get(user)
        if existing is not None:
            view = board.tickets.get(existing) or self._provisional[existing]
            if view.state != "expired":
                self._beats[view.ticket] = at
                if self.recorder is not None:
                    self.recorder.operation(at, "join", user=user, ticket=view.ticket)
                return self._ticket_status(view, at, remaining, closing), remaining, closing
        if self._bits or challenge is not None or nonce is not None:
            expires = self._check_proof(challenge, nonce, at)
        if board.room.tickets + len(self._provisional) >= MAX_TICKETS:
            raise RoomRefused("room_full", REFUSALS["room_full"])
        if self._inflight >= MAX_PENDING_JOINS:
            raise RoomRefused("overloaded", "too many joins in flight; retry shortly")
        if challenge is not None:
            self._use(challenge, expires, at)
        return None, remaining, closing

    def _use(self, challenge: str, expires: int, at: int) -> None:
        """Spend a challenge: it is good for one join. Expired ones are forgotten when the table is full."""
        used = self._used
        if len(used) >= MAX_USED_CHALLENGES:
            self._used = used = {c: exp for c, exp in used.items() if exp > at}
            if len(used) >= MAX_USED_CHALLENGES:
                raise RoomRefused("overloaded", "too many joins in the last minute; retry shortly")
        used[challenge] = expires

    def _check_proof(self, challenge: str | None, nonce: str | None, at: int) -> int:
        """When the challenge expires (0 without proof of work); :class:`RoomRefused` for a bad proof."""
        if not self._bits:
            if challenge is not None or nonce is not None:
                raise InvalidRequest("challenge", "this room asks no proof of work; send only 'user'")
            return 0
        if type(challenge) is not str or type(nonce) is not str:
            raise RoomRefused("invalid_proof", "this room asks proof of work: send 'challenge' and 'nonce'")
        if not 0 < len(nonce) <= MAX_NONCE or not nonce.isascii() or not nonce.isprintable():
            raise RoomRefused("invalid_proof", f"'nonce' must be 1 to {MAX_NONCE} printable ASCII characters")
        assert self._secret is not None
        expires = challenge_expiry(self._secret, challenge)
        if expires is None:
            raise RoomRefused("invalid_proof", "the challenge was not issued by this room")
        if at >= expires:
            raise RoomRefused("invalid_proof", "the challenge has expired; get a new one")
        if challenge in self._used:
            raise RoomRefused("challenge_used", REFUSALS["challenge_used"])
        if not proves_work(challenge, nonce, self._bits):
            raise RoomRefused("invalid_proof", f"the nonce does not give {self._bits} leading zero bits")
        return expires
