"""The waiting room's benchmarks: ticket polls and joins against a bare aiohttp handler, and 10,000 event streams.

Side by side in one run, alternately (bare, flashsale, bare, ...), with wrk:

- ``polls``: ``GET /v1/room/tickets/{t}?user=`` over ``--tickets`` existing
  tickets, against a bare aiohttp handler on the same path that answers a
  small orjson body. Target: flashsale ≥ 0.9 × bare.
- ``joins``: ``POST /v1/room/join`` with a new buyer per request (no proof of
  work), against a bare handler that reads and parses the body. Target ≥ 0.8 × bare.
- ``sse``: ``--listeners`` event streams on one flashsale process, opened by
  a separate listener process (bench/listeners.py), then the last unit is
  sold; the time from the purchase's answer until every stream has read
  ``closed``, and the CPU of the server and of the listener process
  meanwhile (both share the machine). Target: all within 1 s.

With ``--backend redis`` flashsale keeps the room in a spawned
``redis-server`` (no AOF; a spawned PostgreSQL for the order sink ``serve``
requires): every join is then answered after the ``JOIN`` Lua call placed it.

Run: ``python bench/room.py [--parts polls,joins,sse] [--duration 5] [--rounds 3] [--backend redis]``;
``python bench/room.py bare --port P`` runs the bare server alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import aiohttp
import orjson
import uvloop
from aiohttp import web
from listeners import Fleet
from load import GRACE_S, WRK_SCRIPT, LoadResult, _parse_wrk
from servers import cpu_seconds, flashsale_bin, free_port, running

from flashsale.testing import PostgresServer, RedisServer

_WRK_TAIL = WRK_SCRIPT[WRK_SCRIPT.index("function response") :]
POLL_SCRIPT = (
    r"""
local threads = {}
local pairs_ = {}
local i = 0
counts = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    local t, u = line:match("(%S+) (%S+)")
    table.insert(pairs_, "/v1/room/tickets/" .. t .. "?user=" .. u)
  end
  i = tid
end

function request()
  i = i % #pairs_ + 1
  return wrk.format("GET", pairs_[i])
end
"""
    + _WRK_TAIL
)
JOIN_SCRIPT = (
    r"""
local threads = {}
local counter = 0
local headers = {["Content-Type"] = "application/json"}
local head = ""
counts = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  head = '{"user":"' .. args[1] .. "-" .. tid .. "-"
end

function request()
  counter = counter + 1
  return wrk.format("POST", "/v1/room/join", headers, head .. counter .. '"}')
end
"""
    + _WRK_TAIL
)

ROOM_TOML = """
[server]
log_level = "warning"

[connections]
max_per_ip = 15000  # every event stream of the sse part comes from this one address
max_total = 15000

[[sku]]
id = "hot"
stock = {stock}

[waiting_room]
opens_at = 2026-01-01T00:00:00Z
starts_at = {starts}
admit_rate = {rate}
admit_burst = 1
heartbeat = 600
"""


# -- the bare reference ----------------------------------------------------------


async def bare_ticket(request: web.Request) -> web.Response:
    """What any poll handler does at least: read the path and the query, answer a small JSON body."""
    body = orjson.dumps({"ticket": request.match_info["ticket"], "user": request.query.get("user"), "state": "waiting"})
    return web.Response(body=body, content_type="application/json")


async def bare_join(request: web.Request) -> web.Response:
    """What any join handler does at least: read and parse the body, answer a small JSON body."""
    data = orjson.loads(await request.read())
    body = orjson.dumps({"ticket": "t", "user": data.get("user"), "state": "waiting"})
    return web.Response(body=body, status=201, content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


def serve_bare(port: int) -> None:
    app = web.Application()
    app.router.add_get("/v1/room/tickets/{ticket}", bare_ticket)
    app.router.add_post("/v1/room/join", bare_join)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=uvloop.new_event_loop())


# -- servers ---------------------------------------------------------------------

SHARED: list[str] = []
"""With ``--backend redis``: the spawned Redis's and PostgreSQL's URLs."""


@contextmanager
def flashsale(
    tmp: Path, *, stock: int = 1_000_000, starts: str = "2099-01-01T00:00:00Z", rate: float = 1.0
) -> Iterator[tuple[int, int]]:
    port = free_port()
    config = tmp / "room.toml"
    room = ROOM_TOML.format(stock=stock, starts=starts, rate=rate)
    if SHARED:  # the room in Redis, under a prefix of its own
        redis_url, pg_url = SHARED
        head = 'backend = "redis"\n'
        store = f'\n[redis]\nurl = "{redis_url}"\nprefix = "room-{port}"\n\n[postgres]\nurl = "{pg_url}"\n'
    else:
        head, store = "", f'\n[store]\npath = "{tmp / f"orders-{port}.db"}"\n'
    config.write_text(head + room + store, encoding="utf-8")
    cmd = [flashsale_bin(), "serve", "--config", str(config), "--port", str(port)]
    with running(cmd, port, tmp / f"flashsale-{port}.log", 30.0) as proc:
        yield port, proc.pid


@contextmanager
def bare(tmp: Path) -> Iterator[tuple[int, int]]:
    port = free_port()
    with running([sys.executable, __file__, "bare", "--port", str(port)], port, tmp / "bare.log", 30.0) as proc:
        yield port, proc.pid


def wrk(script: str, port: int, path: str, connections: int, seconds: int, *args: str) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as f:
        f.write(script)
        f.flush()
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency", "-s", f.name]
        cmd += [f"http://127.0.0.1:{port}{path}", "--", *args]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + GRACE_S, check=True).stdout
    return _parse_wrk(out)


async def _join_many(port: int, users: list[str], concurrency: int = 64) -> list[tuple[str, str]]:
    """Join every user; returns (ticket, user) pairs."""
    out: list[tuple[str, str]] = []
    queue = list(reversed(users))
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:

        async def worker() -> None:
            while queue:
                user = queue.pop()
                async with session.post("/v1/room/join", json={"user": user}) as resp:
                    assert resp.status in (200, 201), await resp.text()
                    out.append(((await resp.json())["ticket"], user))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


# -- the parts -------------------------------------------------------------------


def side_by_side(args: argparse.Namespace, tmp: Path, part: str) -> dict[str, list[float]]:
    """Alternate bare and flashsale; per server, req/s and server CPU µs per request of each round."""
    got: dict[str, list[float]] = {"bare": [], "flashsale": [], "bare_cpu": [], "flashsale_cpu": []}
    for rnd in range(args.rounds):
        for who in ("bare", "flashsale"):
            server = bare(tmp) if who == "bare" else flashsale(tmp)
            with server as (port, pid):
                if part == "polls":
                    pairs = asyncio.run(_join_many(port, [f"u{n}" for n in range(args.tickets)]))
                    listing = tmp / f"pairs-{port}.txt"
                    listing.write_text("".join(f"{t} {u}\n" for t, u in pairs), encoding="utf-8")
                    script, path, extra = POLL_SCRIPT, "/", str(listing)
                else:
                    script, path, extra = JOIN_SCRIPT, "/v1/room/join", f"r{rnd}"
                wrk(script, port, path, args.connections, 1, f"warm-{extra}" if part == "joins" else extra)
                cpu = cpu_seconds(pid)
                r = wrk(script, port, path, args.connections, args.duration, extra)
                cpu_us = (cpu_seconds(pid) - cpu) / max(1, r.responses) * 1e6
                good = r.count(200, 202)
                if good != r.responses or r.socket_errors:
                    raise SystemExit(f"{who} {part}: {r.responses - good} non-2xx answers, {r.socket_errors} errors")
                got[who].append(r.rps)
                got[f"{who}_cpu"].append(cpu_us)
                print(
                    f"  {part:5} round {rnd + 1} {who:9} {r.rps:9,.0f} req/s  {cpu_us:6.1f} µs CPU/request"
                    f"  p50 {r.p50_ms:.2f} ms  p99 {r.p99_ms:.2f} ms",
                    flush=True,
                )
    return got


async def _first_buyer(port: int, listeners: int) -> tuple[list[tuple[str, str]], str]:
    """Every buyer joined (the first admitted): the waiting tickets and the first buyer's admission pass."""
    pairs = await _join_many(port, ["first"] + [f"w{n}" for n in range(listeners)])
    async with (
        aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session,
        session.get(f"/v1/room/tickets/{pairs[0][0]}", params={"user": "first"}) as resp,
    ):
        admission = (await resp.json())["pass"]
    assert admission, "the first buyer was not admitted"
    return pairs[1:], admission


def _buy_last_unit(port: int, admission: str) -> None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/purchase",
        data=b'{"sku": "hot", "user": "first"}',
        headers={"Content-Type": "application/json", "Admission-Pass": admission},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200, resp.read()


def _sse(port: int, pid: int, listeners: int) -> dict[str, float]:
    """10,000 streams (in bench/listeners.py's process) told of the closing: seconds from the purchase's answer."""
    waiting, admission = asyncio.run(_first_buyer(port, listeners))
    with Fleet() as fleet:
        fleet.ask(
            cmd="open", port=port, paths=[f"/v1/room/tickets/{t}/events?user={u}" for t, u in waiting], ready="data: "
        )
        fleet.ask(cmd="arm", marker='"state":"closed"')
        server_cpu, client_cpu = cpu_seconds(pid), fleet.ask(cmd="cpu")["cpu"]
        _buy_last_unit(port, admission)
        sold = time.monotonic()
        got = fleet.ask(cmd="collect", t0=sold, wait=60.0)
        server_cpu, client_cpu = cpu_seconds(pid) - server_cpu, fleet.ask(cmd="cpu")["cpu"] - client_cpu
    lat = sorted(got["delays"])
    return {
        "listeners": len(waiting),
        "told": len(lat),
        "p50_s": lat[len(lat) // 2],
        "max_s": lat[-1],
        "server_cpu_s": server_cpu,
        "client_cpu_s": client_cpu,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", nargs="?", default="run", choices=("run", "bare"))
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--parts", default="polls,joins,sse")
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--tickets", type=int, default=1000)
    p.add_argument("--listeners", type=int, default=10_000)
    p.add_argument("--backend", choices=("memory", "redis"), default="memory")
    args = p.parse_args()
    if args.mode == "bare":
        serve_bare(args.port)
        return
    parts = args.parts.split(",")
    with tempfile.TemporaryDirectory(prefix="flashsale-room-bench-") as t, ExitStack() as stack:
        tmp = Path(t)
        if args.backend == "redis":
            redis_url = stack.enter_context(RedisServer(appendfsync=None)).url
            pg_url = stack.enter_context(PostgresServer()).create_database("flashsale")
            SHARED[:] = [redis_url, pg_url]
            print(f"flashsale's room in Redis ({redis_url})", flush=True)
        for part, target in (("polls", 0.9), ("joins", 0.8)):
            if part not in parts:
                continue
            got = side_by_side(args, tmp, part)
            ratios = [x / y for x, y in zip(got["flashsale"], got["bare"], strict=True)]
            cpu = [y / x for x, y in zip(got["flashsale_cpu"], got["bare_cpu"], strict=True)]
            ratio = statistics.median(ratios)
            verdict = "meets" if ratio >= target else "MISSES"
            print(
                f"{part}: bare {statistics.median(got['bare']):,.0f} req/s, flashsale"
                f" {statistics.median(got['flashsale']):,.0f} req/s; paired ratios"
                f" {', '.join(f'{r:.2f}' for r in ratios)}; median {ratio:.2f} ({verdict} >= {target});"
                f" bare CPU per request / flashsale's, per round: {', '.join(f'{r:.2f}' for r in cpu)}",
                flush=True,
            )
        if "sse" in parts:
            with flashsale(tmp, stock=1, starts="2026-01-01T00:00:00Z", rate=0.001) as (port, pid):
                r = _sse(port, pid, args.listeners)
            verdict = "meets" if r["told"] == r["listeners"] and r["max_s"] < 1.0 else "MISSES"
            print(
                f"sse: {r['told']:,.0f} of {r['listeners']:,.0f} streams read closed; after the sale's last unit:"
                f" p50 {r['p50_s']:.3f} s, last {r['max_s']:.3f} s ({verdict} all within 1 s);"
                f" CPU meanwhile: server {r['server_cpu_s']:.2f} s, the listener process {r['client_cpu_s']:.2f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
