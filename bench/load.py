"""Load generators for the HTTP benchmark: wrk when installed, else aiohttp.

Both send ``POST /v1/purchase`` with ``{"sku", "user", "qty": 1}`` bodies,
each request from a new user (a counter), over a fixed number of keep-alive
connections for a fixed duration, to 127.0.0.1 only, and return a
:class:`LoadResult`: responses per status, socket errors, p50/p99 latency.

- :func:`run_wrk` drives ``wrk`` with a Lua script (counter per wrk thread,
  status counts in ``response()``, one JSON line printed by ``done()``).
- :func:`run_builtin` runs this file as a separate process: an aiohttp
  ``ClientSession`` on uvloop whose ``TCPConnector`` limit is the connection
  count, one worker task per connection, latencies measured per request.

Run alone: ``python bench/load.py --port 8081 --sku hot --duration 5``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp
import orjson
import uvloop

PATH = "/v1/purchase"
MAX_REQUESTS = 3_000_000  # per run, over all connections: bounds memory and time
GRACE_S = 30.0  # how much longer than its duration a load run may take before it is killed

WRK_SCRIPT = r"""
-- wrk script for the flashsale HTTP benchmark. args: sku, user prefix.
local threads = {}
local counter = 0
local headers = {["Content-Type"] = "application/json"}
local body_head, user_head = "", ""
counts = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  body_head = '{"sku":"' .. args[1] .. '","qty":1,"user":"'
  user_head = args[2] .. "-" .. tid .. "-"
end

function request()
  counter = counter + 1
  return wrk.format("POST", "/v1/purchase", headers, body_head .. user_head .. counter .. '"}')
end

function response(status, hdrs, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("counts")) do
      merged[status] = (merged[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(merged) do
    table.insert(parts, string.format('"%d":%d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"duration_us":%d,"requests":%d,"p50_us":%d,"p99_us":%d,' ..
    '"socket_errors":%d,"status":{%s}}\n',
    summary.duration, summary.requests, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, table.concat(parts, ",")))
end
"""


@dataclass
class LoadResult:
    """What one load run measured."""

    tool: str
    seconds: float
    responses: int
    p50_ms: float
    p99_ms: float
    status: dict[int, int] = field(default_factory=dict)
    socket_errors: int = 0

    @property
    def rps(self) -> float:
        return self.responses / self.seconds if self.seconds > 0 else 0.0

    def count(self, low: int, high: int) -> int:
        """Responses whose status is in ``[low, high)``."""
        return sum(n for code, n in self.status.items() if low <= code < high)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "rps": self.rps}


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


# -- wrk ------------------------------------------------------------------------


def run_wrk(port: int, sku: str, prefix: str, connections: int, seconds: int, *, threads: int = 1) -> LoadResult:
    """One wrk run against 127.0.0.1:``port``; its numbers as a :class:`LoadResult`."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="flashsale-bench-") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        cmd = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            script.name,
            f"http://127.0.0.1:{port}{PATH}",
            "--",
            sku,
            prefix,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + GRACE_S, check=True).stdout
    return _parse_wrk(out)


def _parse_wrk(out: str) -> LoadResult:
    line = next((x for x in out.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result line:\n{out}")
    data = json.loads(line.removeprefix("WRKJSON "))
    return LoadResult(
        tool="wrk",
        seconds=data["duration_us"] / 1e6,
        responses=data["requests"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        status={int(k): v for k, v in data["status"].items()},
        socket_errors=data["socket_errors"],
    )


# -- built-in generator (runs in its own process) -------------------------------


def run_builtin(port: int, sku: str, prefix: str, connections: int, seconds: int) -> LoadResult:
    """Run this module as a separate process and read its JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve())]
    cmd += ["--port", str(port), "--sku", sku, "--prefix", prefix]
    cmd += ["--connections", str(connections), "--duration", str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + GRACE_S, check=True).stdout
    data = json.loads(out)
    data["status"] = {int(k): v for k, v in data["status"].items()}
    data.pop("rps", None)
    return LoadResult(**data)


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    status: Counter[int] = field(default_factory=Counter)
    socket_errors: int = 0


async def _worker(
    session: aiohttp.ClientSession, url: str, body_head: bytes, *, deadline: float, budget: int, tally: _Tally
) -> None:
    headers = {"Content-Type": "application/json"}
    clock = time.perf_counter
    for n in range(budget):
        if clock() >= deadline:
            return
        body = body_head + str(n).encode() + b'"}'
        start = clock()
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError):
            tally.socket_errors += 1
            continue
        tally.latencies.append(clock() - start)
        tally.status[status] += 1


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def _generate(port: int, sku: str, prefix: str, connections: int, seconds: float) -> LoadResult:
    url = f"http://127.0.0.1:{port}{PATH}"
    tally = _Tally()
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=5.0)
    budget = MAX_REQUESTS // connections
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        deadline = start + seconds
        common = orjson.dumps({"sku": sku, "qty": 1})[:-1]  # '{"sku":...,"qty":1' then the user per request
        heads = [common + f',"user":"{prefix}-{w}-'.encode() for w in range(connections)]
        workers = (_worker(session, url, head, deadline=deadline, budget=budget, tally=tally) for head in heads)
        await asyncio.gather(*workers)
        elapsed = time.perf_counter() - start
    lat = sorted(tally.latencies)
    return LoadResult(
        tool="aiohttp",
        seconds=elapsed,
        responses=len(lat),
        p50_ms=_percentile(lat, 0.50) * 1000,
        p99_ms=_percentile(lat, 0.99) * 1000,
        status=dict(tally.status),
        socket_errors=tally.socket_errors,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Built-in load generator: POST /v1/purchase on 127.0.0.1.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sku", default="hot")
    parser.add_argument("--prefix", default="u", help="user id prefix (users are <prefix>-<connection>-<n>)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(_generate(args.port, args.sku, args.prefix, args.connections, args.duration))
    print(json.dumps(result.as_dict()))


if __name__ == "__main__":
    main()
