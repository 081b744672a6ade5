"""What verifying bearer tokens costs: ``bench/run.py auth [options]``.

The same sale (hot SKU, stock 10^8, durability commit) is served by
``flashsale serve`` three ways, alternately, ``--rounds`` times each, with
the same load (wrk, ``--connections`` keep-alive connections, ``POST
/v1/purchase``) from a pool of buyers:

- ``trusted``: ``[auth] mode = "trusted"``, the buyer in the body
  (``{"sku", "qty", "user"}``), buyers ``b-0 … b-<buyers-1>`` in turn. The
  requests carry the same ``Authorization`` header as in ``jwt`` (ignored
  here), so both modes parse the same bytes and the difference is the
  verification alone;
- ``jwt``: ``mode = "jwt"`` with HS256; each request carries its buyer's
  token (``Authorization: Bearer``, one token per buyer, minted here with
  PyJWT) and no user in the body. The verified-token cache holds every
  buyer's token after its first request: this is a sale's real traffic
  (buyers retry and poll with the token they hold);
- ``jwt_cold``: the same with ``--cold-tokens`` distinct tokens (more than
  the cache holds), sent in turn: every request pays a full signature check.
  The worst case, not the target.

Beside req/s, each run reports the server's CPU time per answered request
(utime + stime of the ``flashsale serve`` process from /proc, over the
measured run): on a shared machine req/s moves with everyone else's load,
CPU per request much less, and with the server saturated throughput is its
inverse.

The target: ``jwt`` keeps at least 90 % of ``trusted``'s throughput
(verification costs under 10 %). Ratios are per round (each jwt run against
the trusted run of the same round; the order of the modes alternates from
round to round), then the median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import jwt
import load
from servers import SKU, flashsale_bin, free_port, running

SECRET = "bench-secret-that-is-at-least-32-bytes"
TARGET = 0.9
MODES = ("trusted", "jwt", "jwt_cold")

WRK_HEAD = r"""
-- flashsale auth benchmark: one buyer per request, in turn, from a fixed pool.
local threads = {}
local counter = 0
counts = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local i = (counter + tid * 7919) % #CREDS + 1
  return wrk.format("POST", "/v1/purchase", HEADERS[i], BODIES[i])
end
"""


def _config(tmp: Path, mode: str, port: int, name: str) -> Path:
    jwt_mode = f'mode = "jwt"\njwt_algorithms = ["HS256"]\njwt_secret = "{SECRET}"'
    auth = 'mode = "trusted"' if mode == "trusted" else jwt_mode
    cfg = tmp / f"{name}.toml"
    cfg.write_text(
        f'[[sku]]\nid = "{SKU}"\nstock = 100000000\n\n[store]\npath = "{tmp / name}.db"\ndurability = "commit"\n\n'
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nlog_level = "info"\n\n[auth]\n{auth}\n',
        encoding="utf-8",
    )
    return cfg


def _script(mode: str, buyers: int, cold: int) -> str:
    """The wrk script for ``mode``: a Lua table of per-request headers and bodies."""
    exp = int(time.time()) + 3600
    lines = ["CREDS, HEADERS, BODIES = {}, {}, {}"]
    n = cold if mode == "jwt_cold" else buyers
    for i in range(n):
        token = jwt.encode({"sub": f"b-{i}", "exp": exp}, SECRET, algorithm="HS256")
        headers = f'{{["Content-Type"] = "application/json", ["Authorization"] = "Bearer {token}"}}'
        body = f'{{"sku":"{SKU}","qty":1,"user":"b-{i}"}}' if mode == "trusted" else f'{{"sku":"{SKU}","qty":1}}'
        lines.append(f"CREDS[{i + 1}] = {i + 1}; HEADERS[{i + 1}] = {headers}; BODIES[{i + 1}] = '{body}'")
    tail = load.WRK_SCRIPT[load.WRK_SCRIPT.index("function response") :]
    return "\n".join(lines) + WRK_HEAD + tail


def _wrk(script: Path, port: int, connections: int, seconds: int) -> load.LoadResult:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency", "-s", str(script)]
    cmd.append(f"http://127.0.0.1:{port}/v1/purchase")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + load.GRACE_S, check=True).stdout
    return load._parse_wrk(out)  # the one wrk result format of bench/


def _cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(args: argparse.Namespace, mode: str, rnd: int, tmp: Path, script: Path) -> tuple[load.LoadResult, float]:
    """One server, warmed up and measured: the load result and its CPU µs per answered request."""
    port = free_port()
    name = f"{mode}-{rnd}"
    cmd = [flashsale_bin(), "serve", "--config", str(_config(tmp, mode, port, name)), "--port", str(port)]
    with running(cmd, port, tmp / f"{name}.log", 30.0) as proc:
        if args.warmup > 0:
            _wrk(script, port, args.connections, args.warmup)
        before = _cpu_seconds(proc.pid)
        result = _wrk(script, port, args.connections, args.duration)
        cpu = _cpu_seconds(proc.pid) - before
    return result, cpu / max(1, result.responses) * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/run.py auth", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per measured run (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each run (default 2)")
    p.add_argument("--rounds", type=int, default=3, help="alternations of the three modes (default 3)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--buyers", type=int, default=2000, help="buyers (and tokens) in the pool (default 2000)")
    p.add_argument("--cold-tokens", type=int, default=20000, help="distinct tokens in jwt_cold (default 20000)")
    args = p.parse_args(argv)
    if not load.wrk_available():
        p.error("wrk is not on PATH (apt-get install wrk)")
    results: dict[str, list[load.LoadResult]] = {m: [] for m in MODES}
    cpu_us: dict[str, list[float]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(prefix="flashsale-auth-bench-") as tmpdir:
        tmp = Path(tmpdir)
        scripts = {}
        for mode in MODES:
            scripts[mode] = tmp / f"{mode}.lua"
            scripts[mode].write_text(_script(mode, args.buyers, args.cold_tokens), encoding="utf-8")
        print(f"auth benchmark: {args.rounds} rounds x {args.duration} s, {args.connections} connections", flush=True)
        for rnd in range(1, args.rounds + 1):
            # Alternate which mode goes first: the machine's load drifts, and so would a fixed order's bias.
            for mode in MODES if rnd % 2 else MODES[::-1]:
                r, us = measure(args, mode, rnd, tmp, scripts[mode])
                bad = r.responses - r.status.get(200, 0) + r.socket_errors
                print(
                    f"  round {rnd}  {mode:<9} {r.rps:>9,.0f} req/s  p99 {r.p99_ms:6.2f} ms"
                    f"  server CPU {us:6.1f} us/request  non-200 {bad}",
                    flush=True,
                )
                results[mode].append(r)
                cpu_us[mode].append(us)
    print()
    trusted = results["trusted"]
    ok = True
    for mode in MODES:
        rps = statistics.median(r.rps for r in results[mode])
        us = statistics.median(cpu_us[mode])
        line = f"{mode:<9} median {rps:>9,.0f} req/s  server CPU {us:6.1f} us/request"
        if mode != "trusted":
            ratio = statistics.median(j.rps / t.rps for j, t in zip(results[mode], trusted, strict=True))
            cpu_ratio = statistics.median(t / j for j, t in zip(cpu_us[mode], cpu_us["trusted"], strict=True))
            line += f"  vs trusted: req/s {ratio:.3f}, CPU {cpu_ratio:.3f} (trusted/{mode})"
            if mode == "jwt":
                ok = ratio >= TARGET
                line += f"  (target >= {TARGET}: {'PASS' if ok else 'MISS'})"
        print(line)
    return 0 if ok else 1
