"""``flashsale serve --scenario FILE``: the sale a scenario file describes, served live.

A scenario's configuration is the TOML keys as JSON, so the server needs no
translation by hand. Its times are the scenario's own (``start`` is instant
0 of its traffic), which is usually in the past or the future of the
server's clock: every SKU's sale window is moved by the same amount so that
the scenario's ``start`` is the moment the server starts, and a ``replay
--against`` started right after sends each event at about the point of the
sale the file meant.
"""

from __future__ import annotations

import dataclasses

from flashsale import Clock, Config, load_scenario


def scenario_config(path: str, clock: Clock) -> Config:
    """The configuration inside the scenario at ``path``, its windows moved to start at ``clock()``."""
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
    return dataclasses.replace(scenario.config, skus=skus)
