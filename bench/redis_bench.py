"""``bench/run.py redis``: flashsale's redis backend against the usual Redis endpoint, in the same run.

Spawns a throwaway ``redis-server`` (AOF on, ``appendfsync everysec``) and a
throwaway PostgreSQL (flashsale's order sink writes there), then alternately
(reference, flashsale, reference, ... for ``--rounds`` rounds) starts
bench/redis_ref.py (per request one ``SET NX`` and one ``EVALSHA``) and
``flashsale serve`` with ``backend = "redis"`` on the same Redis, warms each
up and drives the same load (bench/load.py: a new buyer per request, one hot
SKU with plenty of stock, so every answer is a 200). Printed per run:
req/s, latency, and per purchase over the measured run: Redis round trips
(``total_reads_processed`` of ``INFO stats``: socket reads, one per request
or pipeline) and commands (``INFO commandstats``, the ones run inside
scripts included). Flashsale's figures include its order sink's stream
reads and acks. Target: flashsale >= 3x the reference's req/s.

Run: ``.venv/bin/python bench/run.py redis --duration 5 --rounds 2`` (binaries:
``redis-server`` on PATH, PostgreSQL's ``initdb``/``postgres`` on PATH or in
/usr/lib/postgresql/<version>/bin).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import load
import redis
from servers import BENCH, SKU, ServerFailed, flashsale_bin, free_port, running

from flashsale.testing import PostgresServer, RedisServer

PG_DIRS = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")
START_TIMEOUT_S = 30.0
TARGET = 3.0


@contextlib.contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """A throwaway redis-server (AOF, fsync every second); yields its URL."""
    with RedisServer(appendfsync="everysec") as server:
        yield server.url


@contextlib.contextmanager
def postgres_server(tmp: Path) -> Iterator[str]:
    """A throwaway PostgreSQL cluster; yields the URL of its database ``flashsale``."""
    with PostgresServer() as server:
        yield server.create_database("flashsale")


def command_calls(url: str) -> dict[str, int]:
    """Calls per command so far, and ``(reads)``: socket reads Redis processed (our INFO calls add 2 each)."""
    client = redis.Redis.from_url(url, decode_responses=True)
    stats = client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    calls["(reads)"] = int(client.info("stats")["total_reads_processed"])
    return calls


@dataclass
class RedisRun:
    server: str  # "reference" or "flashsale"
    round: int
    result: load.LoadResult | None = None
    commands: dict[str, int] | None = None  # calls during the measured run, by command
    error: str | None = None

    def per_purchase(self, command: str | None = None) -> float | None:
        """Calls of ``command`` (every command when None) per 200 answered."""
        if self.result is None or self.commands is None or not self.result.status.get(200):
            return None
        if command is None:
            calls = sum(v for k, v in self.commands.items() if not k.startswith("("))
        else:
            calls = self.commands.get(command, 0)
        return calls / self.result.status[200]


def write_config(tmp: Path, name: str, redis_url: str, pg_url: str, port: int) -> Path:
    cfg = tmp / f"{name}.toml"
    cfg.write_text(
        f'backend = "redis"\n\n[[sku]]\nid = "{SKU}"\nstock = {10**8}\nper_user_limit = 1\n\n'
        f'[redis]\nurl = "{redis_url}"\nprefix = "{name}"\n\n[postgres]\nurl = "{pg_url}"\n\n'
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nlog_level = "info"\n',
        encoding="utf-8",
    )
    return cfg


def measure(args: argparse.Namespace, server: str, rnd: int, tmp: Path, urls: tuple[str, str]) -> RedisRun:
    """One server, warmed up and measured; ``urls`` are Redis's and PostgreSQL's. Never raises for a failure."""
    redis_url, pg_url = urls
    run = RedisRun(server, rnd)
    port = free_port()
    name = f"{server}-{rnd}"
    if server == "reference":
        cmd = [sys.executable, str(BENCH / "redis_ref.py"), "--port", str(port), "--redis", redis_url, "--sku", SKU]
    else:
        cfg = write_config(tmp, f"b{rnd}", redis_url, pg_url, port)
        cmd = [flashsale_bin(), "serve", "--config", str(cfg), "--port", str(port)]
    drive = load.run_wrk if args.load == "wrk" else load.run_builtin
    try:
        with running(cmd, port, tmp / f"{name}.log", START_TIMEOUT_S):
            if args.warmup > 0:
                drive(port, SKU, f"w{rnd}{server[0]}", args.connections, args.warmup)
            before = command_calls(redis_url)
            run.result = drive(port, SKU, f"m{rnd}{server[0]}", args.connections, args.duration)
            after = command_calls(redis_url)
            run.commands = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
            run.commands["info"] = run.commands.get("info", 2) - 2  # our own INFO calls
            run.commands["(reads)"] = run.commands.get("(reads)", 2) - 2
    except (ServerFailed, subprocess.SubprocessError, RuntimeError, OSError, ValueError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"
    return run


def _f(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def report(runs: list[RedisRun]) -> bool:
    """Print the runs and the verdict; True when the target was met."""
    print(
        f"\n{'rnd':>3} {'server':<9} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'200s':>9} {'other':>7} "
        f"{'trips/buy':>9} {'cmds/buy':>8} {'evalsha/buy':>11}  busiest commands"
    )
    for r in runs:
        if r.result is None:
            print(f"{r.round:>3} {r.server:<9} FAILED: {r.error}")
            continue
        res = r.result
        top = sorted(((k, v) for k, v in (r.commands or {}).items() if k[0] != "("), key=lambda kv: -kv[1])[:4]
        print(
            f"{r.round:>3} {r.server:<9} {res.rps:>9,.0f} {res.p50_ms:>7.2f} {res.p99_ms:>7.2f} "
            f"{res.status.get(200, 0):>9,} {res.responses - res.status.get(200, 0) + res.socket_errors:>7,} "
            f"{_f(r.per_purchase('(reads)'), '.3f'):>9} {_f(r.per_purchase(), '.3f'):>8} "
            f"{_f(r.per_purchase('evalsha'), '.3f'):>11}  " + ", ".join(f"{k} {v:,}" for k, v in top)
        )
    ratios = []
    for rnd in sorted({r.round for r in runs}):
        pair = {r.server: r.result.rps for r in runs if r.round == rnd and r.result is not None and r.result.rps > 0}
        if len(pair) == 2:
            ratios.append(pair["flashsale"] / pair["reference"])
    ratio = statistics.median(ratios) if ratios else None
    verdict = "n/a" if ratio is None else ("met" if ratio >= TARGET else f"MISSED ({ratio:.2f} < {TARGET:.0f})")
    print(
        "per buy (per 200): trips = Redis socket reads (round trips, the order sink's included), "
        "cmds = commands run (inside scripts too)"
    )
    print(
        f"\nflashsale (redis backend) / reference req/s per round: {' '.join(f'{x:.2f}' for x in ratios) or 'n/a'}; "
        f"median {_f(ratio, '.2f')}x; target >= {TARGET:.0f}x -> {verdict}"
    )
    return ratio is not None and ratio >= TARGET


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench/run.py redis", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per measured run (default 10)")
    p.add_argument("--warmup", type=int, default=1, help="seconds of warm-up load before each run (default 1)")
    p.add_argument("--rounds", type=int, default=3, help="reference/flashsale alternations (default 3)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--load", choices=("auto", "wrk", "builtin"), default="auto", help="auto: wrk if on PATH")
    args = p.parse_args(argv)
    if args.load == "auto":
        args.load = "wrk" if load.wrk_available() else "builtin"
    print(f"Redis benchmark: {args.connections} connections, {args.duration} s runs, load tool {args.load}")
    runs: list[RedisRun] = []
    # PostgreSQL gets its own directory: it may run as another user, who cannot enter ours.
    with (
        tempfile.TemporaryDirectory(prefix="flashsale-redis-bench-") as tmpdir,
        tempfile.TemporaryDirectory(prefix="flashsale-redis-bench-pg-") as pgdir,
    ):
        tmp = Path(tmpdir)
        (tmp / "redis").mkdir()
        with redis_server(tmp / "redis") as redis_url, postgres_server(Path(pgdir)) as pg_url:
            for rnd in range(1, args.rounds + 1):
                for server in ("reference", "flashsale"):
                    print(f"  round {rnd} {server:<9} ...", end=" ", flush=True)
                    run = measure(args, server, rnd, tmp, (redis_url, pg_url))
                    print(f"{run.result.rps:,.0f} req/s" if run.result else f"FAILED: {run.error}", flush=True)
                    runs.append(run)
    report(runs)
    return 1 if any(r.error for r in runs) else 0
