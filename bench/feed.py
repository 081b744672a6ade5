"""The live stock feed under 10,000 listeners: ``bench/run.py feed [options]`` or ``python bench/feed.py``.

Starts the bare aiohttp handler (bench/bare.py) and two ``flashsale serve``
processes with the same config (hot SKU, stock 10^8, durability commit, the
feed bounded at 20,000 listeners) as subprocesses: *listened*, which gets
``--listeners`` feeds of the hot SKU (``GET /v1/skus/hot/events``), and
*quiet*, which gets none. The listeners live in their own process
(bench/listeners.py: uvloop, no HTTP parser, a marker search per read), so
what they cost is measured apart and reported.

1. Delivery: ``--changes`` times, one purchase changes the stock; from just
   before that purchase is sent, the time until each listener has read the
   change's event. Prints p50, p99 and max over every listener and change,
   and how many arrived within 1 s (the target: all of them).
2. Throughput: with every listener still attached (and reading as the
   events arrive, as a browser would), wrk (or bench/load.py) drives
   purchases at bare, quiet and listened in turn, ``--rounds`` times, same
   connections and duration. Prints each run with the server's and the
   listener process's CPU, and the ratios of the medians: listened / bare
   (the target: >= 0.7), quiet / bare (flashsale without a feed) and
   listened / quiet (what the feed costs the purchases).

Every process shares this machine with the load tool and the listeners:
figures are noisy on a busy 2-core machine; the ratios are measured side by
side in one run for that reason.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import load
from listeners import Fleet
from servers import BENCH, SKU, children, cpu_seconds, flashsale_bin, free_port, running

PATH = f"/v1/skus/{SKU}/events"
MARKER = "event: sku"


def write_config(tmp: Path, port: int, listeners: int, max_rate: float) -> Path:
    cfg = tmp / "feed.toml"
    cfg.write_text(
        f'[[sku]]\nid = "{SKU}"\nstock = 100000000\n\n'
        f'[store]\npath = "{tmp / "feed.db"}"\ndurability = "commit"\n\n'
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nlog_level = "warning"\n\n'
        f"[feed]\nmax_listeners = {max(20_000, listeners + 100)}\nmax_rate = {max_rate}\n\n"
        # Every listener and the load come from 127.0.0.1: the per-address connection cap must allow them.
        f"[connections]\nmax_per_ip = {listeners + 1000}\nmax_total = {listeners + 1000}\n",
        encoding="utf-8",
    )
    return cfg


def buy(port: int, user: str) -> None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/purchase",
        data=f'{{"sku": "{SKU}", "user": "{user}"}}'.encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def feed_metric(port: int, name: str) -> float:
    """One unlabelled sample of the server's /metrics (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    return next((float(x.split()[1]) for x in metrics.splitlines() if x.startswith(f"{name} ")), 0.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/feed.py", description=__doc__.splitlines()[0])
    p.add_argument("--listeners", type=int, default=10_000)
    p.add_argument("--changes", type=int, default=5, help="stock changes timed for delivery (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="bare/quiet/listened throughput triples (default 3)")
    p.add_argument("--duration", type=int, default=10, help="seconds per throughput run (default 10)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--max-rate", type=float, default=10.0, help="the servers' [feed] max_rate (default 10)")
    p.add_argument("--load", choices=["wrk", "builtin"], default="wrk" if load.wrk_available() else "builtin")
    args = p.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.listeners + 200 > hard:
        print(f"feed: --listeners {args.listeners} needs more open files than the limit {hard}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="flashsale-feed-") as d, contextlib.ExitStack() as stack:
        tmp = Path(d)
        ports: dict[str, int] = {}
        pids: dict[str, int] = {}
        for name in ("bare", "quiet", "listened"):
            port = ports[name] = free_port()
            if name == "bare":
                cmd = [sys.executable, str(BENCH / "bare.py"), "--port", str(port)]
            else:
                (tmp / name).mkdir()
                cfg = write_config(tmp / name, port, args.listeners, args.max_rate)
                cmd = [flashsale_bin(), "serve", "--config", str(cfg)]
            pids[name] = stack.enter_context(running(cmd, port, tmp / f"{name}.log", 60)).pid
        fleet = stack.enter_context(Fleet())
        fs_port = ports["listened"]
        opened = fleet.ask(cmd="open", port=fs_port, paths=[PATH] * args.listeners, ready=MARKER)
        print(f"listeners  {opened['open']:,} feeds open in {opened['seconds']:.1f} s (a separate client process)")
        delays: list[float] = []
        missing = 0
        client_cpu = 0.0
        for i in range(args.changes if args.listeners else 0):
            fleet.ask(cmd="arm", marker=MARKER)
            t0 = time.monotonic()
            buy(fs_port, f"delivery-{i}")
            got = fleet.ask(cmd="collect", t0=t0, wait=10.0)
            delays += got["delays"]
            missing += got["missing"]
            client_cpu += got["cpu"]
            time.sleep(0.3)  # past the feed's coalescing window: the next change is its own event
        if delays or missing:
            within = sum(1 for x in delays if x <= 1.0)
            delays += [float("inf")] * missing
            write_s = feed_metric(fs_port, "flashsale_feed_write_seconds")
            print(
                f"delivery   {len(delays):,} deliveries ({args.changes} changes x {args.listeners:,}"
                f" listeners): p50 {pct(delays, 0.5) * 1000:.0f} ms, p99 {pct(delays, 0.99) * 1000:.0f} ms,"
                f" max {max(delays) * 1000:.0f} ms; within 1 s: {within:,}/{len(delays):,};"
                f" the server's last write to every listener took {write_s * 1000:.0f} ms;"
                f" the listener process's CPU: {client_cpu / max(1, args.changes) * 1000:.0f} ms per change"
            )
        rps: dict[str, list[float]] = {"bare": [], "quiet": [], "listened": []}
        gaps: list[float] = []
        for rnd in range(args.rounds):
            for name in ("bare", "quiet", "listened"):
                port = ports[name]
                kids = children(pids[name])  # flashsale's feed writer, once a feed has opened
                cpu, fleet_cpu = cpu_seconds(pids[name]), fleet.ask(cmd="cpu")["cpu"]
                kids_cpu = sum(cpu_seconds(k) for k in kids)
                events = feed_metric(port, "flashsale_feed_events_total") if name != "bare" else 0.0
                if name == "listened":
                    fleet.ask(cmd="gaps")
                began = time.monotonic()
                if args.load == "wrk":
                    r = load.run_wrk(port, SKU, f"{name[0]}{rnd}", args.connections, args.duration)
                else:
                    r = load.run_builtin(port, SKU, f"{name[0]}{rnd}", args.connections, args.duration)
                took = time.monotonic() - began
                cpu, fleet_cpu = cpu_seconds(pids[name]) - cpu, fleet.ask(cmd="cpu")["cpu"] - fleet_cpu
                kids_cpu = sum(cpu_seconds(k) for k in kids) - kids_cpu
                events = feed_metric(port, "flashsale_feed_events_total") - events if name != "bare" else 0.0
                ok = r.status.get(200, 0)
                rps[name].append(r.rps)
                if name == "listened":  # the stock changed all the time: how long listeners went without news
                    gaps += fleet.ask(cmd="gaps")["gaps"]
                print(
                    f"round {rnd + 1}    {name:9} {r.rps:9,.0f} req/s  p50 {r.p50_ms:.2f} ms  p99 {r.p99_ms:.2f} ms"
                    f"  200s {ok:,}/{r.responses:,}  server CPU {cpu / took:.2f} cores"
                    f" ({cpu / max(1, r.responses) * 1e6:.0f} µs per answer)"
                    + (f", feed writer {kids_cpu / took:.2f} cores, {events / took:.1f} SKU changes/s to write,"
                       f" listener process {fleet_cpu / took:.2f} cores"
                       if name == "listened" else "")
                )  # fmt: skip
        still = fleet.ask(cmd="cpu")["open"]
        if gaps:
            print(
                f"under load the longest wait between two events, per listener: p50 {pct(gaps, 0.5) * 1000:.0f} ms,"
                f" p99 {pct(gaps, 0.99) * 1000:.0f} ms, max {max(gaps) * 1000:.0f} ms (plus at most one"
                f" 1/max_rate poll: the longest a change waited for its listeners)"
            )
        med = {name: statistics.median(v) for name, v in rps.items()}
        ratio = med["listened"] / med["bare"]
        print(
            f"purchases  with {args.listeners:,} listeners attached: flashsale/bare = {ratio:.2f}"
            f" (medians of {args.rounds}; target >= 0.70); without listeners {med['quiet'] / med['bare']:.2f};"
            f" listened/quiet {med['listened'] / med['quiet']:.2f} [{args.load}, {args.connections} connections,"
            f" {args.duration} s runs]; listener connections open at the end: {still:,}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
