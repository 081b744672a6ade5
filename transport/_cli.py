"""The ``flashsale`` command.

``flashsale serve [--host H] [--port P] [--config FILE] [--record FILE] [--workers N]``
runs the HTTP server: with no config, the embedded demo sale (in-memory
actors, orders in ``flashsale-demo.db`` in the current directory); with
``--config``, the sale a TOML file describes (README, "Configuration");
with ``--record``, the purchase traffic is written as a replayable scenario.

``--workers N`` (N > 1) runs N server processes on one port (``SO_REUSEPORT``:
the kernel spreads connections over them). Only ``backend = "redis"`` allows
it: with ``memory`` each process would sell the whole stock. The parent only
starts the workers, forwards SIGTERM and SIGINT to them, and exits when they
all have; it does not restart a worker that dies (the others' order sinks
take over its unacknowledged stream entries).

``flashsale load URL [...]`` rehearses a sale against a running server
(``flashsale.transport.load``).

``flashsale replay FILE [--check] [--json] [--against URL]`` runs a scenario
file (docs/scenarios.md) on virtual time and prints its summary and digest,
or sends its traffic to a running server and checks the invariants that hold
whatever the timing.

The CLI lives in ``transport`` because ``serve`` needs the HTTP app and the
layers only import downwards (transport → engine → actors).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import orjson
import structlog
from aiohttp import web

from flashsale import (
    Config,
    ConfigError,
    SaleEngine,
    ScenarioError,
    ScenarioRecorder,
    ServerConfig,
    Unavailable,
    demo_config,
    load_scenario,
    replay,
    wall_clock,
)

from . import load
from ._against import run_against
from ._app import create_app
from ._logging import configure_logging
from ._server import serve

log = structlog.get_logger("flashsale.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flashsale", description="A flash-sale engine: actors, HTTP, no oversell.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server (the demo sale when no --config is given)")
    serve.add_argument("--host", help="address to listen on (default from config, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default from config, else 8080)")
    serve.add_argument("--config", metavar="FILE", help="a TOML sale configuration")
    serve.add_argument("--record", metavar="FILE", help="write the purchase traffic to FILE as a JSON Lines scenario")
    serve.add_argument(
        "--record-max",
        metavar="N",
        type=int,
        default=ScenarioRecorder.MAX_EVENTS,
        help=f"stop recording after N events (default {ScenarioRecorder.MAX_EVENTS:,}); the server keeps serving",
    )
    rep = sub.add_parser("replay", help="replay a scenario file on virtual time, or against a running server")
    rep.add_argument("file", metavar="FILE", help="a scenario (.json, or .jsonl as recorded)")
    rep.add_argument("--check", action="store_true", help="exit 1, naming what failed, unless every expectation holds")
    rep.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    rep.add_argument("--against", metavar="URL", help="send the traffic to the server at URL in real time instead")
    rep.add_argument(
        "--concurrency", type=int, default=64, help="with --against: requests in flight at most (default 64)"
    )
    serve.add_argument(
        "--workers", type=int, default=1, metavar="N", help='processes sharing the port (N > 1 needs backend = "redis")'
    )
    serve.add_argument("--reuse-port", action="store_true", help="bind with SO_REUSEPORT (what each worker does)")
    load.add_parser(sub)  # flashsale load URL: transport/load/
    return parser


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, absent on Windows
    except ImportError:
        return None
    return uvloop.new_event_loop


def _serve(args: argparse.Namespace) -> int:
    try:
        config = Config.load(args.config) if args.config else demo_config()
    except ConfigError as exc:
        print(f"flashsale: {exc}", file=sys.stderr)
        return 2
    server = dataclasses.replace(
        config.server,
        host=args.host if args.host is not None else config.server.host,
        port=args.port if args.port is not None else config.server.port,
    )
    config = dataclasses.replace(config, server=server)
    if args.workers != 1:
        refused = _refuse_workers(args.workers, config, args.record)
        if refused:
            print(f"flashsale: {refused}", file=sys.stderr)
            return 2
    recorder = None
    if args.record:
        try:
            recorder = ScenarioRecorder(args.record, config, wall_clock(), max_events=max(1, args.record_max))
        except OSError as exc:
            print(f"flashsale: {args.record}: cannot write: {exc.strerror}", file=sys.stderr)
            return 2
    configure_logging(server.log_level)
    if args.workers > 1:
        return _run_workers(args, server.host, server.port)
    where = {"store": config.store.path, "durability": config.store.durability}
    if config.backend == "redis":
        where = {"redis_prefix": config.redis.prefix}  # URLs may carry passwords: not logged
    log.info(
        "starting",
        config=args.config or "demo",
        skus=[s.id for s in config.skus],
        backend=config.backend,
        record=args.record,
        **where,
    )
    try:
        _run_app(config, server, args.reuse_port, recorder)
    except Unavailable as exc:  # the store or the ledger could not be opened
        log.error("cannot start", reason=str(exc))
        return 1
    finally:
        if recorder is not None:
            recorder.close()  # after the engine stopped: every answered purchase is in the file
            log.info("recorded", file=args.record, events=recorder.events)
    log.info("stopped")
    return 0


GC_THRESHOLDS = (50_000, 20, 100)
"""The server's collector thresholds (CPython's defaults are 700, 10, 10).

A sale keeps a record per buyer (rate-limit buckets, per-user holds,
idempotency answers): hundreds of thousands of long-lived objects. With the
default thresholds a full collection walks all of them every few seconds of
peak traffic, and each one stops every thread for tens of milliseconds:
with every rate-limit scope on, that was the p99 (65-110 ms at 64
connections; 13 ms with these thresholds). Cycles are rare in flashsale's
own objects, so collecting less often costs little memory.
"""


async def _freeze_startup_heap(app: web.Application) -> AsyncIterator[None]:
    """Once the engine has started: move what it recovered out of the collector's way (``gc.freeze``)."""
    gc.collect()
    gc.freeze()
    yield


def _run_app(config: Config, server: ServerConfig, reuse_port: bool, recorder: ScenarioRecorder | None) -> None:
    loop_factory = _loop_factory()
    gc.set_threshold(*GC_THRESHOLDS)
    app = create_app(config, engine=SaleEngine(config, recorder=recorder))
    app.cleanup_ctx.append(_freeze_startup_heap)  # after the engine's own: it runs once the sale has started
    # Timeouts, connection caps and JSON parser errors: transport/_server.py.
    listening = serve(
        app,
        config,
        host=server.host,
        port=server.port,
        reuse_port=reuse_port,
        # Called once the socket is bound: the line to wait for before sending traffic.
        listening=lambda port: log.info("listening", url=f"http://{server.host}:{port}"),
    )
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(listening)


def _refuse_workers(n: int, config: Config, record: str | None) -> str:
    """Why ``--workers n`` cannot run ``config`` ("" when it can)."""
    if n < 1:
        return f"--workers must be >= 1, got {n}"
    if config.backend != "redis":
        return (
            f'--workers {n} needs backend = "redis" in the config: with backend = "memory" each process'
            " would sell the whole stock on its own"
        )
    if config.server.port == 0:
        return f"--workers {n} needs a fixed port (with port 0 each worker would get its own)"
    if record:
        return "--record needs one process (--workers 1): each worker sees only its share of the traffic"
    if config.waiting_room is not None and n > 1:
        return (
            f"--workers {n} with a [waiting_room]: the room (its queue, draw and pacing) is kept in one process"
            " for now, so several workers would each run a room of their own; run one worker"
        )
    return ""


def _run_workers(args: argparse.Namespace, host: str, port: int) -> int:
    """Start ``args.workers`` servers on one port; forward SIGTERM/SIGINT; return when all have exited."""
    argv = [sys.executable, "-m", "flashsale.transport", "serve", "--host", host, "--port", str(port), "--reuse-port"]
    argv += ["--config", args.config]
    # Own sessions: a Ctrl-C reaches the parent only, which passes it on once.
    procs = [subprocess.Popen(argv, start_new_session=True) for _ in range(args.workers)]
    log.info("workers started", pids=[p.pid for p in procs], url=f"http://{host}:{port}")

    def forward(signum: int, _: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [p.wait() for p in procs]
    log.info("workers stopped", exit_codes=codes)
    return 0 if all(c == 0 for c in codes) else 1


def _replay(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.file)
    except ScenarioError as exc:
        print(f"flashsale: {exc}", file=sys.stderr)
        return 2
    if args.against:
        report = asyncio.run(run_against(scenario, args.against, concurrency=max(1, args.concurrency)))
        print(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode() if args.json else report.summary())
        return 1 if report.violations else 0
    loop_factory = _loop_factory()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(replay(scenario))
    failures = result.failures(scenario) if args.check else []
    if args.json:
        out = result.as_dict()
        if args.check:
            out["check"] = {"ok": not failures, "failures": failures}
        print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
    else:
        print(result.summary())
        if args.check:
            print(f"check      {'ok' if not failures else 'FAILED'} ({Path(args.file).name})")
            for failure in failures:
                print(f"  failed   {failure}")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flashsale`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "replay":
        return _replay(args)
    if args.command == "load":
        return load.run(args)
    raise AssertionError(args.command)  # argparse rejects unknown commands
