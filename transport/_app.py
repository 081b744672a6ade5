"""The aiohttp application: build it, start and stop the engine with it.

``create_app`` builds the app around a :class:`flashsale.SaleEngine`; the
engine starts and stops with the app (a ``cleanup_ctx``), so SIGTERM or
SIGINT stop taking requests, answer those in flight, flush the order writer
and close the store before the process exits. The routes live in
:mod:`._routes`; what they share (state keys, :func:`guarded`) in
:mod:`._handlers`. A catch-all route answers JSON 404s and 405s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from flashsale import Config, SaleEngine

from ._admin import install_admin
from ._auth import IDENTITY, Identity
from ._client_ip import ClientIp
from ._dashboard import add_dashboard
from ._feed import FEED, install_feed
from ._front import routes as front_routes
from ._handlers import BODY_TIMEOUT, CLIENT_IP, ENGINE, LANES, MAX_BODY, METRICS, REGISTRY, RENDER, guarded, not_routed
from ._metrics import Metrics, sharing
from ._metrics_share import from_env
from ._openapi import add_openapi
from ._render import OutcomeRenderer
from ._room import join_lane, poll_lane
from ._room import routes as room_routes
from ._room_events import routes as room_event_routes
from ._routes import purchase_lane, routes

__all__ = ["ENGINE", "METRICS", "create_app"]


def create_app(config: Config, *, engine: SaleEngine | None = None) -> web.Application:
    """The flashsale HTTP app for ``config`` (or around a given engine)."""
    app = web.Application(client_max_size=config.server.max_body_bytes)
    engine = app[ENGINE] = engine or SaleEngine(config)
    app[METRICS] = Metrics()
    app[RENDER] = OutcomeRenderer()
    app[MAX_BODY] = config.server.max_body_bytes
    app[CLIENT_IP] = ClientIp(config.server.trusted_proxies)
    app[BODY_TIMEOUT] = config.connections.body_timeout
    app[IDENTITY] = Identity(config.auth, config.server.trusted_proxies)  # who is buying: transport/_auth.py
    app.add_routes(routes)
    app.add_routes(front_routes)
    install_feed(app, engine, config.feed)  # GET /v1/events, /v1/skus/{sku}/events
    install_admin(app, config.admin.token)  # /v1/admin/... only with [admin] token or token_file
    app.add_routes(room_routes)  # the waiting room (transport/_room.py)
    app.add_routes(room_event_routes)  # a ticket's event stream (transport/_room_events.py)
    # Answered before routing (transport/_server.py): the usual purchase, and a room's usual poll and join.
    app[LANES] = [purchase_lane(app), *((poll_lane(app), join_lane(app)) if engine.has_room else ())]
    add_openapi(app, config)  # GET /openapi.json (entries in _openapi_routes.py)
    add_dashboard(app, config.admin.token)  # /dashboard, behind [admin] token
    share = from_env()  # under serve --workers N: a scrape of any worker answers for all
    app[REGISTRY] = app[METRICS].registry(engine, app[FEED], share)
    app.router.add_route("*", "/{tail:.*}", guarded(not_routed))  # last: only what nothing else matched
    app.cleanup_ctx.append(_engine_lifecycle)
    if share is not None:
        app.cleanup_ctx.append(sharing(app[REGISTRY]))
    return app


async def _engine_lifecycle(app: web.Application) -> AsyncIterator[None]:
    engine = app[ENGINE]
    await engine.start()
    yield
    await engine.stop()
