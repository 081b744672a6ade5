"""The purchase rules: the one order in which a purchase is checked, on every backend.

A purchase that reaches the SKU's owner is decided by :func:`decide`, in
this order; the first check that fails is the answer::

    0. idempotency key   a key whose order is still open replays it (same SKU and qty)
                         or is refused idempotency_key_reused          (dedup stage; Lua: first in RESERVE)
    1. sale window       before starts_at, or at/after ends_at         -> sale_not_open
    1b. paused           an operator paused the SKU (admin API)        -> sale_paused
    2. sold out          nothing left at all                           -> sold_out
    3. per-user limit    units the buyer holds + qty > limit           -> limit_reached
    4. stock             qty > units left                              -> sold_out ("only N left")
    5. reserve           units taken, the order recorded (id "<sku>-<n>", expires at + hold)

In front of the owner, and before any of these, the rate limits (limiter
stages) and the gateway's bounds (``overloaded``, ``unavailable``). The
gateway also answers checks 1 and 2 on the loop from the published view for
a purchase without a key (:func:`shortcut`): the same checks in the same
order, so the shortcut says what the owner would say.

The memory backend runs :func:`decide` in :class:`InventoryActor`; the redis
backend runs the same steps in Lua (``flashsale.redis._lua``: ``RESERVE``
must follow this order line for line). The scenario library and the
Hypothesis scenarios replay on both to the same digest: that is what holds
the two to this one order.

Everything here is pure: numbers in, an answer out. ``held`` counts the
units of the buyer's live orders (reserved or paid) of this SKU.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

Refusal: TypeAlias = tuple[Literal["sale_not_open", "sale_paused", "sold_out", "limit_reached"], str]
"""A refused purchase's result and the detail a person reads."""

NOT_STARTED = "the sale has not started yet"
ENDED = "the sale has ended"
PAUSED = "the sale of this sku is paused; retry later"


def window(starts_at: int | None, ends_at: int | None, at: int) -> str | None:
    """Check 1: why the sale is not open at ``at``, or ``None`` when it is."""
    if starts_at is not None and at < starts_at:
        return NOT_STARTED
    if ends_at is not None and at >= ends_at:
        return ENDED
    return None


def shortcut(starts_at: int | None, ends_at: int | None, left: int, at: int, *, paused: bool = False) -> Refusal | None:
    """Checks 1, 1b and 2, the ones a published view can answer without the owner."""
    closed = window(starts_at, ends_at, at)
    if closed is not None:
        return "sale_not_open", closed
    if paused:
        return "sale_paused", PAUSED
    if left <= 0:
        return "sold_out", "sold out"
    return None


def decide(  # noqa: PLR0917 - the rule's inputs, positional for the hot path
    starts_at: int | None,
    ends_at: int | None,
    left: int,
    limit: int | None,
    held: int,
    qty: int,
    at: int,
    *,
    paused: bool = False,
) -> Refusal | None:
    """Checks 1 to 4 in order: the refusal, or ``None`` when the purchase may reserve."""
    if (starts_at is not None and at < starts_at) or (ends_at is not None and at >= ends_at):
        return "sale_not_open", NOT_STARTED if starts_at is not None and at < starts_at else ENDED
    if paused:
        return "sale_paused", PAUSED
    if left <= 0:
        return "sold_out", "sold out"
    if limit is not None and held + qty > limit:
        return "limit_reached", f"at most {limit} per buyer; this buyer already holds {held}"
    if qty > left:
        return "sold_out", f"only {left} left"
    return None
