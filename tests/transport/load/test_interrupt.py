"""Ctrl-C in the middle of a run: the schedule stops, the summary so far is printed, exit 130."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from pathlib import Path

from aiohttp import web

from tests.scenarios.conftest import REPO

from .conftest import ServeApp, _read_json


async def test_ctrl_c_prints_the_summary_so_far(serve_app: ServeApp, tmp_path: Path) -> None:
    """SIGINT after 50 purchases of a 60 s schedule: exit 130 within seconds, the partial counts reported."""
    seen = asyncio.Event()
    count = [0]

    async def purchase(request: web.Request) -> web.Response:
        count[0] += 1
        if count[0] == 50:
            seen.set()
        return web.json_response({"error": "sold_out", "detail": "sold out"}, status=409)

    async def sku(request: web.Request) -> web.Response:
        view = {"sku": "hot", "stock": 0, "remaining": 0, "reserved": 0, "paid": 0, "state": "sold_out"}
        return web.json_response(view)

    app = web.Application()
    app.router.add_post("/v1/purchase", purchase)
    app.router.add_get("/v1/skus/{sku}", sku)
    url = await serve_app(app)
    out_json = tmp_path / "partial.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flashsale.transport", "load", url, "--no-live", "--sku", "hot", "--rate", "100",
        "--duration", "60", "--json", str(out_json),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    await asyncio.wait_for(seen.wait(), 30)
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err.decode()
    assert "INTERRUPTED: the summary so far" in out.decode()
    data = await asyncio.to_thread(_read_json, out_json)
    assert data is not None
    assert data["interrupted"] is True
    assert 50 <= data["phases"]["purchase"]["count"] < 6000
    assert data["phases"]["purchase"]["count"] == count[0]


def test_off_the_main_thread_ctrl_c_is_left_to_the_host_program() -> None:
    """A load run in another program's worker thread: no signal handler is taken (none can be); the run goes on."""
    from types import SimpleNamespace  # noqa: PLC0415

    from flashsale.transport.load._sender import sigint_stops  # noqa: PLC0415

    before = signal.getsignal(signal.SIGINT)
    ran: list[bool] = []

    async def run() -> None:
        sender = SimpleNamespace(stop=asyncio.Event())
        with sigint_stops(sender):  # type: ignore[arg-type] # only its stop event is used
            ran.append(True)
        assert not sender.stop.is_set()

    worker = threading.Thread(target=asyncio.run, args=(run(),))
    worker.start()
    worker.join(10)
    assert ran == [True]
    assert signal.getsignal(signal.SIGINT) is before
