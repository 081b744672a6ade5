"""Thresholds: ``--threshold 'purchase.p99<50ms'``, checked against the run's figures.

An expression is ``METRIC OP VALUE[UNIT]`` with OP one of ``< <= > >= == !=``.
Latency metrics (``<phase>.p50 .p90 .p95 .p99 .p99.9 .max .mean``,
``schedule.lag_p99``, ``schedule.lag_max``) take ``us``, ``ms`` (the
default, as in k6) or ``s``; every other metric is a plain number. An
unknown metric, an unknown unit or a malformed expression is a
:class:`ThresholdError` when the command line is read, before any request
is sent: a typo never silently passes.

The sale's invariants are thresholds that are always on (:data:`ALWAYS`).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ._stats import PHASES

LATENCY_STATS = ("p50", "p90", "p95", "p99", "p99.9", "max", "mean")
COUNT_STATS = ("count", "rate", "errors", "retries")
GLOBAL_COUNTS = (
    "http.reqs",
    "http.rate",
    "http.2xx",
    "http.4xx",
    "http.5xx",
    "http.429",
    "http.lost",
    "http.retries",
    "schedule.rate",
    "schedule.skipped",
    "orders",
    "oversold",
    "lost_orders",
    "over_limit",
    "unfinished",
    "audit.unanswered",
)
GLOBAL_LATENCIES = ("schedule.lag_p99", "schedule.lag_max")

LATENCY_METRICS = frozenset([f"{p}.{s}" for p in PHASES for s in LATENCY_STATS] + list(GLOBAL_LATENCIES))
METRICS = LATENCY_METRICS | frozenset([f"{p}.{s}" for p in PHASES for s in COUNT_STATS] + list(GLOBAL_COUNTS))

ALWAYS = ("oversold==0", "lost_orders==0", "over_limit==0", "http.5xx==0", "http.lost==0", "audit.unanswered==0")
"""The sale's verdict as thresholds: sold <= stock, every 200 stored for its buyer, per-user limits,
no server error, every request answered, and the audit itself answered."""

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_SPLIT = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*(<=|>=|==|!=|<|>)\s*(.*?)\s*$")
_VALUE = re.compile(r"^([0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)\s*([a-zµ]*)$")
_UNITS = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0}


class ThresholdError(ValueError):
    """A threshold expression that cannot be checked (unknown metric, bad unit, malformed)."""


@dataclass(frozen=True, slots=True)
class Threshold:
    """``metric op limit``; latency limits are in milliseconds."""

    text: str
    metric: str
    op: str
    limit: float
    always: bool = False

    def holds(self, figures: Mapping[str, float]) -> bool:
        value = figures.get(self.metric, 0.0)
        return not math.isnan(value) and _OPS[self.op](value, self.limit)


def parse(text: str, *, always: bool = False) -> Threshold:
    m = _SPLIT.match(text)
    if m is None:
        raise ThresholdError(
            f"threshold {text!r}: expected METRIC OP VALUE, like 'purchase.p99<50ms' (OP: < <= > >= == !=)"
        )
    metric, op, raw = m.groups()
    if metric not in METRICS:
        close = sorted(x for x in METRICS if x.split(".")[0] == metric.split(".")[0])
        hint = f"; {metric.split('.')[0]} has: {', '.join(close)}" if close else f"; metrics: {_families()}"
        raise ThresholdError(f"threshold {text!r}: unknown metric {metric!r}{hint}")
    v = _VALUE.match(raw)
    if v is None:
        raise ThresholdError(f"threshold {text!r}: {raw!r} is not a number (with an optional unit: us, ms, s)")
    number, unit = float(v.group(1)), v.group(2)
    if metric in LATENCY_METRICS:
        if unit and unit not in _UNITS:
            raise ThresholdError(f"threshold {text!r}: unknown unit {unit!r} (us, ms or s)")
        number *= _UNITS[unit or "ms"]
    elif unit:
        raise ThresholdError(f"threshold {text!r}: {metric} is a count, it takes no unit (got {unit!r})")
    return Threshold(text.strip(), metric, op, number, always)


def parse_all(texts: list[str]) -> list[Threshold]:
    """The always-on invariants, then the user's thresholds; raises :class:`ThresholdError` on the first bad one."""
    return [parse(t, always=True) for t in ALWAYS] + [parse(t) for t in texts]


def breaches(thresholds: list[Threshold], figures: Mapping[str, float]) -> list[Threshold]:
    return [t for t in thresholds if not t.holds(figures)]


def _families() -> str:
    return (
        "<phase>.{"
        + ",".join(LATENCY_STATS + COUNT_STATS)
        + "} for "
        + ", ".join(PHASES)
        + ", "
        + ", ".join(GLOBAL_COUNTS + GLOBAL_LATENCIES)
    )
