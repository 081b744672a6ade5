"""The engine's exceptions, on the tree rooted in :mod:`flashsale.actors._errors`.

Purchase outcomes (sold out, limit reached, rate limited …) are values
(:class:`flashsale.actors.Outcome`), never exceptions: they are the common
case. These are for calls that cannot be answered at all. The whole tree
(``actors`` holds the root and the failures below :class:`Unavailable`)::

    FlashsaleError
    ├── InvalidRequest (ValueError)    the arguments are wrong; nothing changed
    ├── UnknownSku (LookupError)       no such SKU in this sale
    ├── UnknownOrder (LookupError)     no such order
    ├── TransitionRefused              the order is not reserved (any more): it cannot
    │                                  be paid or cancelled
    ├── ConfigError (ValueError)       a configuration file or value is wrong
    ├── ScenarioError (ValueError)     a scenario file is wrong; the message names the place
    ├── Unavailable                    something broke it: nothing was decided; retry later
    │   ├── StoreError                 the order store failed
    │   ├── LedgerError                the shared ledger failed or did not answer
    │   │   └── LedgerRefused          its breaker is open: the call was not made
    │   └── StageFailed                an actor's handler raised on this request
    └── EngineClosed (RuntimeError)    the engine is not running: you closed it
                                       (or never started it)
"""

from __future__ import annotations

from flashsale.actors import FlashsaleError, Order, Unavailable

__all__ = [
    "ConfigError",
    "EngineClosed",
    "FlashsaleError",
    "InvalidRequest",
    "ScenarioError",
    "TransitionRefused",
    "Unavailable",
    "UnknownOrder",
    "UnknownSku",
]


class InvalidRequest(FlashsaleError, ValueError):
    """An argument is malformed or out of range. ``field`` names it."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class UnknownSku(FlashsaleError, LookupError):
    """The SKU is not part of this sale."""

    def __init__(self, sku: str) -> None:
        super().__init__(f"unknown sku {sku!r}")
        self.sku = sku


class UnknownOrder(FlashsaleError, LookupError):
    """No order has this id."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"unknown order {order_id!r}")
        self.order_id = order_id


class TransitionRefused(FlashsaleError):
    """A pay or cancel the order's status does not allow.

    ``order`` is the order as it stands; ``reason`` is ``not_reserved`` (it
    is already paid, cancelled or expired) or ``expired`` (its payment time
    ran out, so it has just been expired).
    """

    def __init__(self, order: Order, reason: str) -> None:
        super().__init__(f"order {order.order_id} is {order.status}")
        self.order = order
        self.reason = reason


class ConfigError(FlashsaleError, ValueError):
    """A configuration value is wrong; the message names where."""


class ScenarioError(FlashsaleError, ValueError):
    """A scenario file is malformed; the message names the file, the place and the problem."""


class EngineClosed(FlashsaleError, RuntimeError):
    """The engine is stopped, stopping, or was never started."""
