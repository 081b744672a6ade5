"""``flashsale serve --scenario FILE``: the sale a scenario file describes, served live.

A scenario's configuration is the TOML keys as JSON, so the server needs no
translation by hand. Its times are the scenario's own (``start`` is instant
0 of its traffic), which is usually in the past or the future of the
server's clock: every SKU's sale window is moved by the same amount so that
the scenario's ``start`` is the moment the server starts, and a ``replay
--against`` started right after sends each event at about the point of the
sale the file meant.

``--speed N`` runs the sale's clock N times faster than the wall (windows,
payment timeouts, rate limits and the expiry tick all follow it), so a
ten-minute scenario can be rehearsed in seconds with ``replay --against
--speed N``.
"""

from __future__ import annotations

import dataclasses

from flashsale import Clock, Config, TrafficEvent, load_scenario, wall_clock


def scaled_clock(speed: float) -> Clock:
    """A clock that starts at the wall clock's now and runs ``speed`` times as fast."""
    if speed == 1.0:
        return wall_clock
    t0 = wall_clock()
    return lambda: t0 + round((wall_clock() - t0) * speed)


def scenario_config(path: str, clock: Clock, speed: float = 1.0) -> Config:
    """The configuration inside the scenario at ``path``, its windows moved to start at ``clock()``.

    ``engine.tick_interval`` is divided by ``speed``: expiry ticks come as
    often in sale time as the scenario meant.
    """
    scenario = load_scenario(path)
    shift = clock() - scenario.start
    skus = tuple(
        dataclasses.replace(
            s,
            starts_at=None if s.starts_at is None else s.starts_at + shift,
            ends_at=None if s.ends_at is None else s.ends_at + shift,
        )
        for s in scenario.config.skus
    )
    return dataclasses.replace(scenario.config, skus=skus, tick_interval=scenario.config.tick_interval / speed)


def faster(events: list[TrafficEvent], speed: float) -> list[TrafficEvent]:
    """``events`` on a clock ``speed`` times faster: their times, follow-up delays and retry back-offs divided."""
    if speed == 1.0:
        return events

    def scaled(e: TrafficEvent) -> TrafficEvent:
        then = None if e.then is None else dataclasses.replace(e.then, after_us=max(1, round(e.then.after_us / speed)))
        retry = None if e.retry is None else dataclasses.replace(e.retry, backoff=e.retry.backoff / speed)
        return dataclasses.replace(e, at=round(e.at / speed), then=then, retry=retry)

    return [scaled(e) for e in events]
