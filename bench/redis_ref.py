"""The usual Redis flash-sale endpoint, as the reference for ``bench/run.py redis``.

aiohttp on uvloop with ``redis.asyncio``; per ``POST /v1/purchase`` two round
trips: ``SET NX`` of a per-user-and-SKU key (a buyer's second click is
refused) and one ``EVALSHA`` of a script that checks the stock is positive
and only then ``DECR``s it. No order record, no idempotency answers, no
rate limits: the cheapest correct thing, and what flashsale's redis backend
is compared with.

Run: ``python bench/redis_ref.py --port 8082 --redis redis://127.0.0.1:6379/0 --stock 1000``.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import orjson
import redis.asyncio as aioredis
import uvloop
from aiohttp import web

BUY = """
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
if left <= 0 then return -1 end
return redis.call('DECR', KEYS[1])
"""

CLIENT = web.AppKey("client", aioredis.Redis)
SHA = web.AppKey("sha", str)
_HEALTHY = orjson.dumps({"status": "ok"})


async def purchase(request: web.Request) -> web.Response:
    """Dedup the buyer with SET NX, then check-and-decrement the stock in one script."""
    data = orjson.loads(await request.read())
    sku, user = data["sku"], data["user"]
    client = request.app[CLIENT]
    if not await client.set(f"ref:{{{sku}}}:buyer:{user}", 1, nx=True, ex=3600):
        return web.Response(status=409, body=b'{"error":"limit_reached"}', content_type="application/json")
    left = await client.evalsha(request.app[SHA], 1, f"ref:{{{sku}}}:stock")
    if int(left) < 0:
        return web.Response(status=409, body=b'{"error":"sold_out"}', content_type="application/json")
    body = orjson.dumps({"result": "reserved", "sku": sku, "qty": 1, "left": left})
    return web.Response(body=body, content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=_HEALTHY, content_type="application/json")


def make_app(url: str, sku: str, stock: int) -> web.Application:
    app = web.Application()

    async def connect(app: web.Application) -> AsyncIterator[None]:
        client = aioredis.Redis.from_url(url, max_connections=512)
        await client.set(f"ref:{{{sku}}}:stock", stock, nx=True)
        app[CLIENT] = client
        app[SHA] = await client.script_load(BUY)
        yield
        await client.aclose()

    app.cleanup_ctx.append(connect)
    app.router.add_post("/v1/purchase", purchase)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--sku", default="hot")
    parser.add_argument("--stock", type=int, default=10**8)
    args = parser.parse_args()
    web.run_app(
        make_app(args.redis, args.sku, args.stock),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        shutdown_timeout=5.0,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
