"""The circuit breaker: consecutive failures open it, message time decides the probe, one success closes it."""

from __future__ import annotations

import threading

from flashsale.actors import Breaker

S = 1_000_000


def test_opens_after_consecutive_failures_only() -> None:
    """Two failures, a success, two failures: still closed; the third in a row opens it."""
    b = Breaker(failures=3, reset_us=2 * S)
    b.failed(0)
    b.failed(1)
    b.succeeded()
    b.failed(2)
    b.failed(3)
    assert b.closed
    assert b.allow(4)
    b.failed(4)
    assert not b.closed
    assert b.opened_at == 4


def test_refuses_until_reset_then_lets_one_probe_through() -> None:
    """Open at t: refused before t+reset (rejects and allow agree); at t+reset exactly one caller probes."""
    b = Breaker(failures=1, reset_us=2 * S)
    b.failed(10)
    assert b.rejects(10 + 2 * S - 1)
    assert not b.allow(10 + 2 * S - 1)
    assert not b.rejects(10 + 2 * S)
    assert b.allow(10 + 2 * S)  # the probe
    assert not b.allow(10 + 2 * S)  # everyone else waits for it
    assert b.rejects(10 + 3 * S)
    b.succeeded()
    assert b.closed
    assert b.allow(10 + 3 * S)


def test_a_failed_probe_opens_it_for_another_reset() -> None:
    """The probe fails at t2: refused until t2+reset, even with a threshold above one."""
    b = Breaker(failures=3, reset_us=S)
    for at in (0, 1, 2):
        b.failed(at)
    assert b.allow(2 + S)
    b.failed(2 + S)
    assert b.opened_at == 2 + S
    assert not b.allow(2 + 2 * S - 1)
    assert b.allow(2 + 2 * S)


def test_one_probe_among_threads() -> None:
    """Eight threads asking at once after the reset: exactly one is allowed."""
    b = Breaker(failures=1, reset_us=S)
    b.failed(0)
    start = threading.Barrier(8)
    allowed: list[bool] = []

    def ask() -> None:
        start.wait()
        allowed.append(b.allow(S))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(allowed) == [False] * 7 + [True]
