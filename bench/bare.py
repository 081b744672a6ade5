"""The bare reference server: aiohttp on uvloop, the minimum any endpoint does.

``POST /v1/purchase`` reads the request body, parses it with orjson and
answers a small orjson JSON body; ``GET /healthz`` answers 200. No
validation, no engine, no logging per request: this is the ceiling a
flashsale endpoint is compared with.

Run: ``python bench/bare.py --port 8081`` (listens on 127.0.0.1 only).
"""

from __future__ import annotations

import argparse

import orjson
import uvloop
from aiohttp import web

_HEALTHY = orjson.dumps({"status": "ok"})


async def purchase(request: web.Request) -> web.Response:
    """Parse the JSON body and echo a small JSON answer."""
    data = orjson.loads(await request.read())
    body = orjson.dumps({"result": "ok", "sku": data.get("sku"), "qty": data.get("qty", 1)})
    return web.Response(body=body, content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process is up and serving."""
    return web.Response(body=_HEALTHY, content_type="application/json")


def make_app() -> web.Application:
    """The two routes, nothing else."""
    app = web.Application()
    app.router.add_post("/v1/purchase", purchase)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    web.run_app(
        make_app(),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        shutdown_timeout=5.0,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
