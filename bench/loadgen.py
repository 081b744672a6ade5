"""How fast ``flashsale load`` sends: ``bench/run.py loadgen [--duration 5] [--rounds 2] [--json FILE]``.

One bare server (bench/bare.py: the cheapest handler there is) for the whole
run, and per round, one after the other against it:

1. ``wrk -t1 -c64`` POSTing purchases (bench/load.py's script): W, its req/s;
2. ``flashsale load --procs 1 --connections 64`` asked for W arrivals/s;
3. ``flashsale load --procs 2 --connections 64`` asked for the same;
4. ``flashsale load --procs 1`` asked for W/4, a rate the server keeps up with.

A load run's rate is its answers divided by the seconds from its start to
its last answer: when the generator cannot keep the schedule, its arrivals
go out late and the run takes longer, so this is the rate it sustained.
Its CPU time (the tool's processes, from ``RUSAGE_CHILDREN``) per answer,
next to wrk's per request, is the cost that decides how far more processes
scale on more cores.

Targets: (2) >= 0.5 x W; (3) > (2); in (4), the schedule's own rate
(arrivals dispatched per second) within 2 % of the rate asked. The machine
is shared (2 cores, other work running; the load average is printed per
step): the figures are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import load
from servers import BENCH, SKU, ServerFailed, free_port, running


@dataclass
class Step:
    """One measured run in a round."""

    round: int
    what: str  # "wrk", "load x1", "load x2", "schedule"
    asked: float  # arrivals/s asked (0 for wrk)
    rate: float  # answers/s sustained
    schedule_rate: float  # arrivals dispatched per second (flashsale load only)
    lag_p99_ms: float
    p99_ms: float
    errors: int
    loadavg: float
    cpu_us_per_answer: float = 0.0


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _load_step(rnd: int, what: str, port: int, seconds: float, *, rate: float, procs: int) -> Step:
    before = _children_cpu()
    data = load.run_flashsale_load(
        port, SKU, f"g{rnd}{what[-1]}", 64, seconds, rate=rate, procs=procs, timeout=seconds + 30
    )
    cpu = _children_cpu() - before
    p = data["phases"]["purchase"]
    answered = p["count"] - p["status"].get("lost", 0)
    return Step(
        rnd, what, rate, answered / data["seconds"], data["schedule"]["rate"], data["schedule"]["lag_p99_ms"],
        p["p99_ms"], p["status"].get("lost", 0) + sum(n for k, n in p["status"].items() if k[0] == "5"),
        os.getloadavg()[0], cpu / max(1, answered) * 1e6,
    )  # fmt: skip


def measure(args: argparse.Namespace) -> list[Step]:
    steps: list[Step] = []
    with tempfile.TemporaryDirectory(prefix="flashsale-loadgen-") as tmp:
        port = free_port()
        cmd = [sys.executable, str(BENCH / "bare.py"), "--port", str(port)]
        with running(cmd, port, Path(tmp) / "bare.log", 30.0):
            for rnd in range(1, args.rounds + 1):
                before = _children_cpu()
                w = load.run_wrk(port, SKU, f"w{rnd}", 64, args.duration)
                cpu = (_children_cpu() - before) / max(1, w.responses) * 1e6
                wrk = Step(rnd, "wrk", 0.0, w.rps, 0.0, 0.0, w.p99_ms, w.socket_errors, os.getloadavg()[0], cpu)
                steps.append(wrk)
                print(f"  round {rnd}: wrk {w.rps:,.0f} req/s", flush=True)
                steps_asked = (("load x1", w.rps, 1), ("load x2", w.rps, 2), ("schedule", w.rps / 4, 1))
                for what, rate, procs in steps_asked:
                    step = _load_step(rnd, what, port, args.duration, rate=rate, procs=procs)
                    steps.append(step)
                    print(
                        f"  round {rnd}: {what:<8} asked {rate:,.0f}/s -> {step.rate:,.0f} answers/s, "
                        f"schedule {step.schedule_rate:,.1f}/s, lag p99 {step.lag_p99_ms:.1f} ms, "
                        f"{step.cpu_us_per_answer:.0f} us CPU per answer",
                        flush=True,
                    )
    return steps


def verdicts(steps: list[Step]) -> list[str]:
    def med(what: str, key: str) -> float:
        return statistics.median(getattr(s, key) for s in steps if s.what == what)

    wrk, one, two = med("wrk", "rate"), med("load x1", "rate"), med("load x2", "rate")
    cpu1, cpu2 = med("load x1", "cpu_us_per_answer"), med("load x2", "cpu_us_per_answer")
    sched = [s for s in steps if s.what == "schedule"]
    worst = max(abs(s.schedule_rate / s.asked - 1) for s in sched)
    ratio = one / wrk
    return [
        f"one process: {one:,.0f} answers/s = {ratio:.2f} x wrk's {wrk:,.0f} req/s (target >= 0.50): "
        + ("met" if ratio >= 0.5 else f"MISSED by {(0.5 - ratio) / 0.5:.1%}"),
        f"--procs 2: {two:,.0f} answers/s = {two / one:.2f} x one process (target > 1): "
        + ("met" if two > one else "MISSED")
        + f"; CPU per answer {cpu2:.0f} us vs {cpu1:.0f} us in one process",
        f"schedule at {sched[0].asked:,.0f}/s asked: worst round {worst:.2%} off (target <= 2%): "
        + ("met" if worst <= 0.02 else "MISSED"),
    ]


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: the bare server gets stopped


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--duration", type=int, default=5, help="seconds per run (default 5)")
    p.add_argument("--rounds", type=int, default=2, help="rounds (default 2)")
    p.add_argument("--json", type=Path, help="write every step to this file")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if not load.wrk_available():
        p.error("wrk is the reference: apt-get install -y wrk")
    if args.duration < 1 or args.rounds < 1:
        p.error("--duration and --rounds must be >= 1")
    print(f"flashsale load vs wrk on bench/bare.py: {args.rounds} round(s) of {args.duration} s, 64 connections")
    try:
        steps = measure(args)
    except (ServerFailed, subprocess.SubprocessError, RuntimeError, OSError) as exc:
        print(f"FAILED: {type(exc).__name__}: {exc}")
        return 1
    print()
    print(f"{'rnd':>3} {'run':<9} {'asked/s':>9} {'answers/s':>10} {'sched/s':>9} {'lag p99':>8} {'p99 ms':>8} "
          f"{'errors':>6} {'loadavg':>7} {'CPU us/answer':>13}")  # fmt: skip
    for s in steps:
        print(
            f"{s.round:>3} {s.what:<9} {s.asked:>9,.0f} {s.rate:>10,.0f} {s.schedule_rate:>9,.1f} "
            f"{s.lag_p99_ms:>8.1f} {s.p99_ms:>8.1f} {s.errors:>6,} {s.loadavg:>7.2f} {s.cpu_us_per_answer:>13.0f}"
        )
    print()
    lines = verdicts(steps)
    for line in lines:
        print(line)
    if args.json is not None:
        report: dict[str, Any] = {"steps": [asdict(s) for s in steps], "verdicts": lines}
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
