"""What a load run measured: HDR histograms per phase, answers by status, a time series.

Latencies are microseconds in :class:`hdrh.histogram.HdrHistogram` (1 µs to
one hour, 3 significant figures), one per phase. A process's :class:`Stats`
travels to the parent as :meth:`Stats.dump` (plain data, histograms encoded)
and is merged there with :meth:`Stats.merge`: histogram addition is exact, so
``--procs P`` reports the same percentiles one process recording everything
would have.

The time series has one :class:`Bucket` per ``step`` seconds of the run
(``step`` grows with the run's length so a run keeps at most
:data:`MAX_BUCKETS`): sends, answers and a coarser histogram (2 significant
figures) per phase, for the live view and the report's charts.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from hdrh.histogram import HdrHistogram

Phase: TypeAlias = Literal["join", "poll", "purchase", "pay", "cancel"]
PHASES: tuple[Phase, ...] = ("join", "poll", "purchase", "pay", "cancel")
HIGHEST_US = 3_600_000_000
MAX_BUCKETS = 400
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def histogram(figures: int = 3) -> HdrHistogram:
    """An empty latency histogram in microseconds (1 µs .. 1 h)."""
    return HdrHistogram(1, HIGHEST_US, figures)


def record(h: HdrHistogram, seconds: float) -> None:
    h.record_value(min(HIGHEST_US, max(1, round(seconds * 1_000_000))))


def decode(encoded: bytes) -> HdrHistogram:
    return HdrHistogram.decode(encoded)


@dataclass
class PhaseStats:
    """One phase: the latency of every answer, and the answers by status (``"200"``, ``"lost"``, ...)."""

    latency: HdrHistogram = field(default_factory=histogram)
    status: Counter[str] = field(default_factory=Counter)
    retries: int = 0

    @property
    def count(self) -> int:
        return int(self.latency.get_total_count())

    def percentile_ms(self, p: float) -> float:
        return self.latency.get_value_at_percentile(p) / 1000 if self.count else 0.0

    def max_ms(self) -> float:
        return self.latency.get_max_value() / 1000 if self.count else 0.0

    def mean_ms(self) -> float:
        return self.latency.get_mean_value() / 1000 if self.count else 0.0


@dataclass
class Bucket:
    """``step`` seconds of the run: sends, answers and latency per phase."""

    sent: int = 0
    answered: int = 0
    errors: int = 0
    latency: dict[str, HdrHistogram] = field(default_factory=dict)

    def phase(self, name: str) -> HdrHistogram:
        h = self.latency.get(name)
        if h is None:
            h = self.latency[name] = histogram(2)
        return h


def series_step(seconds: float) -> float:
    """Bucket width for a run of ``seconds``: 1 s, or wider so the run has at most MAX_BUCKETS."""
    return max(1.0, math.ceil(seconds / MAX_BUCKETS))


class Stats:
    """Everything one process (or, merged, the whole run) measured."""

    def __init__(self, step: float = 1.0) -> None:
        self.phases: dict[str, PhaseStats] = {}
        self.step = step
        self.buckets: dict[int, Bucket] = {}
        self.lag = histogram()  # how late each scheduled arrival was dispatched (the schedule's own health)
        self.scheduled = 0  # arrivals whose time came
        self.skipped: Counter[str] = Counter()  # arrivals not sent, by reason
        self.failures: list[str] = []  # the first few requests without an answer, for the summary
        self.unfinished = 0  # buyers cut off by the run's time bound (or Ctrl-C)
        self.dispatched_until = 0.0  # run time the last arrival was dispatched
        self.retried_5xx = 0  # 5xx answers that were retried (not a request's final answer)

    def phase(self, name: str) -> PhaseStats:
        p = self.phases.get(name)
        if p is None:
            p = self.phases[name] = PhaseStats()
        return p

    def bucket(self, at: float) -> Bucket:
        i = int(at // self.step) if at > 0 else 0
        b = self.buckets.get(i)
        if b is None:
            b = self.buckets[i] = Bucket()
        return b

    def sent(self, at: float) -> None:
        """One request left (``at``: seconds since the run's start)."""
        self.bucket(at).sent += 1

    def answered(self, phase: str, status: str, due: float, at: float) -> None:
        """An answer (or its absence: ``status`` ``lost``) at ``at`` to a request due at ``due``."""
        p = self.phase(phase)
        p.status[status] += 1
        latency = at - due
        record(p.latency, latency)
        b = self.bucket(at)
        b.answered += 1
        if status == "lost" or status[0] == "5":
            b.errors += 1
        record(b.phase(phase), latency)

    def lost(self, what: str) -> None:
        if len(self.failures) < 20:
            self.failures.append(what)

    # -- totals ---------------------------------------------------------------------

    def status_total(self, predicate: Any) -> int:
        return sum(n for p in self.phases.values() for s, n in p.status.items() if predicate(s))

    @property
    def requests(self) -> int:
        return sum(p.count for p in self.phases.values())

    @property
    def http_5xx(self) -> int:
        """Requests whose final answer was a server error (a 503 that a retry answered again is not one)."""
        return self.status_total(lambda s: s[0] == "5") - self.retried_5xx

    @property
    def http_lost(self) -> int:
        return self.status_total(lambda s: s == "lost")

    # -- between processes ------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """Plain data (histograms encoded) that :meth:`load` reads back."""
        return {
            "step": self.step,
            "phases": {
                name: {"latency": p.latency.encode(), "status": dict(p.status), "retries": p.retries}
                for name, p in self.phases.items()
            },
            "buckets": {
                i: {
                    "sent": b.sent,
                    "answered": b.answered,
                    "errors": b.errors,
                    "latency": {k: h.encode() for k, h in b.latency.items()},
                }
                for i, b in self.buckets.items()
            },
            "lag": self.lag.encode(),
            "scheduled": self.scheduled,
            "skipped": dict(self.skipped),
            "failures": self.failures,
            "unfinished": self.unfinished,
            "dispatched_until": self.dispatched_until,
            "retried_5xx": self.retried_5xx,
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> Stats:
        s = cls(data["step"])
        s.merge_dump(data)
        return s

    def merge_dump(self, data: dict[str, Any]) -> None:
        """Add another process's :meth:`dump` to this one (exact for every count and histogram)."""
        for name, raw in data["phases"].items():
            p = self.phase(name)
            p.latency.add(decode(raw["latency"]))
            p.status.update(raw["status"])
            p.retries += raw["retries"]
        for i, raw in data["buckets"].items():
            b = self.buckets.setdefault(int(i), Bucket())
            b.sent += raw["sent"]
            b.answered += raw["answered"]
            b.errors += raw["errors"]
            for k, enc in raw["latency"].items():
                b.phase(k).add(decode(enc))
        self.lag.add(decode(data["lag"]))
        self.scheduled += data["scheduled"]
        self.skipped.update(data["skipped"])
        self.failures.extend(data["failures"][: max(0, 20 - len(self.failures))])
        self.unfinished += data["unfinished"]
        self.dispatched_until = max(self.dispatched_until, data["dispatched_until"])
        self.retried_5xx += data["retried_5xx"]
