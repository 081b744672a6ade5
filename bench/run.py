"""flashsale benchmarks: ``bench/run.py [http|embedded|all] [options]`` (default all).

``http``: for each scenario, start the bare aiohttp+uvloop server
(bench/bare.py) and ``flashsale serve`` as subprocesses, alternately
(bare, flashsale, bare, flashsale, ... for ``--rounds`` rounds), each on a
fresh port and, for flashsale, a fresh config and SQLite file. Each gets a
short warm-up, then a fixed-duration run of the same load (wrk when on PATH,
else ``flashsale load`` at a fixed rate) over 64 keep-alive connections to
127.0.0.1. Readiness is polled on ``GET /healthz``; every server is stopped
in a ``finally``. Scenarios:

- ``commit``: hot SKU, stock 10^8, a new user per request, durability commit;
- ``async``: the same with durability async;
- ``sold_out``: stock 0, so every flashsale answer is ``409 sold_out``;
- ``shaped``: ``commit`` with the limiter and dedup on: token buckets in all
  four scopes (global, per SKU, per user, per IP) at rates the load never
  reaches, and a per-user limit on the SKU;
- ``sold_out_logged`` (not in the default set): ``sold_out`` with
  ``server.access_log = true``, to read the cost of the access log against
  ``sold_out`` in the same run.

After each commit/async run the server is stopped and its SQLite file is
read: orders stored must cover every 200 the load tool counted.

``embedded``: bench/embedded.py (SaleEngine without HTTP).

``recovery [options]``: bench/recovery.py (restart time with 1,000,000 orders
in the store; its own options, see ``bench/recovery.py --help``). Not part of
``all``.

``replay [options]``: bench/replay.py (virtual-time replay of the Moutai rush
in decisions/s; see ``bench/replay.py --help``). Not part of ``all``.

``auth [options]``: bench/auth_bench.py (``[auth] mode = "jwt"`` with HS256
against the same sale in ``trusted`` mode, side by side; ``bench/run.py auth
--help``). Not part of ``all``.

``loadgen [options]``: bench/loadgen.py (``flashsale load`` itself: its
request rate against wrk's on the bare server, ``--procs 2``, and how close
its schedule keeps to the rate asked; see ``bench/run.py loadgen --help``).
Not part of ``all``.

``redis [options]``: bench/redis_bench.py (the redis backend against the
usual ``SET NX`` + ``EVALSHA`` endpoint, bench/redis_ref.py, on a spawned
Redis and PostgreSQL; ``bench/run.py redis --help``). Not part of ``all``.

``--json FILE`` writes every raw number.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import auth_bench
import embedded
import load
import recovery
import redis_bench
import replay
from servers import BENCH, SKU, ServerFailed, flashsale_bin, free_port, running


@dataclass(frozen=True)
class Scenario:
    """One HTTP scenario: the flashsale config and the status every answer should have."""

    key: str
    label: str
    stock: int
    durability: str
    expect: int  # flashsale's expected status; the bare server always answers 200
    min_ratio: float | None = None
    max_p99_ms: float | None = None
    shaped: bool = False  # limiter (all four scopes) and dedup on
    access_log: bool = False  # server.access_log: one log line per request


SCENARIOS = (
    Scenario("commit", "hot SKU, durability commit", 10**8, "commit", 200, min_ratio=0.8, max_p99_ms=10.0),
    Scenario("async", "hot SKU, durability async", 10**8, "async", 200),
    Scenario("sold_out", "sold out (stock 0)", 0, "commit", 409, min_ratio=0.9),
    Scenario("shaped", "hot SKU, commit, limiter + dedup", 10**8, "commit", 200, min_ratio=0.8, shaped=True),
    Scenario("sold_out_logged", "sold out, access log on", 0, "commit", 409, access_log=True),
)

SHAPED_TOML = """per_user_limit = 5

[limits]
global = { rate = 1e9, burst = 100000000 }
per_sku = { rate = 1e9, burst = 100000000 }
per_user = { rate = 100, burst = 10 }
per_ip = { rate = 1e9, burst = 100000000 }
"""
"""Every scope on, token buckets, at rates the load never reaches (all load comes from one address)."""


@dataclass
class Run:
    """One server measured once in one scenario."""

    scenario: str
    server: str  # "bare" or "flashsale"
    round: int
    warmup: load.LoadResult | None = None
    result: load.LoadResult | None = None
    orders_in_db: int | None = None
    cpu: CpuUse | None = None  # during the measured run
    error: str | None = None

    def expected_status(self) -> int:
        return 200 if self.server == "bare" else scenario_of(self.scenario).expect

    def unexpected(self) -> int:
        """Answers that should not be there: wrong status, or no answer at all."""
        if self.result is None:
            return 0
        r = self.result
        return r.responses - r.status.get(self.expected_status(), 0) + r.socket_errors

    def twohundreds(self) -> int:
        """200s over warm-up and measured run: what the SQLite file must hold at least."""
        return sum(x.status.get(200, 0) for x in (self.warmup, self.result) if x is not None)

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        for k in ("warmup", "result"):
            x = getattr(self, k)
            d[k] = x.as_dict() if x is not None else None
        d["cpu"] = asdict(self.cpu) if self.cpu is not None else None
        return d


def scenario_of(key: str) -> Scenario:
    return next(s for s in SCENARIOS if s.key == key)


# -- servers --------------------------------------------------------------------


def write_config(tmp: Path, sc: Scenario, port: int, name: str) -> tuple[Path, Path]:
    """A TOML config for ``sc``; returns (config path, SQLite path)."""
    db = tmp / f"{name}.db"
    cfg = tmp / f"{name}.toml"
    cfg.write_text(
        f'[[sku]]\nid = "{SKU}"\nstock = {sc.stock}\n'
        + (SHAPED_TOML if sc.shaped else "")
        + f'\n[store]\npath = "{db}"\ndurability = "{sc.durability}"\n\n'
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nlog_level = "info"\n'
        + ("access_log = true\n" if sc.access_log else ""),
        encoding="utf-8",
    )
    return cfg, db


def count_orders(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM orders WHERE sku = ?", (SKU,)).fetchone()[0])


# -- CPU accounting (Linux /proc; None elsewhere) --------------------------------

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class CpuUse:
    """CPU used during one measured run, in cores (CPU-seconds per second of wall time).

    ``others`` is what the machine spent on everything but the server and the
    load tool (other processes, kernel work not charged to them); ``steal`` is
    time the hypervisor gave to other guests. Both say how noisy the run was.
    """

    server: float
    load_tool: float
    others: float
    steal: float


def _machine_ticks() -> tuple[int, int]:
    """(busy, steal) ticks of all CPUs since boot."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = f[:8]
    return user + nice + system + irq + softirq, steal


def _process_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, all threads


def _children_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


@contextlib.contextmanager
def cpu_meter(pid: int, out: list[CpuUse]) -> Iterator[None]:
    """Append the :class:`CpuUse` of the block to ``out`` (nothing if /proc is missing)."""
    try:
        start = (time.monotonic(), _machine_ticks(), _process_ticks(pid), _children_seconds())
    except (OSError, ValueError):
        yield
        return
    yield
    with contextlib.suppress(OSError, ValueError):
        wall = time.monotonic() - start[0]
        (busy, steal), server = _machine_ticks(), _process_ticks(pid)
        server_s, tool_s = (server - start[2]) / TICK, _children_seconds() - start[3]
        others_s = (busy - start[1][0]) / TICK - server_s - tool_s
        steal_s = (steal - start[1][1]) / TICK
        out.append(CpuUse(server_s / wall, tool_s / wall, max(0.0, others_s) / wall, steal_s / wall))


# -- the HTTP benchmark ---------------------------------------------------------


def drive(args: argparse.Namespace, port: int, prefix: str, seconds: int) -> load.LoadResult:
    if args.load == "wrk":
        return load.run_wrk(port, SKU, prefix, args.connections, seconds, threads=args.wrk_threads)
    return load.run_builtin(port, SKU, prefix, args.connections, seconds)


def measure(args: argparse.Namespace, sc: Scenario, server: str, rnd: int, tmp: Path) -> Run:
    """Start one server, warm it up, measure it, stop it; never raises for a server failure."""
    run = Run(sc.key, server, rnd)
    port = free_port()
    name = f"{sc.key}-{server}-{rnd}"
    db: Path | None = None
    try:
        if server == "bare":
            cmd = [sys.executable, str(BENCH / "bare.py"), "--port", str(port)]
        else:
            cfg, db = write_config(tmp, sc, port, name)
            cmd = [flashsale_bin(), "serve", "--config", str(cfg), "--port", str(port)]
        with running(cmd, port, tmp / f"{name}.log", args.ready_timeout) as proc:
            if args.warmup > 0:
                run.warmup = drive(args, port, f"w{rnd}", args.warmup)
            cpu: list[CpuUse] = []
            with cpu_meter(proc.pid, cpu):
                run.result = drive(args, port, f"m{rnd}", args.duration)
            run.cpu = cpu[0] if cpu else None
    except (ServerFailed, subprocess.SubprocessError, RuntimeError, OSError, ValueError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"
    if db is not None and sc.expect == 200 and run.error is None:
        run.orders_in_db = count_orders(db)
    return run


def http_bench(args: argparse.Namespace) -> list[Run]:
    """Every scenario, bare and flashsale alternately, ``--rounds`` times."""
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="flashsale-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for sc in SCENARIOS:
            if sc.key not in args.scenarios:
                continue
            print(f"  {sc.key}: {sc.label}", flush=True)
            for rnd in range(1, args.rounds + 1):
                for server in ("bare", "flashsale"):
                    print(f"    round {rnd}  {server:<9} ...", end=" ", flush=True)
                    run = measure(args, sc, server, rnd, tmp)
                    print(_progress(run), flush=True)
                    runs.append(run)
    return runs


def _progress(run: Run) -> str:
    if run.error is not None or run.result is None:
        return f"FAILED: {run.error}"
    r = run.result
    return f"{r.rps:,.0f} req/s, p99 {r.p99_ms:.2f} ms"


# -- HTTP report ----------------------------------------------------------------


@dataclass
class Summary:
    """One scenario over all rounds: the figures the targets are judged on."""

    scenario: str
    bare_rps: float | None
    flashsale_rps: float | None
    ratio: float | None  # median of the per-round ratios (each pair ran back to back)
    round_ratios: list[float]
    flashsale_p50_ms: float | None
    flashsale_p99_ms: float | None  # the worst round
    unexpected: int
    target: str
    verdict: str


def summarize(runs: list[Run]) -> list[Summary]:
    out = []
    for sc in SCENARIOS:
        mine = [r for r in runs if r.scenario == sc.key]
        if not mine:
            continue
        bare = [r.result for r in mine if r.server == "bare" and r.result is not None]
        fs = [r.result for r in mine if r.server == "flashsale" and r.result is not None]
        bare_rps = statistics.fmean(r.rps for r in bare) if bare else None
        fs_rps = statistics.fmean(r.rps for r in fs) if fs else None
        ratios = paired_ratios(mine)
        ratio = statistics.median(ratios) if ratios else None
        p50 = statistics.fmean(r.p50_ms for r in fs) if fs else None
        p99 = max(r.p99_ms for r in fs) if fs else None
        target, verdict = judge(sc, ratio, p99)
        unexpected = sum(r.unexpected() for r in mine)
        out.append(Summary(sc.key, bare_rps, fs_rps, ratio, ratios, p50, p99, unexpected, target, verdict))
    return out


def paired_ratios(runs: list[Run]) -> list[float]:
    """flashsale req/s / bare req/s for each round where both runs completed."""
    by_round: dict[int, dict[str, float]] = {}
    for r in runs:
        if r.result is not None and r.result.rps > 0:
            by_round.setdefault(r.round, {})[r.server] = r.result.rps
    return [pair["flashsale"] / pair["bare"] for pair in by_round.values() if len(pair) == 2]


def judge(sc: Scenario, ratio: float | None, p99: float | None) -> tuple[str, str]:
    """The target text and its verdict ("met", "MISSED by ...", "-" or "n/a")."""
    parts, misses = [], []
    if sc.min_ratio is not None:
        parts.append(f">= {sc.min_ratio:.2f}x bare")
        if ratio is not None and ratio < sc.min_ratio:
            misses.append(f"ratio {ratio:.2f} < {sc.min_ratio:.2f} ({(sc.min_ratio - ratio) / sc.min_ratio:.0%} short)")
    if sc.max_p99_ms is not None:
        parts.append(f"p99 <= {sc.max_p99_ms:g} ms")
        if p99 is not None and p99 > sc.max_p99_ms:
            misses.append(f"p99 {p99:.1f} ms > {sc.max_p99_ms:g} ms")
    if not parts:
        return "-", "-"
    if ratio is None:
        return ", ".join(parts), "n/a"
    return ", ".join(parts), "MISSED: " + "; ".join(misses) if misses else "met"


def _f(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def format_runs(runs: list[Run]) -> str:
    head = (
        f"{'scenario':<9} {'rnd':>3} {'server':<9} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'2xx':>8} {'409':>8} {'4xx other':>9} {'5xx':>6} {'sock err':>8} {'unexpected':>10}  "
        f"CPU cores: {'server':>6} {'load':>5} {'others':>6} {'steal':>5}"
    )
    rows = [head]
    for run in runs:
        r = run.result
        if r is None:
            rows.append(f"{run.scenario:<9} {run.round:>3} {run.server:<9} FAILED: {(run.error or '').splitlines()[0]}")
            continue
        other4 = r.count(400, 500) - r.count(409, 410)
        rows.append(
            f"{run.scenario:<9} {run.round:>3} {run.server:<9} {r.rps:>9,.0f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} "
            f"{r.count(200, 300):>8,} {r.count(409, 410):>8,} {other4:>9,} {r.count(500, 600):>6,} "
            f"{r.socket_errors:>8,} {run.unexpected():>10,}  {_cpu_cells(run.cpu)}"
        )
    return "\n".join(rows)


def _cpu_cells(cpu: CpuUse | None) -> str:
    if cpu is None:
        return f"{'':>10} {'n/a':>6}"
    return f"{'':>10} {cpu.server:>6.2f} {cpu.load_tool:>5.2f} {cpu.others:>6.2f} {cpu.steal:>5.2f}"


def format_summary(summaries: list[Summary]) -> str:
    head = (
        f"{'scenario':<9} {'bare req/s':>10} {'flashsale':>10} {'ratio':>6} {'per round':>15} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'unexpected':>10}  target -> verdict"
    )
    rows = [head]
    for s in summaries:
        per_round = " ".join(f"{x:.2f}" for x in s.round_ratios)
        rows.append(
            f"{s.scenario:<9} {_f(s.bare_rps, ',.0f'):>10} {_f(s.flashsale_rps, ',.0f'):>10} {_f(s.ratio, '.2f'):>6} "
            f"{per_round:>15} {_f(s.flashsale_p50_ms, '.2f'):>7} {_f(s.flashsale_p99_ms, '.2f'):>7} "
            f"{s.unexpected:>10,}  {s.target} -> {s.verdict}"
        )
    return "\n".join(rows)


def format_sqlite_checks(runs: list[Run], connections: int) -> str:
    """200s counted by the load tool vs orders stored, per flashsale commit/async run."""
    rows = []
    for run in runs:
        if run.server != "flashsale" or run.orders_in_db is None:
            continue
        oks, stored = run.twohundreds(), run.orders_in_db
        extra = stored - oks
        bound = connections * (2 if run.warmup is not None else 1)
        verdict = "ok" if 0 <= extra <= bound else "MISMATCH"
        rows.append(
            f"  {run.scenario:<9} round {run.round}: 200s counted {oks:,}, orders in SQLite {stored:,}, "
            f"extra {extra:,} (answered after the load tool stopped; allowed 0..{bound}): {verdict}"
        )
    return "\n".join(rows) if rows else "  (no flashsale commit/async run completed)"


def print_http(runs: list[Run], args: argparse.Namespace) -> list[Summary]:
    summaries = summarize(runs)
    tool = f"wrk ({args.wrk_threads} thread)"
    if args.load != "wrk":
        tool = f"flashsale load (open loop, {load.BUILTIN_RATE:,.0f}/s)"
    print()
    print(
        f"HTTP benchmark: {args.connections} connections, {args.duration} s per run after {args.warmup} s warm-up, "
        f"load: {tool}, {args.rounds} round(s), bare and flashsale alternately"
    )
    print()
    print(format_runs(runs))
    print(
        "CPU cores: used during the measured run by the server, the load tool, everything else "
        "(other processes: noise), and stolen by the hypervisor (noise)."
    )
    if args.load == "builtin":
        print(
            "note: flashsale load runs open loop at a fixed rate and shares the CPUs with the server; a ratio "
            "near 1 may mean both kept the rate asked: wrk (closed loop) is the reference for ratios"
        )
    print()
    print(
        "Summary (flashsale req/s / bare req/s per round, back to back; ratio: their median; "
        "req/s and p50: mean over rounds; p99: flashsale's worst round):"
    )
    print(format_summary(summaries))
    print()
    print("SQLite check (every 200 must be a stored order):")
    print(format_sqlite_checks(runs, args.connections))
    return summaries


# -- main -----------------------------------------------------------------------


def _git_commit() -> str | None:
    """The commit under test (with "+dirty" when the work tree has changes), if git is there."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=BENCH.parent, capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()


def machine_info(args: argparse.Namespace) -> dict[str, object]:
    wrk_version = None
    if load.wrk_available():
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10, check=False)
        wrk_version = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else "?"
    return {
        "commit": _git_commit(),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg(),
        "load_tool": args.load,
        "wrk": wrk_version,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="flashsale benchmarks (HTTP vs a bare aiohttp handler, and embedded).")
    p.add_argument(
        "what",
        nargs="?",
        choices=("all", "http", "embedded"),
        default="all",
        help="which benchmark (default all); `run.py recovery [options]` runs bench/recovery.py",
    )
    p.add_argument("--duration", type=int, default=10, help="seconds per measured HTTP run (default 10)")
    p.add_argument("--warmup", type=int, default=1, help="seconds of warm-up load before each HTTP run (default 1)")
    p.add_argument("--rounds", type=int, default=3, help="bare/flashsale alternations per scenario (default 3)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--load", choices=("auto", "wrk", "builtin"), default="auto", help="auto: wrk if on PATH")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1: leaves a core to the server)")
    p.add_argument("--scenarios", default="commit,async,sold_out,shaped", help="comma-separated subset")
    p.add_argument("--ready-timeout", type=float, default=30.0, help="seconds to wait for /healthz")
    p.add_argument("--embedded-seconds", type=float, default=3.0, help="measured seconds per embedded case")
    p.add_argument("--embedded-repeat", type=int, default=3, help="runs per embedded case; the median is reported")
    p.add_argument("--batch", type=int, default=1000, help="embedded batch size")
    p.add_argument("--concurrency", type=int, default=2, help="concurrent clients in the batched embedded cases")
    p.add_argument("--json", type=Path, help="write every raw number to this file")
    args = p.parse_args(argv)
    if args.load == "auto":
        args.load = "wrk" if load.wrk_available() else "builtin"
    elif args.load == "wrk" and not load.wrk_available():
        p.error("--load wrk: wrk is not on PATH")
    args.scenarios = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    unknown = args.scenarios - {s.key for s in SCENARIOS}
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if min(args.duration, args.rounds, args.connections, args.embedded_repeat, args.batch, args.concurrency) < 1:
        p.error("--duration, --rounds, --connections, --embedded-repeat, --batch and --concurrency must be >= 1")
    return args


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: the servers get stopped


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["recovery"]:
        return recovery.main(argv[1:])
    if argv[:1] == ["replay"]:
        return replay.main(argv[1:])
    if argv[:1] == ["redis"]:
        return redis_bench.main(argv[1:])
    if argv[:1] == ["auth"]:
        return auth_bench.main(argv[1:])
    if argv[:1] == ["loadgen"]:
        import loadgen  # noqa: PLC0415 - its own benchmark, with its own options

        return loadgen.main(argv[1:])
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    m = machine_info(args)
    report: dict[str, object] = {"machine": m, "args": {k: str(v) for k, v in vars(args).items()}}
    print(
        f"machine: {m['nproc']} CPUs, Python {m['python']}, load average at start {m['loadavg_at_start']}, "
        f"flashsale at {m['commit']}"
    )
    failed = False
    if args.what in ("all", "http"):
        print(f"\nHTTP benchmark (load tool: {args.load})")
        runs = http_bench(args)
        summaries = print_http(runs, args)
        report["http"] = {"runs": [r.as_dict() for r in runs], "summary": [asdict(s) for s in summaries]}
        failed = any(r.error is not None for r in runs)
    if args.what in ("all", "embedded"):
        print("\nEmbedded benchmark ...", flush=True)
        results = embedded.run_all(args.embedded_seconds, args.batch, args.concurrency, args.embedded_repeat)
        print()
        print(embedded.format_table(results, args.batch, args.concurrency))
        report["embedded"] = {"runs": [r.as_dict() for r in results]}
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"\nraw numbers written to {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
