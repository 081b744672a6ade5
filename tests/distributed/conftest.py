"""Fixtures for the distributed tests: real servers spawned from the machine's binaries.

:class:`RedisServer` runs ``redis-server`` on a free loopback port with a
temporary directory and the AOF on (``appendfsync always``, what a sale
wants), and can be stopped, killed and started again on the same port and
data. ``redis_config`` gives each test its own key prefix on the session's
server, so tests never see each other's keys. :class:`Workers` runs
``flashsale serve`` processes on a TOML config and waits for each one's
"listening" log line.

A missing binary fails the test with a message; nothing is skipped.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import redis

from flashsale import RedisConfig
from tests.distributed.pg import PostgresServer, free_port, pg_server, pg_url  # noqa: F401 - fixtures

START_TIMEOUT = 20.0
FLASHSALE = str(Path(sys.executable).with_name("flashsale"))


def wait_until(check: Any, timeout: float, what: str) -> None:
    """Poll ``check()`` (against an external process) until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)  # sleep-ok: the poll interval of a deadline-bounded wait on an external process


class RedisServer:
    """One ``redis-server`` in a temporary directory on ``127.0.0.1:port``, AOF on."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("'redis-server' is not on PATH: install redis-server (the distributed tests need it)")
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="flashsale-redis-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2.0, decode_responses=True)

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        argv += ["--appendonly", "yes", "--appendfsync", "always", "--save", "", "--logfile", "redis.log"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers, START_TIMEOUT, f"redis-server on port {self.port}")

    def stop(self) -> None:
        """Stop the server the way an operator would (SIGTERM: the AOF is flushed)."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=START_TIMEOUT)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: what a crash does (with ``appendfsync always`` every write is already on disk)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=START_TIMEOUT)
            self.proc = None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A Redis server shared by the session's tests (each test keeps to its own prefix)."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


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
