"""Retries of ``429`` and ``503`` answers: capped exponential back-off with jitter, ``Retry-After`` honoured.

The first attempt is sent by the caller (the hot path stays free of
tenacity's bookkeeping); when its answer is retryable, :func:`retry` hands it
to a :class:`tenacity.AsyncRetrying` as attempt 1, so tenacity decides every
wait and when to stop. The n-th retry waits ``backoff × factor^(n-1)`` plus
up to ``backoff`` of jitter, at most ``cap`` seconds, and never less than the
answer's ``Retry-After``. A retry is *due* when its wait ends: its latency is
measured from there.

The purchase is sent again with the same ``Idempotency-Key``, so a retry of
a request the server did carry out gets the first answer back, never a
second order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt, wait_exponential_jitter
from tenacity.wait import wait_base

from ._http import Answer

RETRY_STATUS = frozenset({429, 503})
RESULT_OF = {"rate_limited": 429, "overloaded": 503, "unavailable": 503}


@dataclass(frozen=True, slots=True)
class Backoff:
    """How a buyer retries: at most ``max`` retries of the answers whose code is in ``on``."""

    max: int = 3
    backoff: float = 0.05
    factor: float = 2.0
    cap: float = 2.0
    on: frozenset[str] = frozenset(RESULT_OF)

    def retryable(self, answer: Answer) -> bool:
        return answer.status in RETRY_STATUS and (answer.code in self.on or answer.code not in RESULT_OF)


class _WaitRetryAfter(wait_base):
    """tenacity wait: the jittered exponential back-off, at least the last answer's Retry-After."""

    def __init__(self, policy: Backoff) -> None:
        self.inner = wait_exponential_jitter(
            initial=policy.backoff, max=policy.cap, exp_base=policy.factor, jitter=policy.backoff
        )

    def __call__(self, retry_state: RetryCallState) -> float:
        base = float(self.inner(retry_state))
        outcome = retry_state.outcome
        answer = outcome.result() if outcome is not None and not outcome.failed else None
        after = answer.retry_after if isinstance(answer, Answer) and answer.retry_after is not None else 0.0
        return max(base, after)


async def retry(
    policy: Backoff,
    first: Answer,
    send: Callable[[float], Awaitable[Answer]],
    t0: float,
    on_retry: Callable[[Answer], None],
) -> Answer:
    """Retry after ``first`` (a retryable answer) as ``policy`` says; the last answer.

    ``send(due)`` sends the request again; ``due`` is the run time the wait ended.
    ``on_retry(answer)`` is told of each answer that is being retried.
    """
    due = [first.at]

    async def sleep(seconds: float) -> None:
        due[0] = time.perf_counter() - t0 + seconds
        await asyncio.sleep(seconds)

    last = [first]
    calls = [0]

    async def attempt() -> Answer:
        calls[0] += 1
        if calls[0] == 1:
            return first  # attempt 1 already happened: tenacity starts from its answer
        on_retry(last[0])
        last[0] = await send(due[0])
        return last[0]

    retrying = AsyncRetrying(
        sleep=sleep,
        stop=stop_after_attempt(policy.max + 1),
        wait=_WaitRetryAfter(policy),
        retry=retry_if_result(policy.retryable),
        retry_error_callback=_last_answer,
    )
    answer: Answer = await retrying(attempt)
    return answer


def _last_answer(state: RetryCallState) -> Answer:
    """Out of retries: the last answer stands (it is counted, not raised)."""
    assert state.outcome is not None
    result: Answer = state.outcome.result()
    return result
