"""Wiring between the stages, and the guard every stage runs its work under.

The stages form a pipeline (limiter → dedup → inventory → writer) with two
feedback edges (inventory and writer report settled purchases to dedup; the
writer returns units of orders that failed to commit to inventory). Because
of those cycles the refs cannot all be passed to constructors, so each actor
receives the one :class:`Pipeline` and the engine fills it in before the
first message is sent. After that it is only read.
"""

from __future__ import annotations

import logging
from dataclasses import fields, is_dataclass
from collections.abc import Callable
from typing import Any

import pykka

from ._bridge import LoopBridge
from ._messages import Outcome, Purchase

log = logging.getLogger("flashsale.actors")


class Pipeline:
    """The refs each stage sends to; filled once by the engine at start."""

    limiter: pykka.ActorRef[Any]
    dedup: pykka.ActorRef[Any]
    writer: pykka.ActorRef[Any]
    inventory_of: dict[str, pykka.ActorRef[Any]]

    def __init__(self) -> None:
        self.inventory_of = {}


def tell(ref: pykka.ActorRef[Any], message: object) -> bool:
    """Send without raising when the receiver has already stopped.

    Only shutdown reaches a stopped actor: the engine stops the stages after
    every purchase has been answered, so what is lost here is bookkeeping
    (a dedup release, say) that the next start-up rebuilds from the store.
    """
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        log.debug("message to a stopped actor dropped", extra={"message": type(message).__name__})
        return False
    return True


def _purchases_in(message: object) -> list[Purchase]:
    """Every purchase a message carries, however it is nested."""
    found: list[Purchase] = []

    def walk(value: object) -> None:
        if isinstance(value, Purchase):
            found.append(value)
        elif isinstance(value, tuple):
            for item in value:
                walk(item)
        elif is_dataclass(value) and not isinstance(value, type):
            for f in fields(value):
                walk(getattr(value, f.name))

    walk(message)
    return found


class Stage(pykka.ThreadingActor):
    """Base of the four actors: a failed message fails its buyers, not the actor.

    An exception in a handler would otherwise stop the pykka actor and leave
    every later buyer waiting forever. Here the purchases in the failed
    message are answered ``unavailable`` and the actor goes on.
    """

    use_daemon_thread = True

    def __init__(self, pipeline: Pipeline, bridge: LoopBridge) -> None:
        super().__init__()
        self._pipeline = pipeline
        self._bridge = bridge

    def on_receive(self, message: Any) -> None:
        try:
            self.handle(message)
        except Exception:
            log.exception("actor failed on a message", extra={"actor": type(self).__name__})
            self._bridge.resolve(
                [
                    (p.reply, Outcome("unavailable", p.sku, p.qty, detail="internal error; try again"))
                    for p in _purchases_in(message)
                ]
            )

    handle: Callable[[Any], None]
    """The stage's own dispatch; every subclass defines it."""
