"""Messages of a sale's operator: pause, resume or end a SKU, change a rate limit live.

They travel like every other message: a pause reaches a SKU's owner through
its mailbox, behind the purchases sent before it, so a replay that sends the
same messages in the same order decides the same way. Time (``at``) is data,
as everywhere in the actors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from ._buckets import BucketSpec
from ._messages import Reply

Scope: TypeAlias = Literal["global", "per_sku", "per_user", "per_ip"]
"""A rate-limit scope, named as in the ``[limits]`` config."""

SaleAction: TypeAlias = Literal["pause", "resume", "end"]


@dataclass(frozen=True, slots=True)
class SetSale:
    """Pause, resume or end ``sku`` at ``at``; ``reply`` gets the SKU's new :class:`SkuView`.

    A paused SKU answers purchases ``sale_paused`` until resumed; ending it
    sets the end of its sale window to ``at`` (and its start no later than
    that), so it answers ``sale_not_open`` from then on. On a shared ledger
    ``reply`` gets the :class:`actors.LedgerError` instead when the call fails.
    """

    sku: str
    action: SaleAction
    at: int
    reply: Reply


@dataclass(frozen=True, slots=True)
class SetLimits:
    """Give the named scopes new bucket shapes from ``at`` on; ``reply`` gets ``None`` once applied.

    Every bucket of a changed scope keeps what it holds (clipped to the new
    burst) and refills at the new rate from ``at``.
    """

    changes: tuple[tuple[Scope, BucketSpec], ...]
    at: int
    reply: Reply | None
