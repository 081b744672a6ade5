"""Fixtures for the distributed tests: real servers spawned from the machine's binaries.

The servers come from :mod:`flashsale.testing` (the launcher the benchmarks
use too): ``redis-server`` on a free loopback port with a temporary directory
and the AOF on (``appendfsync always``, what a sale wants), which can be
stopped, killed and started again on the same port and data.
``redis_config`` gives each test its own key prefix on the session's server,
so tests never see each other's keys. :class:`Workers` runs
``flashsale serve`` processes on a TOML config and waits for each one's
"listening" log line.

A missing binary fails the test with a message; nothing is skipped.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import redis

from flashsale import RedisConfig
from flashsale.testing import RedisServer, wait_until
from tests.distributed.pg import PostgresServer, free_port, pg_server, pg_url  # noqa: F401 - fixtures

START_TIMEOUT = 60.0  # a bound, not a wait: several workers starting on a busy 2-core machine
FLASHSALE = str(Path(sys.executable).with_name("flashsale"))


def client(server: RedisServer) -> redis.Redis:
    """A redis-py client on ``server`` that decodes answers to str."""
    return redis.Redis(port=server.port, socket_timeout=2.0, decode_responses=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A Redis server shared by the session's tests (each test keeps to its own prefix)."""
    with RedisServer() as server:
        yield server


_prefixes = itertools.count(1)


@pytest.fixture
def redis_config(redis_server: RedisServer) -> RedisConfig:
    """A RedisConfig on the session's server with a prefix no other test uses; a short breaker reset."""
    if redis_server.proc is None:  # a test stopped it and failed before starting it again
        redis_server.start()
    return RedisConfig(url=redis_server.url, prefix=f"t{os.getpid()}-{next(_prefixes)}", breaker_reset=0.2)


class Workers:
    """``flashsale serve`` processes on one config; each started process is stopped at teardown."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[IO[bytes]] = []

    def start(self, config: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
        """Start ``flashsale serve --config CONFIG --port PORT EXTRA...``; return once every worker listens."""
        log_path = self.tmp / f"serve-{len(self.procs)}.log"
        log = log_path.open("wb")
        self.logs.append(log)
        proc = subprocess.Popen(
            [FLASHSALE, "serve", "--config", str(config), "--port", str(port), *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        workers = int(extra[extra.index("--workers") + 1]) if "--workers" in extra else 1

        def listening() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"flashsale serve exited {proc.returncode}: {log_path.read_text()}")
            return log_path.read_text().count('"listening"') >= workers

        wait_until(listening, START_TIMEOUT, f"{workers} flashsale worker(s) listening on {port}")
        return proc

    def events(self, proc: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
        """The JSON log lines of a process started here."""
        path = self.tmp / f"serve-{self.procs.index(proc)}.log"
        return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self.logs:
            log.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    """Start ``flashsale serve`` processes; all are stopped (SIGTERM, then SIGKILL) at teardown."""
    w = Workers(tmp_path)
    yield w
    w.stop_all()
