"""A real flashsale HTTP server on a loopback port, run on its own event loop in a thread.

For clients that block (schemathesis's requests, Playwright's sync API): the
test thread talks to the server over a real socket while the server's loop
runs beside it. The engine starts and stops with the app, and requests meet
``before_routing`` (the fast lanes) first, as under ``flashsale serve``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from aiohttp import web

from flashsale import Config
from flashsale.config import AdminConfig
from flashsale.transport import create_app
from flashsale.transport._server import before_routing


@dataclass(frozen=True, slots=True)
class LiveServer:
    url: str
    app: web.Application
    loop: asyncio.AbstractEventLoop

    def call(self, coro: object, timeout: float = 10.0) -> object:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]


@contextmanager
def live_server(config: Config, admin_token: str | None = None) -> Iterator[LiveServer]:
    """Serve ``create_app(config)`` on 127.0.0.1 (a free port) until the block ends."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="live-server", daemon=True)
    thread.start()
    if admin_token is not None:  # the dashboard and the admin API
        config = dataclasses.replace(config, admin=AdminConfig(token=admin_token))
    app = create_app(config)
    runner = web.AppRunner(app, handle_signals=False)

    async def start() -> str:
        await runner.setup()
        assert runner.server is not None
        runner.server.request_handler = before_routing(app, runner.server.request_handler)  # as flashsale serve has
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    try:
        url = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
        yield LiveServer(url, app, loop)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
