"""Load for the HTTP benchmark: wrk when installed (the reference), else ``flashsale load``.

Both send ``POST /v1/purchase`` with ``{"sku", "user", "qty": 1}`` bodies,
each request from a new user, to 127.0.0.1 only, and return a
:class:`LoadResult`: responses per status, socket errors, p50/p99 latency.

- :func:`run_wrk` drives ``wrk`` with a Lua script (counter per wrk thread,
  status counts in ``response()``, one JSON line printed by ``done()``):
  closed loop over a fixed number of keep-alive connections.
- :func:`run_builtin` runs ``flashsale load`` (the product's own buyer
  simulator, open loop at a fixed rate) in its own process and reads its
  ``--json`` figures.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PATH = "/v1/purchase"
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


# -- flashsale load (open loop, its own process) --------------------------------

BUILTIN_RATE = 5000.0  # arrivals per second asked of `flashsale load` when wrk is missing


def run_builtin(
    port: int, sku: str, prefix: str, connections: int, seconds: int, *, rate: float = BUILTIN_RATE, procs: int = 1
) -> LoadResult:
    """``flashsale load`` against 127.0.0.1:``port``: ``rate`` new buyers a second for ``seconds``, open loop.

    Unlike wrk (closed loop: each connection sends its next request when the
    last is answered) the schedule does not wait for answers, so its p50/p99
    are from the scheduled send time: a server slower than ``rate`` shows as
    latency. The run's verdict is not this benchmark's business (the bare
    server has no SKU or order routes): the figures come from ``--json``.
    """
    return parse_load_json(run_flashsale_load(port, sku, prefix, connections, seconds, rate=rate, procs=procs))


def run_flashsale_load(
    port: int,
    sku: str,
    prefix: str,
    connections: int,
    seconds: float,
    *,
    rate: float,
    procs: int = 1,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """One ``flashsale load`` run against 127.0.0.1:``port``; its ``--json`` figures."""
    with tempfile.TemporaryDirectory(prefix="flashsale-bench-load-") as tmp:
        out = Path(tmp) / "load.json"
        cmd = [str(Path(sys.executable).parent / "flashsale"), "load", f"http://127.0.0.1:{port}", "--no-live"]
        cmd += ["--sku", sku, "--rate", str(rate), "--duration", str(seconds), "--user-prefix", f"{prefix}-"]
        cmd += ["--connections", str(connections), "--procs", str(procs), "--retries", "0"]
        cmd += ["--feed", "off", "--room", "off", "--audit-orders", "1000", "--timeout", str(timeout)]
        cmd += ["--json", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + GRACE_S + 60, check=False)
        if done.returncode not in (0, 99) or not out.exists():  # 99: a breached verdict, still a measured run
            raise RuntimeError(f"flashsale load exited {done.returncode}:\n{done.stderr[-2000:]}")
        data: dict[str, Any] = json.loads(out.read_text())
        return data


def parse_load_json(data: dict[str, Any]) -> LoadResult:
    """A ``flashsale load --json`` file as a :class:`LoadResult` (the purchase phase)."""
    phase = data["phases"]["purchase"]
    status: Counter[int] = Counter()
    lost = 0
    for key, n in phase["status"].items():
        if key == "lost":
            lost += n
        else:
            status[int(key.split()[0])] += n
    return LoadResult(
        tool="flashsale load",
        seconds=float(data["seconds"]),
        responses=int(phase["count"]) - lost,
        p50_ms=float(phase["p50_ms"]),
        p99_ms=float(phase["p99_ms"]),
        status=dict(status),
        socket_errors=lost,
    )
