"""The engine's exceptions.

Purchase outcomes (sold out, limit reached, rate limited …) are values
(:class:`actors.Outcome`), never exceptions: they are the common case. These
are for calls that cannot be answered at all::

    FlashsaleError
    ├── InvalidRequest (ValueError)    the arguments are wrong; nothing changed
    ├── UnknownSku (LookupError)       no such SKU in this sale
    ├── UnknownOrder (LookupError)     no such order
    ├── ConfigError (ValueError)       a configuration file or value is wrong
    ├── Unavailable                    the store cannot answer now: something broke it
    └── EngineClosed (RuntimeError)    the engine is not running: you closed it
                                       (or never started it)
"""

from __future__ import annotations


class FlashsaleError(Exception):
    """Base of every flashsale exception."""


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


class ConfigError(FlashsaleError, ValueError):
    """A configuration value is wrong; the message names where."""


class Unavailable(FlashsaleError):
    """The order store could not answer; try again later."""


class EngineClosed(FlashsaleError, RuntimeError):
    """The engine is stopped, stopping, or was never started."""
