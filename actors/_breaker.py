"""A circuit breaker on message time, shared by the actors that call one ledger.

``failures`` failed calls in a row open it. While open, callers are refused
at once and nothing touches the ledger: a buyer gets ``503 unavailable``
within a bounded time instead of queueing behind a dead server. ``reset_us``
(of message time) after opening, exactly one caller is let through as the
probe; its success closes the breaker, its failure opens it again.

Time is data here as everywhere in ``actors``: every method takes the ``at``
of the message being handled, never a clock. Several actor threads share one
breaker, so its state changes under a lock; the gateway reads
:meth:`rejects` without the lock (a stale read only sends one more batch to
an actor, which asks again under the lock).
"""

from __future__ import annotations

import threading


class Breaker:
    """Closed, open or probing; see the module docstring."""

    __slots__ = ("_failures", "_lock", "_reset_us", "_threshold", "opened_at", "probing", "streak")

    def __init__(self, failures: int, reset_us: int) -> None:
        self._threshold = failures
        self._reset_us = reset_us
        self._lock = threading.Lock()
        self.streak = 0
        self.opened_at: int | None = None
        self.probing = False

    @property
    def closed(self) -> bool:
        return self.opened_at is None

    def rejects(self, at: int) -> bool:
        """True when a call at ``at`` would be refused: open, and not yet time for a probe."""
        opened = self.opened_at
        return opened is not None and (self.probing or at < opened + self._reset_us)

    def allow(self, at: int) -> bool:
        """May a call be made at ``at``?

        When open and the reset time has passed, the one caller that gets
        True is the probe.
        """
        with self._lock:
            opened = self.opened_at
            if opened is None:
                return True
            if self.probing or at < opened + self._reset_us:
                return False
            self.probing = True
            return True

    def succeeded(self) -> None:
        """A call returned: close."""
        with self._lock:
            self.streak = 0
            self.opened_at = None
            self.probing = False

    def failed(self, at: int) -> None:
        """A call failed or timed out at ``at``: count it; open (again) on a long enough streak or a failed probe."""
        with self._lock:
            self.streak += 1
            if self.probing or self.streak >= self._threshold:
                self.opened_at = at
            self.probing = False
