"""What every route shares: the app's typed state, request ids, and the wrapper that answers errors as JSON.

There is no middleware: with any middleware at all, aiohttp wraps every
handler in two more coroutine layers, a measurable share of a purchase.
Instead each handler is wrapped once by :func:`guarded`, which gives the
request its id (the caller's ``X-Request-Id`` if it sends a sane one) and
turns every error into the JSON error shape. Route modules import this one;
:mod:`._app` imports the route modules, so nothing imports in a circle.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry

from flashsale import EngineClosed, InvalidRequest, SaleEngine, Unavailable, UnknownOrder, UnknownSku

from ._auth import AuthRefused
from ._client_ip import ClientIp
from ._metrics import Metrics
from ._render import OutcomeRenderer, error
from ._trouble import TROUBLE

ENGINE = web.AppKey("engine", SaleEngine)
METRICS = web.AppKey("metrics", Metrics)
REGISTRY = web.AppKey("registry", CollectorRegistry)
RENDER = web.AppKey("render", OutcomeRenderer)
MAX_BODY = web.AppKey("max_body", int)
CLIENT_IP = web.AppKey("client_ip", ClientIp)
BODY_TIMEOUT = web.AppKey("body_timeout", float)
Lane = Callable[[web.Request], web.Response | Awaitable[web.StreamResponse | None] | None]
"""A fast lane: answers the common case of one route before aiohttp routes the request, else ``None``.

It answers at once (an :class:`aiohttp.web.Response`, exactly that class), later (an awaitable
of a response, or of ``None`` when it leaves the request after all), or not at all (``None``).
A lane leaves a request only before changing anything."""
LANES: web.AppKey[list[Lane]] = web.AppKey("lanes")
"""The app's fast lanes, tried in order by :func:`._server.before_routing` before the router."""
REQUEST_ID = web.RequestKey("request_id", str)
RESULT = web.RequestKey("result", str)
"""What a request came to, for the duration histogram: a purchase's result or an error code."""

log = structlog.get_logger("flashsale.http")

_ERROR_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    417: "expectation_failed",
}


def _request_ids() -> Callable[[], str]:
    prefix = os.urandom(4).hex()
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter)}"


_next_id = _request_ids()


def request_id(request: web.BaseRequest) -> str:
    """The caller's ``X-Request-Id`` when it sends a sane one (1 to 128 printable characters), else a new id."""
    rid = request.headers.get("X-Request-Id", "")
    if not 0 < len(rid) <= 128 or not rid.isprintable():
        rid = _next_id()
    return rid


def refuse(request: web.Request, detail: str, code: str = "invalid_request", status: int = 400) -> web.Response:
    """A 4xx for a request that changed nothing: counted, logged at debug with its id."""
    request.app[METRICS].errors[code] += 1
    request[RESULT] = code
    log.debug("request refused", request_id=request[REQUEST_ID], error=code, detail=detail)
    return error(status, code, detail)


def guarded(handler: Handler) -> Handler:
    """Give the request an id, answer every error as JSON, echo the id.

    The engine's exceptions map to HTTP here, once for every route:
    ``InvalidRequest`` 400, ``UnknownSku`` / ``UnknownOrder`` 404,
    ``EngineClosed`` / ``Unavailable`` 503.
    """

    route = handler.__name__
    clock = time.perf_counter

    @functools.wraps(handler)
    async def run(request: web.Request) -> web.StreamResponse:
        started = clock()
        rid = request[REQUEST_ID] = request_id(request)
        try:
            response = await handler(request)
        except AuthRefused as exc:  # who is buying (transport/_auth.py): 401, 403 or 400, counted by code
            response = refuse(request, exc.detail, exc.code, exc.status)
            response.headers.update(exc.headers)
        except InvalidRequest as exc:
            response = refuse(request, f"'{exc.field}' {exc.detail}")
        except UnknownSku as exc:
            response = refuse(request, f"there is no sku {exc.sku!r} in this sale", "unknown_sku", 404)
        except UnknownOrder as exc:
            response = refuse(request, f"there is no order {exc.order_id!r}", "unknown_order", 404)
        except (EngineClosed, Unavailable) as exc:
            TROUBLE.note("engine unavailable", request_id=rid, reason=str(exc))
            response = error(503, "unavailable", "the sale is not taking requests right now; retry shortly")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _ERROR_CODES.get(exc.status, "http_error")
            detail = exc.reason if exc.status != 413 else f"the body is larger than {request.app[MAX_BODY]} bytes"
            response = error(exc.status, code, detail)
            if "Allow" in exc.headers:  # a 405 says which methods the path takes (RFC 9110)
                response.headers["Allow"] = exc.headers["Allow"]
            if exc.status == 408:  # the rest of a slow body is not worth waiting for
                response.force_close()
        except ConnectionError:  # the client went away mid-request: nothing to answer, nothing to fix
            TROUBLE.note("client disconnected", logging.INFO, path=request.path)
            response = error(400, "invalid_request", "the connection was lost before the request was complete")
        except Exception:
            TROUBLE.note("unhandled error", logging.ERROR, exc_info=True, request_id=rid, path=request.path)
            response = error(500, "internal_error", "something went wrong on our side; nothing was bought")
        if "X-Request-Id" not in response.headers:  # the purchase path sets it when it builds the response
            response.headers["X-Request-Id"] = rid
        result = request.get(RESULT)
        request.app[METRICS].route(route).observe(
            result if result is not None else _ERROR_CODES.get(response.status, str(response.status)),
            clock() - started,
        )
        return response

    return run


def body_arrived(request: web.Request, max_body: int) -> bool:
    """The whole body is here, its ``Content-Length`` within ``max_body``: a lane may read it without waiting.

    Not so (chunked, too large, still arriving, or waiting for ``100-continue``): the route's :func:`read_body`.
    """
    size = request.content_length
    return size is not None and size <= max_body and request.content.is_eof()


async def read_body(request: web.Request) -> bytes:
    """The request body, read within ``connections.body_timeout`` seconds, else a 408 that closes the connection."""
    if request.content.is_eof():  # the whole body came with the head (the usual purchase): no timer to arm
        return await request.read()
    try:
        async with asyncio.timeout(request.app[BODY_TIMEOUT]):
            return await request.read()
    except TimeoutError:
        TROUBLE.note("slow request body", logging.INFO, path=request.path)
        raise web.HTTPRequestTimeout(reason=f"the body did not arrive within {request.app[BODY_TIMEOUT]} s") from None


async def not_routed(request: web.Request) -> web.StreamResponse:
    """The catch-all route: 405 where the path exists with other methods, else 404."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.canonical != "/{tail}":
            allowed |= (await resource.resolve(request))[1]
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound
