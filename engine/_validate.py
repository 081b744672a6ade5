"""Checks on the loop, before anything is sent to an actor: bad input changes nothing.

Every argument the engine accepts from a caller is checked here for type,
range and encodability. A string the store cannot write (lone surrogates)
would fail the whole group commit it lands in, so it is refused before it
can fail other buyers' orders.
"""

from __future__ import annotations

from ._errors import InvalidRequest

MAX_USER_LEN = 128
MAX_KEY_LEN = 255
MAX_RESTOCK = 1_000_000_000


def storable(text: str) -> bool:
    """True unless ``text`` holds lone surrogates, which no store can encode."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_purchase(user: str, qty: int, idempotency_key: str | None, request_id: str, max_qty: int) -> None:
    """Raise :class:`InvalidRequest` for the first malformed argument of a purchase (the caller checks the SKU)."""
    if type(qty) is not int or not 0 < qty <= max_qty:
        raise InvalidRequest("qty", f"must be a whole number from 1 to {max_qty}")
    if type(user) is not str or not 0 < len(user) <= MAX_USER_LEN or not storable(user):
        raise InvalidRequest("user", f"must be a non-empty string of at most {MAX_USER_LEN} characters")
    if idempotency_key is not None and (
        type(idempotency_key) is not str or not 0 < len(idempotency_key) <= MAX_KEY_LEN or not storable(idempotency_key)
    ):
        raise InvalidRequest("idempotency_key", f"must be 1 to {MAX_KEY_LEN} characters")
    if type(request_id) is not str or not storable(request_id):
        raise InvalidRequest("request_id", "must be a string")


def check_buyer(user: str) -> None:
    """Raise :class:`InvalidRequest` unless ``user`` can be a buyer (who an order call acts for)."""
    if type(user) is not str or not 0 < len(user) <= MAX_USER_LEN or not storable(user):
        raise InvalidRequest("user", f"must be a non-empty string of at most {MAX_USER_LEN} characters")


def check_order_id(order_id: str) -> None:
    """Raise :class:`InvalidRequest` unless ``order_id`` is a storable string."""
    if type(order_id) is not str or not storable(order_id):
        raise InvalidRequest("order_id", "must be a string")


def check_restock(qty: int) -> None:
    """Raise :class:`InvalidRequest` unless ``qty`` is a restock the store can write."""
    if type(qty) is not int or not 0 < qty <= MAX_RESTOCK:
        # Bounded: a quantity the store cannot write would be retried ahead of every later commit.
        raise InvalidRequest("qty", f"must be a whole number from 1 to {MAX_RESTOCK}")
