"""The end of a run on the terminal: a table per phase, the schedule, the verdict, the thresholds."""

from __future__ import annotations

import sys

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from ._result import RunResult
from ._stats import PHASES


def phase_table(result: RunResult) -> Table:
    f = result.figures
    t = Table(title="latency from the scheduled send time (ms)", title_justify="left", expand=False)
    for col in ("phase", "count", "rate/s", "p50", "p90", "p99", "p99.9", "max"):
        t.add_column(col, justify="left" if col == "phase" else "right")
    t.add_column("answers by status", justify="left", overflow="fold")
    for name in PHASES:
        p = result.stats.phases.get(name)
        if p is None or not p.count:
            continue
        answers = " · ".join(f"{k} {n:,}" for k, n in sorted(p.status.items()))
        if p.retries:
            answers += f" (retries {p.retries:,})"
        t.add_row(
            name,
            f"{p.count:,}",
            f"{f[f'{name}.rate']:,.1f}",
            *(f"{f[f'{name}.{k}']:.2f}" for k in ("p50", "p90", "p99", "p99.9", "max")),
            answers,
        )
    return t


def summary(result: RunResult) -> RenderableType:
    f, s, v = result.figures, result.stats, result.verdict
    lines: list[RenderableType] = []
    head = f"flashsale load {result.url}: {result.crowd}; {result.procs} process{'es' if result.procs > 1 else ''}"
    if result.outcome.interrupted:
        head += " (INTERRUPTED: the summary so far)"
    lines.append(Text(head, style="bold"))
    asked = f", asked {result.asked_rate:,.1f}/s" if result.asked_rate else ""
    lines.append(
        Text(
            f"schedule   {s.scheduled:,} of {result.arrivals:,} arrivals at {f['schedule.rate']:,.1f}/s{asked}; "
            f"dispatch lag p99 {f['schedule.lag_p99']:.2f} ms, max {f['schedule.lag_max']:.2f} ms; "
            f"{f['http.reqs']:,.0f} requests in {result.seconds:.2f} s ({f['http.rate']:,.1f}/s)"
        )
    )
    if s.skipped:
        lines.append(Text("skipped    " + " · ".join(f"{k} {n:,}" for k, n in sorted(s.skipped.items()))))
    if s.unfinished:
        lines.append(Text(f"unfinished {s.unfinished:,} buyers cut off by the time bound or the stop"))
    lines.append(Text(f"feed       {result.outcome.feed}; room {result.outcome.room}"))
    lines.append(phase_table(result))
    lines.append(Text(f"verdict    {len(result.outcome.orders):,} orders", style="bold"))
    for name, why in v.checks.items():
        lines.append(
            Text(f"{'VIOLATED' if why else 'ok':10} {name}{': ' + why if why else ''}", style="red" if why else "green")
        )
    if v.note:
        lines.append(Text(f"           {v.note}"))
    lines.append(Text("thresholds", style="bold"))
    for t in result.thresholds:
        bad = t in result.breached
        value = f.get(t.metric, 0.0)
        lines.append(
            Text(
                f"{'BREACHED' if bad else 'ok':10} {t.text} (value {value:,.3f}){' [always on]' if t.always else ''}",
                style="red" if bad else "green",
            )
        )
    return Group(*lines)


def print_summary(result: RunResult, console: Console | None = None) -> None:
    if console is None:
        console = Console(soft_wrap=False) if sys.stdout.isatty() else Console(width=200, soft_wrap=False)
    console.print(summary(result))
