"""Scenario files: a sale and its traffic as data, replayed on virtual time to a digest.

:func:`load_scenario` reads a file (:mod:`._format`, its events checked by
:mod:`._event_reader`, :mod:`._events`, :mod:`._crowd`), :func:`replay`
runs it on a :class:`flashsale.SaleEngine` with a manual clock
(:mod:`._replay`), and :class:`ScenarioRecorder` writes live traffic as a
scenario (:mod:`._record`).
"""

from ._crowd import PATTERNS, Crowd
from ._events import FollowUp, RetryPolicy, TrafficEvent
from ._format import Scenario, load_scenario, parse_scenario
from ._record import ScenarioRecorder
from ._replay import replay
from ._result import ReplayResult, SkuSummary

__all__ = [
    "PATTERNS",
    "Crowd",
    "FollowUp",
    "ReplayResult",
    "RetryPolicy",
    "Scenario",
    "ScenarioRecorder",
    "SkuSummary",
    "TrafficEvent",
    "load_scenario",
    "parse_scenario",
    "replay",
]
