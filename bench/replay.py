"""Replay throughput: virtual-time decisions per second on the Moutai rush.

``python bench/replay.py [--scenario scenarios/moutai-rush.json] [--repeat 5] [--loop uvloop|asyncio] [--json FILE]``
(or ``bench/run.py replay``).

Each run replays the scenario through a fresh ``SaleEngine`` and its actors
on virtual time (``engine.replay``): 50,003 purchases, 100 units, the crowd
front-loaded into the first second. A run is timed from the first event to
the last answer (``ReplayResult.wall_seconds``; engine start and stop and the
generators' expansion are reported apart). Every run must give the digest
the file pins, so a fast run that decides differently does not count. The
verdict is the median against the target of 100,000 decisions/s; exit
status 1 if missed or if a digest differs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from flashsale import load_scenario, replay

REPO = Path(__file__).resolve().parents[1]
TARGET = 100_000


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if name == "asyncio":
        return None
    import uvloop  # noqa: PLC0415 - only when asked for

    return uvloop.new_event_loop


def run(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    scenario = load_scenario(args.scenario)
    events = len(scenario.traffic())
    expand = time.perf_counter() - began
    print(f"replay benchmark: {scenario.name}, {events:,} scheduled events (load and expand {expand:.3f} s)")
    print(f"{'run':>4} {'decisions':>10} {'replay s':>9} {'decisions/s':>12} {'total s':>8}  digest")
    rates: list[float] = []
    digests: set[str] = set()
    runs = []
    for i in range(1, args.repeat + 1):
        with asyncio.Runner(loop_factory=_loop_factory(args.loop)) as runner:
            t0 = time.perf_counter()
            result = runner.run(replay(scenario))
            total = time.perf_counter() - t0
        rates.append(result.decisions_per_second)
        digests.add(result.digest)
        runs.append({"decisions": result.decisions, "wall_seconds": result.wall_seconds, "total_seconds": total})
        print(
            f"{i:>4} {result.decisions:>10,} {result.wall_seconds:>9.3f} {result.decisions_per_second:>12,.0f}"
            f" {total:>8.3f}  {result.digest[:19]}"
        )
    median = statistics.median(rates)
    pinned = scenario.expect.digest
    same = digests == {pinned} if pinned else len(digests) == 1
    verdict = "met" if median >= TARGET else "MISSED"
    print(
        f"median {median:,.0f} decisions/s (min {min(rates):,.0f}, max {max(rates):,.0f}); target {TARGET:,}: {verdict}"
    )
    if same:
        print(f"digest identical in every run{' and as pinned' if pinned else ''}")
    else:
        print(f"digest DIFFERS between runs or from the pinned one: {sorted(digests)}")
    if args.json is not None:
        report = {"scenario": scenario.name, "loop": args.loop, "runs": runs, "median_decisions_per_second": median}
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if median >= TARGET and same else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/run.py replay", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", type=Path, default=REPO / "scenarios" / "moutai-rush.json")
    p.add_argument("--repeat", type=int, default=5, help="runs (default 5)")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop", help="event loop (default uvloop)")
    p.add_argument("--json", type=Path, help="write the raw numbers here")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
