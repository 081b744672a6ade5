"""flashsale's one exception tree, rooted here in the lowest layer.

Purchase outcomes (sold out, limit reached, rate limited …) are values
(:class:`Outcome`), never exceptions: they are the common case. Exceptions
are for calls that cannot be answered at all. The engine adds its own
branches (``flashsale._errors``); the whole tree::

    FlashsaleError
    ├── InvalidRequest (ValueError)    the arguments are wrong; nothing changed           flashsale
    ├── UnknownSku (LookupError)       no such SKU in this sale                           flashsale
    ├── UnknownOrder (LookupError)     no such order                                      flashsale
    ├── TransitionRefused              the order cannot be paid or cancelled (any more)   flashsale
    ├── ConfigError (ValueError)       a configuration file or value is wrong             flashsale
    ├── ScenarioError (ValueError)     a scenario file is wrong                           flashsale
    ├── Unavailable                    something broke it: nothing was decided, retry     actors
    │   ├── StoreError                 the order store failed; nothing of the call kept   actors
    │   ├── LedgerError                the shared ledger failed or did not answer         actors
    │   │   └── LedgerRefused          the breaker is open: the call was not even made    actors
    │   └── StageFailed                an actor's handler raised on this request          actors
    └── EngineClosed (RuntimeError)    you closed it (or never started it)                flashsale

The actor protocol: a request that waits for an answer carries a
:class:`Reply`; the stage answers with ``set_result`` or, when it cannot,
fails it with ``set_exception`` and one of the :class:`Unavailable` branch
(through :meth:`LoopBridge.resolve`, on the loop). A caller never inspects
a result for an exception: it awaits, and a failure raises.
"""

from __future__ import annotations


class FlashsaleError(Exception):
    """Base of every flashsale exception."""


class Unavailable(FlashsaleError):
    """The store, the ledger or a stage could not answer: nothing was decided; try again later."""


class StoreError(Unavailable):
    """The order store could not do what was asked; nothing of the call was kept."""


class LedgerError(Unavailable):
    """The ledger failed or did not answer in time.

    For a call that changes state, its effect is unknown: it may have been
    applied before the answer was lost.
    """


class LedgerRefused(LedgerError):
    """The breaker is open: the call was not made, so nothing of it happened."""


class StageFailed(Unavailable):
    """A stage's handler raised on this request: the stage logged it and went on."""
