"""The crowd of a run: a scenario file's traffic, or a crowd described by flags, as timed events.

Both end as :class:`flashsale.TrafficEvent` lists from the scenario package's
own code: a scenario's :meth:`~flashsale.Scenario.traffic` (explicit events
and its generators), or one :class:`flashsale.scenario.Crowd` built from
``--buyers/--rate/--duration/--arrival/--sku`` and expanded the same way.
Expansion is seeded, so every worker process builds the same list and takes
its share (every P-th event), and a run is reproducible from its seed.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from flashsale import TrafficEvent, load_scenario
from flashsale.scenario import Crowd, RetryPolicy

US = 1_000_000
RETRY_ON = frozenset({"rate_limited", "overloaded", "unavailable"})


@dataclass(frozen=True)
class Crowdspec:
    """Where the events come from: a scenario file, or one crowd (picklable, rebuilt in each process)."""

    scenario: str | None = None
    crowd: Crowd | None = None

    def events(self) -> list[TrafficEvent]:
        if self.scenario is not None:
            return load_scenario(self.scenario).traffic()
        assert self.crowd is not None
        events = self.crowd.expand()
        events.sort(key=lambda e: e.at)
        return events


def flag_crowd(
    *,
    run_id: str,
    seed: int,
    buyers: int,
    duration: float,
    pattern: str,
    skus: Sequence[str],
    qty: int,
    prefix: str | None,
    retries: int,
    backoff: float,
    pay: float,
    cancel: float,
    pay_after: float,
) -> Crowd:
    """The crowd the flags describe (checked by the caller)."""
    after_us = round(pay_after * US)
    return Crowd(
        name="load",
        seed=seed,
        users=buyers,
        prefix=prefix if prefix is not None else f"{run_id}-",
        skus=tuple((s, 1.0) for s in skus),
        qty=(qty, qty),
        pattern=pattern,  # type: ignore[arg-type]
        start_us=0,
        duration=duration,
        clicks=1,
        click_gap=0.0,
        keys="per_user",
        ip=None,
        ips=0,
        retry=RetryPolicy(retries, backoff, 2.0, RETRY_ON) if retries else None,
        pay=(pay, after_us) if pay else None,
        cancel=(cancel, after_us) if cancel else None,
    )


def share(events: Sequence[TrafficEvent], index: int, procs: int) -> list[tuple[int, TrafficEvent]]:
    """Process ``index``'s events of ``procs``, each with its index in the whole run.

    A buyer's events all go to one process (by a CRC of the name: the same on
    every machine), so a scenario's later pay or cancel by buyer and SKU finds
    the order its purchase made; events without a buyer go by their index.
    """
    if procs == 1:
        return list(enumerate(events))
    return [(i, e) for i, e in enumerate(events) if _owner(i, e, procs) == index]


def _owner(i: int, e: TrafficEvent, procs: int) -> int:
    return zlib.crc32(e.user.encode()) % procs if e.user is not None else i % procs


def span(events: Sequence[TrafficEvent]) -> float:
    """Seconds from the start to the last event."""
    return events[-1].at / US if events else 0.0
