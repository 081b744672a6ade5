"""The one exception tree: store, ledger and stage failures are Unavailable, under FlashsaleError."""

from __future__ import annotations

import pytest

import flashsale
from flashsale import actors


@pytest.mark.parametrize("failure", [actors.StoreError, actors.LedgerError, actors.LedgerRefused, actors.StageFailed])
def test_failures_are_unavailable(failure: type[Exception]) -> None:
    """Every failure below the gateway is caught by ``except flashsale.Unavailable``."""
    assert issubclass(failure, flashsale.Unavailable)
    assert issubclass(failure, flashsale.FlashsaleError)


def test_one_root() -> None:
    """The engine's exceptions and the actors' share one root and one Unavailable."""
    assert flashsale.FlashsaleError is actors.FlashsaleError
    assert flashsale.Unavailable is actors.Unavailable
    for name in flashsale.__all__:
        value = getattr(flashsale, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, flashsale.FlashsaleError), name
