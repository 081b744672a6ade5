"""The live view while a run goes (rich): time, sends and answers per second, statuses, rolling p50/p99.

Each process makes a :func:`snapshot` of its :class:`~._stats.Stats` (small,
picklable: counts and the last few seconds' histograms, encoded); the parent
merges the latest snapshot of every process and draws them. The view goes to
stderr, so stdout keeps only the summary.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from ._stats import Stats, decode, histogram

WINDOW_S = 5.0  # the rolling percentiles cover this many seconds


def snapshot(stats: Stats, now: float) -> dict[str, Any]:
    sent = answered = errors = 0
    last_sent = last_answered = 0
    recent: dict[str, Any] = {}
    current = int(now // stats.step)
    for i, b in stats.buckets.items():
        sent += b.sent
        answered += b.answered
        errors += b.errors
        if i == current - 1:
            last_sent, last_answered = b.sent, b.answered
        if (current - i) * stats.step <= WINDOW_S:
            for k, h in b.latency.items():
                if k not in recent:
                    recent[k] = histogram(2)
                recent[k].add(h)
    status: Counter[str] = Counter()
    for p in stats.phases.values():
        status.update({k.split(" ")[0]: n for k, n in p.status.items()})
    return {
        "now": now,
        "sent": sent,
        "answered": answered,
        "errors": errors,
        "sent_rate": last_sent / stats.step,
        "answered_rate": last_answered / stats.step,
        "status": dict(status),
        "recent": {k: h.encode() for k, h in recent.items()},
        "skipped": sum(stats.skipped.values()),
    }


class LiveView:
    """Draws merged snapshots; does nothing when disabled (not a terminal, or ``--no-live``)."""

    def __init__(self, enabled: bool, planned_seconds: float, url: str) -> None:
        self.enabled = enabled
        self.planned = planned_seconds
        self.url = url
        self.latest: dict[int, dict[str, Any]] = {}
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        if self.enabled:
            self._live = Live(Table(), console=Console(file=sys.stderr), refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def update(self, proc: int, snap: dict[str, Any]) -> None:
        if self._live is None:
            return
        self.latest[proc] = snap
        self._live.update(self.render())

    def render(self) -> Table:
        snaps = list(self.latest.values())
        now = max((s["now"] for s in snaps), default=0.0)
        total = Counter[str]()
        recent: dict[str, Any] = {}
        for s in snaps:
            total.update(s["status"])
            for k, enc in s["recent"].items():
                h = decode(enc)
                if k in recent:
                    recent[k].add(h)
                else:
                    recent[k] = h
        t = Table(title=f"flashsale load {self.url}", title_justify="left", show_header=False, box=None)
        t.add_column(style="bold")
        t.add_column()
        left = max(0.0, self.planned - now)
        t.add_row("time", f"{now:,.1f} s elapsed, {left:,.1f} s of the schedule left")
        t.add_row(
            "per second",
            f"sent {sum(s['sent_rate'] for s in snaps):,.0f}, answered {sum(s['answered_rate'] for s in snaps):,.0f}",
        )
        t.add_row(
            "totals",
            f"sent {sum(s['sent'] for s in snaps):,}, answered {sum(s['answered'] for s in snaps):,}, "
            f"errors {sum(s['errors'] for s in snaps):,}, skipped {sum(s['skipped'] for s in snaps):,}",
        )
        t.add_row("answers", " · ".join(f"{k} {n:,}" for k, n in sorted(total.items())) or "-")
        for k, h in sorted(recent.items()):
            p50, p99 = h.get_value_at_percentile(50) / 1000, h.get_value_at_percentile(99) / 1000
            t.add_row(k, f"p50 {p50:,.2f} ms, p99 {p99:,.2f} ms (last {WINDOW_S:g} s, {h.get_total_count():,} answers)")
        return t
