"""A finished run as figures: what the thresholds read, the JSON file says and the report draws."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._audit import Verdict
from ._sender import Outcome
from ._stats import PERCENTILES, PHASES, Stats
from ._thresholds import Threshold

PCT_NAMES = {50.0: "p50", 90.0: "p90", 95.0: "p95", 99.0: "p99", 99.9: "p99.9"}


@dataclass
class RunResult:
    """Everything a run measured and decided."""

    url: str
    run_id: str
    crowd: str  # how the crowd was described, for people
    procs: int
    asked_rate: float  # arrivals per second the schedule asked for (0 for a burst)
    arrivals: int  # arrivals in the plan
    seconds: float  # from the start to the last answer (or the stop)
    outcome: Outcome
    verdict: Verdict
    thresholds: list[Threshold] = field(default_factory=list)
    breached: list[Threshold] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def stats(self) -> Stats:
        return self.outcome.stats

    def compute_figures(self) -> dict[str, float]:
        s, v, secs = self.stats, self.verdict, max(self.seconds, 1e-9)
        f: dict[str, float] = {}
        for name in PHASES:
            p = s.phases.get(name)
            count = p.count if p else 0
            f[f"{name}.count"] = count
            f[f"{name}.rate"] = count / secs
            f[f"{name}.retries"] = p.retries if p else 0
            f[f"{name}.errors"] = sum(n for k, n in p.status.items() if k == "lost" or k[0] == "5") if p else 0
            for pct in (*PERCENTILES, 95.0):
                f[f"{name}.{PCT_NAMES[pct]}"] = p.percentile_ms(pct) if p else 0.0
            f[f"{name}.max"] = p.max_ms() if p else 0.0
            f[f"{name}.mean"] = p.mean_ms() if p else 0.0
        reqs = s.requests
        f["http.reqs"] = reqs
        f["http.rate"] = reqs / secs
        f["http.2xx"] = s.status_total(lambda k: k[0] == "2")
        f["http.4xx"] = s.status_total(lambda k: k[0] == "4")
        f["http.5xx"] = s.http_5xx
        f["http.429"] = s.status_total(lambda k: k.startswith("429"))
        f["http.lost"] = s.http_lost
        f["http.retries"] = sum(p.retries for p in s.phases.values())
        f["schedule.rate"] = s.scheduled / s.dispatched_until if s.dispatched_until > 0 else 0.0
        f["schedule.skipped"] = sum(s.skipped.values())
        f["schedule.lag_p99"] = s.lag.get_value_at_percentile(99) / 1000 if s.lag.get_total_count() else 0.0
        f["schedule.lag_max"] = s.lag.get_max_value() / 1000 if s.lag.get_total_count() else 0.0
        f["orders"] = len(self.outcome.orders)
        f["oversold"] = v.oversold
        f["lost_orders"] = v.lost_orders
        f["over_limit"] = v.over_limit
        f["unfinished"] = s.unfinished
        f["audit.unanswered"] = v.unanswered
        self.figures = f
        return f

    def series(self) -> list[dict[str, Any]]:
        """Per time bucket: sends, answers, errors, and p50/p99/count per phase."""
        s = self.stats
        out = []
        for i in sorted(s.buckets):
            b = s.buckets[i]
            phases = {
                k: {
                    "count": h.get_total_count(),
                    "p50_ms": h.get_value_at_percentile(50) / 1000,
                    "p99_ms": h.get_value_at_percentile(99) / 1000,
                    "max_ms": h.get_max_value() / 1000,
                }
                for k, h in sorted(b.latency.items())
            }
            out.append({"t": i * s.step, "sent": b.sent, "answered": b.answered, "errors": b.errors, "phases": phases})
        return out

    def distribution(self, phase: str) -> list[tuple[float, float]]:
        """(percentile, ms) points of a phase's latency, for the report's distribution chart."""
        p = self.stats.phases.get(phase)
        if p is None or not p.count:
            return []
        points = [0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0]
        return [(q, p.latency.get_value_at_percentile(q) / 1000) for q in points]

    def as_dict(self) -> dict[str, Any]:
        s, f = self.stats, self.figures or self.compute_figures()
        phases = {}
        for name, p in s.phases.items():
            phases[name] = {
                "count": p.count,
                "rate": f.get(f"{name}.rate", 0.0),
                **{f"{PCT_NAMES[q]}_ms": p.percentile_ms(q) for q in PERCENTILES},
                "max_ms": p.max_ms(),
                "mean_ms": p.mean_ms(),
                "status": dict(sorted(p.status.items())),
                "retries": p.retries,
                "hdr": p.latency.encode().decode("ascii"),  # HdrHistogram's compressed base64 form
            }
        return {
            "url": self.url,
            "run_id": self.run_id,
            "crowd": self.crowd,
            "procs": self.procs,
            "seconds": self.seconds,
            "interrupted": self.outcome.interrupted,
            "schedule": {
                "arrivals_planned": self.arrivals,
                "arrivals_sent": s.scheduled,
                "asked_rate": self.asked_rate,
                "rate": f["schedule.rate"],
                "lag_p99_ms": f["schedule.lag_p99"],
                "lag_max_ms": f["schedule.lag_max"],
                "lag_hdr": s.lag.encode().decode("ascii"),
                "skipped": dict(sorted(s.skipped.items())),
                "unfinished": s.unfinished,
            },
            "phases": phases,
            "figures": f,
            "verdict": self.verdict.as_dict(),
            "thresholds": [
                {"threshold": t.text, "always": t.always, "ok": t not in self.breached, "value": f.get(t.metric)}
                for t in self.thresholds
            ],
            "feed": self.outcome.feed,
            "room": self.outcome.room,
            "failures": s.failures,
            "series": self.series(),
        }
