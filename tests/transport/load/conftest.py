"""Real servers for the ``flashsale load`` tests, and a way to run the command as a user would.

- ``start_server``: a real ``flashsale serve`` process (the scenario tests' fixture);
- ``serve_app``: an aiohttp application on a real loopback socket in the test's loop: the
  deliberately broken servers, the stalling one, the counting one;
- :func:`run_load`: ``python -m flashsale.transport load ...`` as a subprocess, awaited without
  blocking the loop (so an in-process server keeps answering it).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from flashsale.testing import free_port
from tests.scenarios.conftest import REPO, start_server

__all__ = ["start_server"]

LOAD_TIMEOUT_S = 90.0

ServeApp = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve_app() -> AsyncIterator[ServeApp]:
    """Serve an aiohttp app on 127.0.0.1:<free port>; its URL. Cleaned up at teardown."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@dataclass
class LoadRun:
    code: int
    out: str
    err: str
    json: dict[str, Any] | None


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


async def run_load(url: str, *args: str, json_to: Path | None = None) -> LoadRun:
    """Run ``flashsale load URL args...`` (``--json`` to ``json_to`` when given) and collect what it said."""
    argv = [sys.executable, "-m", "flashsale.transport", "load", url, "--no-live", *args]
    if json_to is not None:
        argv += ["--json", str(json_to)]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    out, err = await asyncio.wait_for(proc.communicate(), LOAD_TIMEOUT_S)
    assert proc.returncode is not None
    data = await asyncio.to_thread(_read_json, json_to) if json_to is not None else None
    return LoadRun(proc.returncode, out.decode(), err.decode(), data)
