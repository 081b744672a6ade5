"""``flashsale serve --scenario FILE`` + ``flashsale replay FILE --against URL``, end to end, on every library file.

Real processes: the server serves the configuration inside the scenario (its
windows moved to now), the replay sends the scenario's traffic to it and
checks the invariants. The library's longer sales (up to ten minutes of sale
time) run with ``--speed`` on both sides, so each file takes seconds.
A server selling another sale is reported as a configuration mismatch
(exit 2) before any traffic is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from flashsale import load_scenario
from tests.scenarios.conftest import REPO, START_TIMEOUT_S
from tests.serverlog import read_lines

FILES = sorted((REPO / "scenarios").glob("*.json"))
REAL_SECONDS = 5.0  # each file's traffic is sent over about this long at most
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

Serve = Callable[..., Awaitable[str]]


def _speed(path: Path) -> float:
    """How much faster than written the scenario runs so that its traffic fits in :data:`REAL_SECONDS`."""
    last = max(e.at for e in load_scenario(path).traffic()) / 1_000_000
    return max(1.0, round(last / REAL_SECONDS))


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    """Start ``flashsale serve --scenario FILE [args]`` in ``tmp_path``; return its URL; SIGTERM (exit 0) after."""
    procs: list[asyncio.subprocess.Process] = []
    drains: list[asyncio.Task[None]] = []

    async def start(scenario: Path, *args: str) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "flashsale.transport", "serve", "--scenario", str(scenario)),
            *("--port", str(port), *args),
            cwd=tmp_path,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            env=ENV,
        )
        procs.append(proc)
        assert proc.stdout is not None
        log: list[Any] = []
        await asyncio.wait_for(read_lines(proc.stdout, log, "listening"), START_TIMEOUT_S)
        drains.append(asyncio.create_task(read_lines(proc.stdout, log, None)))
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.terminate()
        with contextlib.suppress(TimeoutError):
            assert await asyncio.wait_for(proc.wait(), 20) == 0
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    for drain in drains:
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drain


async def _replay_against(path: Path, url: str, *args: str) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "flashsale.transport", "replay", str(path), "--against", url, *args),
        stdout=asyncio.subprocess.PIPE,
        env=ENV,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 100)
    assert proc.returncode is not None
    return proc.returncode, out


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
async def test_every_scenario_serves_and_holds_against_itself(serve: Serve, path: Path) -> None:
    """The server of a scenario takes that scenario's traffic with every invariant holding: exit 0, 200s sold."""
    speed = str(_speed(path))
    url = await serve(path, "--speed", speed)
    code, out = await _replay_against(path, url, "--speed", speed, "--json")
    report = json.loads(out)
    assert code == 0, out.decode()
    assert report["mismatch"] == []
    assert all(check["ok"] for check in report["checks"].values()), report["checks"]
    assert sum(n for answer, n in report["answers"].items() if answer.startswith("200 ")) > 0


async def test_another_sale_is_a_mismatch_and_gets_no_traffic(serve: Serve) -> None:
    """Against a server of another scenario: exit 2, each difference named, and not one purchase sent."""
    url = await serve(REPO / "scenarios" / "moutai-rush.json")
    code, out = await _replay_against(REPO / "scenarios" / "sold-out-tail.json", url)
    assert code == 2
    lines = out.decode().splitlines()
    assert lines[1] == "MISMATCH   the server is not selling this scenario's sale; no traffic was sent"
    assert lines[2] == "  differs  vinyl-signed: not on sale on the server (it sells moutai-53)"
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as conn:
        conn.sendall(b"GET /v1/skus/moutai-53 HTTP/1.0\r\n\r\n")
        reply = b"".join(iter(lambda: conn.recv(65536), b""))
    status = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert (status["remaining"], status["reserved"]) == (100, 0)


async def test_a_different_stock_or_limit_is_a_mismatch(serve: Serve, tmp_path: Path) -> None:
    """Same SKU, other stock and per-user limit: both differences are named; exit 2."""
    source = json.loads((REPO / "scenarios" / "moutai-rush.json").read_text())
    source["config"]["sku"][0].update(stock=50, per_user_limit=1)
    other = tmp_path / "smaller.json"
    other.write_text(json.dumps(source))
    url = await serve(REPO / "scenarios" / "moutai-rush.json")
    code, out = await _replay_against(other, url)
    assert code == 2
    assert out.decode().splitlines()[2:4] == [
        "  differs  moutai-53: stock 100 on the server, 50 in the scenario",
        "  differs  moutai-53: per_user_limit 2 on the server, 1 in the scenario",
    ]
