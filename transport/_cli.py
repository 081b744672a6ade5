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

``flashsale replay FILE [--check] [--json] [--against URL] [--backend redis
--redis-url URL]`` runs a scenario file (docs/scenarios.md) on virtual time
(on the memory backend, or on a Redis) and prints its summary and digest,
or sends its traffic to a running server and checks the invariants that hold
whatever the timing.

The CLI lives in ``transport`` because ``serve`` needs the HTTP app and the
layers only import downwards (transport → engine → actors).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import gc
import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import orjson
import structlog
from aiohttp import web

from flashsale import (
    Clock,
    Config,
    ConfigError,
    SaleEngine,
    ScenarioError,
    ScenarioRecorder,
    Unavailable,
    demo_config,
    load_scenario,
    replay,
    wall_clock,
)

from . import _pg_setup, load
from ._against import run_against
from ._app import create_app
from ._auth import Identity
from ._logging import configure_logging
from ._metrics_share import ENV as METRICS_DIR_ENV
from ._preflight import CannotStart, check_backends, listen_socket, lock_database
from ._serve_scenario import scaled_clock, scenario_config
from ._server import serve

log = structlog.get_logger("flashsale.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flashsale", description="A flash-sale engine: actors, HTTP, no oversell.")
    parser.add_argument("--version", action="version", version=f"flashsale {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server (the demo sale when no --config is given)")
    serve.add_argument("--host", help="address to listen on (default from config, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default from config, else 8080)")
    source = serve.add_mutually_exclusive_group()
    source.add_argument("--config", metavar="FILE", help="a TOML sale configuration")
    source.add_argument(
        "--scenario",
        metavar="FILE",
        help="serve the configuration inside a scenario file (its sale windows moved to start now)",
    )
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
        "--backend",
        choices=("memory", "redis"),
        default="memory",
        help="decide on this backend (default memory); redis needs a Redis server, no PostgreSQL",
    )
    rep.add_argument(
        "--redis-url", metavar="URL", help="with --backend redis: the Redis to use (default: the config's)"
    )
    rep.add_argument(
        "--concurrency", type=int, default=64, help="with --against: requests in flight at most (default 64)"
    )
    rep.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="with --against: send the traffic N times faster (for a server run with serve --scenario --speed N)",
    )
    serve.add_argument(
        "--workers", type=int, default=1, metavar="N", help='processes sharing the port (N > 1 needs backend = "redis")'
    )
    serve.add_argument("--reuse-port", action="store_true", help="bind with SO_REUSEPORT (what each worker does)")
    serve.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="N",
        help="with --scenario: run the sale's clock N times faster (rehearsals; pair with replay --against --speed N)",
    )
    load.add_parser(sub)  # flashsale load URL: transport/load/
    _pg_setup.add_parser(sub)
    return parser


def _version() -> str:
    try:
        return importlib.metadata.version("flashsale")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, absent on Windows
    except ImportError:
        return None
    return uvloop.new_event_loop


def _serve(args: argparse.Namespace) -> int:
    config = _serve_config(args)
    if config is None:
        return 2
    server = dataclasses.replace(
        config.server,
        host=args.host if args.host is not None else config.server.host,
        port=args.port if args.port is not None else config.server.port,
    )
    config = dataclasses.replace(config, server=server)
    if args.workers != 1:
        refused = _refuse_workers(args.workers, config, args.record) or (
            "--workers needs --config (each worker reads the same file)" if args.scenario else ""
        )
        if refused:
            print(f"flashsale: {refused}", file=sys.stderr)
            return 2
    unwritable = _unwritable(args.record) if args.record else ""
    if unwritable:
        print(f"flashsale: {args.record}: cannot write: {unwritable}", file=sys.stderr)
        return 2
    configure_logging(server.log_level)
    try:
        # Before anything is opened or written: the port, then the database (or the backends).
        sock = listen_socket(server.host, server.port, reuse_port=args.reuse_port or args.workers > 1)
        if args.workers > 1:
            sock.close()  # the workers bind their own; this only proved the port can be shared
        elif config.backend == "memory":
            _STORE_LOCK.append(lock_database(config.store.path))  # held until the process exits
        check_backends(config)
    except CannotStart as exc:
        log.error("cannot start", reason=str(exc))
        return 1
    if args.workers > 1:
        return _run_workers(args, server.host, server.port)
    recorder = None
    if args.record:
        try:
            recorder = ScenarioRecorder(args.record, config, wall_clock(), max_events=max(1, args.record_max))
        except OSError as exc:
            print(f"flashsale: {args.record}: cannot write: {exc.strerror}", file=sys.stderr)
            return 2
    where = {"store": config.store.path, "durability": config.store.durability}
    if config.backend == "redis":
        where = {"redis_prefix": config.redis.prefix}  # URLs may carry passwords: not logged
    log.info(
        "starting",
        config=args.config or args.scenario or "demo",
        skus=[s.id for s in config.skus],
        backend=config.backend,
        record=args.record,
        **where,
    )
    try:
        _run_app(config, sock, recorder)
    except Unavailable as exc:  # the store or the ledger could not be opened
        log.error("cannot start", reason=str(exc))
        return 1
    finally:
        if recorder is not None:
            recorder.close()  # after the engine stopped: every answered purchase is in the file
            log.info("recorded", file=args.record, events=recorder.events)
    log.info("stopped")
    return 0


def _unwritable(path: str) -> str:
    """Why a file could not be written at ``path`` ("" when it could), without creating or truncating it."""
    p = Path(path)
    if p.is_dir():
        return os.strerror(errno.EISDIR)
    if not p.parent.is_dir():
        return os.strerror(errno.ENOENT)
    if not os.access(p if p.exists() else p.parent, os.W_OK):
        return os.strerror(errno.EACCES)
    return ""


_CLOCK: dict[str, Clock] = {}
"""The sale's clock when ``--speed`` moves it (set once by :func:`_serve_config`); the wall clock otherwise."""

_STORE_LOCK: list[int] = []
"""The descriptor that holds the order database's lock (:func:`lock_database`) while the server runs."""


def _serve_config(args: argparse.Namespace) -> Config | None:
    """The sale ``serve`` runs: ``--config``, ``--scenario`` or the demo; ``None`` after printing why not."""
    if args.speed != 1.0 and not (args.scenario and args.speed > 0):
        print(f"flashsale: --speed needs --scenario and a value > 0, got {args.speed}", file=sys.stderr)
        return None
    try:
        if args.scenario:
            config = scenario_config(args.scenario, _CLOCK.setdefault("clock", scaled_clock(args.speed)), args.speed)
        else:
            config = Config.load(args.config) if args.config else demo_config()
        Identity(config.auth, config.server.trusted_proxies)  # reads [auth]'s key files: an unusable one stops here
        return config
    except (ConfigError, ScenarioError) as exc:
        print(f"flashsale: {exc}", file=sys.stderr)
        return None


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


def _run_app(config: Config, sock: socket.socket, recorder: ScenarioRecorder | None) -> None:
    loop_factory = _loop_factory()
    gc.set_threshold(*GC_THRESHOLDS)
    app = create_app(config, engine=SaleEngine(config, recorder=recorder, clock=_CLOCK.get("clock")))
    app.cleanup_ctx.append(_freeze_startup_heap)  # after the engine's own: it runs once the sale has started
    host = config.server.host
    # Timeouts, connection caps and JSON parser errors: transport/_server.py.
    listening = serve(
        app,
        config,
        host=host,
        port=config.server.port,
        sock=sock,
        # Called once the socket listens: the line to wait for before sending traffic.
        listening=lambda port: log.info("listening", url=f"http://{host}:{port}"),
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
    if config.waiting_room is not None and config.waiting_room.secret_file is None and n > 1:
        return (
            f"--workers {n} with a [waiting_room] needs waiting_room.secret_file: every worker signs and checks"
            " admission passes with that key (without it each would draw a random key of its own)"
        )
    return ""


def _run_workers(args: argparse.Namespace, host: str, port: int) -> int:
    """Start ``args.workers`` servers on one port; forward SIGTERM/SIGINT; return when all have exited."""
    argv = [sys.executable, "-m", "flashsale.transport", "serve", "--host", host, "--port", str(port), "--reuse-port"]
    argv += ["--config", args.config]
    # /metrics of any worker answers for all of them: they share their samples in this directory.
    shared = tempfile.TemporaryDirectory(prefix="flashsale-metrics-")
    env = {**os.environ, METRICS_DIR_ENV: shared.name}
    # Own sessions: a Ctrl-C reaches the parent only, which passes it on once.
    procs = [subprocess.Popen(argv, start_new_session=True, env=env) for _ in range(args.workers)]
    log.info("workers started", pids=[p.pid for p in procs], url=f"http://{host}:{port}")

    def forward(signum: int, _: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [p.wait() for p in procs]
    shared.cleanup()
    log.info("workers stopped", exit_codes=codes)
    return 0 if all(c == 0 for c in codes) else 1


def _replay(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.file)
    except ScenarioError as exc:
        print(f"flashsale: {exc}", file=sys.stderr)
        return 2
    if args.against:
        if not args.speed > 0:
            print(f"flashsale: --speed must be > 0, got {args.speed}", file=sys.stderr)
            return 2
        report = asyncio.run(
            run_against(scenario, args.against, concurrency=max(1, args.concurrency), speed=args.speed)
        )
        print(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode() if args.json else report.summary())
        return 2 if report.mismatch else 1 if report.violations else 0
    loop_factory = _loop_factory()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        try:
            result = runner.run(replay(scenario, backend=args.backend, redis_url=args.redis_url))
        except (ConfigError, Unavailable) as exc:  # no redis extra, or Redis not reachable
            print(f"flashsale: {exc}", file=sys.stderr)
            return 2
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
    if args.command == "postgres-setup":
        return _pg_setup.run(args)
    raise AssertionError(args.command)  # argparse rejects unknown commands
