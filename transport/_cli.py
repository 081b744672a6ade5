"""The ``flashsale`` command.

``flashsale serve [--host H] [--port P] [--config FILE]`` runs the HTTP
server: with no config, the embedded demo sale (in-memory actors, orders in
``flashsale-demo.db`` in the current directory); with ``--config``, the sale
a TOML file describes (README, "Configuration").

The CLI lives in ``transport`` because ``serve`` needs the HTTP app and the
layers only import downwards (transport → engine → actors).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

import structlog
from aiohttp import web

from engine import Config, ConfigError, demo_config

from ._app import create_app
from ._logging import configure_logging

log = structlog.get_logger("flashsale.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flashsale", description="A flash-sale engine: actors, HTTP, no oversell.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server (the demo sale when no --config is given)")
    serve.add_argument("--host", help="address to listen on (default from config, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default from config, else 8080)")
    serve.add_argument("--config", metavar="FILE", help="a TOML sale configuration")
    return parser


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
    configure_logging(server.log_level)
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, absent on Windows
    except ImportError:
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    log.info(
        "starting",
        config=args.config or "demo",
        store=config.store.path,
        durability=config.store.durability,
        skus=[s.id for s in config.skus],
    )
    web.run_app(
        create_app(config),
        host=server.host,
        port=server.port,
        access_log=None,
        # Called once the socket is bound: the line to wait for before sending traffic.
        print=lambda _: log.info("listening", url=f"http://{server.host}:{server.port}"),
        loop=loop_factory() if loop_factory else None,
        shutdown_timeout=10.0,
    )
    log.info("stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flashsale`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    raise AssertionError(args.command)  # argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
