"""A real ``flashsale serve`` process for the recording and --against tests.

The server is ready when it logs ``{"event": "listening"}``; it is stopped
with SIGTERM (and must exit 0), or killed at teardown if a test failed
first. Every wait has a timeout; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.serverlog import read_lines

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 15.0


@dataclass
class Server:
    """One ``flashsale serve`` process; ``log`` collects its JSON log lines."""

    proc: asyncio.subprocess.Process
    url: str
    log: list[Any] = field(default_factory=list)
    drain: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        """SIGTERM: the server answers what is in flight, flushes and exits 0."""
        self.proc.terminate()
        assert await asyncio.wait_for(self.proc.wait(), EXIT_TIMEOUT_S) == 0
        if self.drain is not None:
            await asyncio.wait_for(self.drain, EXIT_TIMEOUT_S)


StartServer = Callable[..., Awaitable[Server]]


@pytest.fixture
async def start_server(tmp_path: Path) -> AsyncIterator[StartServer]:
    """Start ``flashsale serve --config <toml> [args]`` in ``tmp_path``; killed at teardown if still running."""
    started: list[Server] = []

    async def start(config_toml: str, *args: str) -> Server:
        (tmp_path / "sale.toml").write_text(config_toml, encoding="utf-8")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flashsale.transport",
            "serve",
            "--config",
            "sale.toml",
            "--port",
            str(port),
            *args,
            cwd=tmp_path,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        server = Server(proc, f"http://127.0.0.1:{port}")
        started.append(server)
        assert proc.stdout is not None
        await asyncio.wait_for(read_lines(proc.stdout, server.log, "listening"), START_TIMEOUT_S)
        server.drain = asyncio.create_task(read_lines(proc.stdout, server.log, None))
        return server

    yield start
    for server in started:
        if server.proc.returncode is None:
            server.proc.kill()
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await asyncio.wait_for(server.proc.wait(), EXIT_TIMEOUT_S)
        if server.drain is not None and not server.drain.done():
            server.drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server.drain


# The distributed tests' real redis-server, for the replays on the redis backend.
from tests.distributed.conftest import redis_server  # noqa: E402, F401 - a fixture
