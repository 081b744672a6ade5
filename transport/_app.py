"""The aiohttp application: state, middleware, life cycle.

``create_app`` builds the app around a :class:`engine.SaleEngine`; the
engine starts and stops with the app (a ``cleanup_ctx``), so SIGTERM or
SIGINT stop taking requests, answer those in flight, flush the order writer
and close the store before the process exits.

The single middleware gives each request an id (the caller's
``X-Request-Id`` if it sends a sane one) and turns every aiohttp HTTP error
— unknown route, wrong method, oversized body — into the JSON error shape.
Authentication will be a middleware too: handlers read the buyer from
``request[USER]``-style state, never from the transport details.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Callable

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from engine import Config, SaleEngine

from ._metrics import Metrics
from ._render import OutcomeRenderer, error

ENGINE = web.AppKey("engine", SaleEngine)
METRICS = web.AppKey("metrics", Metrics)
RENDER = web.AppKey("render", OutcomeRenderer)
MAX_BODY = web.AppKey("max_body", int)
REQUEST_ID = web.RequestKey("request_id", str)

log = structlog.get_logger("flashsale.http")

_ERROR_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _request_ids() -> Callable[[], str]:
    prefix = os.urandom(4).hex()
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter)}"


def _middleware() -> Middleware:
    next_id = _request_ids()

    @web.middleware
    async def request_id_and_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request.headers.get("X-Request-Id", "")
        if not 0 < len(rid) <= 128 or not rid.isprintable():
            rid = next_id()
        request[REQUEST_ID] = rid
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _ERROR_CODES.get(exc.status, "http_error")
            detail = exc.reason if exc.status != 413 else f"the body is larger than {request.app[MAX_BODY]} bytes"
            response = error(exc.status, code, detail)
        except Exception:
            log.exception("unhandled error", request_id=rid, path=request.path)
            response = error(500, "internal_error", "something went wrong on our side; nothing was bought")
        response.headers["X-Request-Id"] = rid
        return response

    return request_id_and_errors


def create_app(config: Config, *, engine: SaleEngine | None = None) -> web.Application:
    """The flashsale HTTP app for ``config`` (or around a given engine)."""
    from ._routes import routes  # noqa: PLC0415 - routes import this module's keys

    app = web.Application(client_max_size=config.server.max_body_bytes, middlewares=[_middleware()])
    app[ENGINE] = engine or SaleEngine(config)
    app[METRICS] = Metrics()
    app[RENDER] = OutcomeRenderer()
    app[MAX_BODY] = config.server.max_body_bytes
    app.add_routes(routes)
    app.cleanup_ctx.append(_engine_lifecycle)
    return app


async def _engine_lifecycle(app: web.Application) -> AsyncIterator[None]:
    engine = app[ENGINE]
    await engine.start()
    yield
    await engine.stop()
