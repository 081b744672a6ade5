"""The admin API under ``/v1/admin/``: steer a running sale.

Present only when ``[admin] token`` or ``token_file`` is configured (else
every ``/v1/admin/`` path is the catch-all's 404). Every request carries
``Authorization: Bearer <token>``, compared in constant time
(:func:`hmac.compare_digest`), or the dashboard's signed session cookie with
its ``X-Flashsale-Dashboard`` header (:mod:`._dashboard_session`); anything
else is ``401 unauthenticated``.

=======================================  ==========================================
``POST /v1/admin/skus/{sku}/pause``      the SKU answers purchases ``409 sale_paused``
``POST /v1/admin/skus/{sku}/resume``     it sells again
``POST /v1/admin/skus/{sku}/end``        its sale window ends now (``sale_not_open``)
``POST /v1/admin/skus/{sku}/restock``    body ``{"qty": n}``: n more units
``PUT /v1/admin/limits``                 body ``{"<scope>": {"rate", "burst"}}``: live (409 when
                                         the config has no such scope)
``POST /v1/admin/room/pause``            the waiting room admits nobody (joins and polls go on)
``POST /v1/admin/room/resume``           it admits again, paced from now
``PUT /v1/admin/room``                   body ``{"admit_rate": r}``: admit r buyers per second
``GET /v1/admin/overview``               everything the dashboard shows, as JSON
=======================================  ==========================================

The room routes answer the room as ``GET /v1/room`` does, and ``409
not_configured`` when the config has no ``[waiting_room]``.

The SKU actions answer the SKU as ``GET /v1/skus/{sku}`` does; ``limits``
answers every scope in force. Each action is one structured log line
(``admin action``: who, what, before, after), counted in
``flashsale_admin_actions_total``, applied for every worker (on
``backend = "redis"`` the pause flag and the rates live in Redis), and
recorded by ``serve --record`` so a replay does the same.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Literal

import orjson
import structlog
from aiohttp import web

from flashsale import ConfigError, SaleEngine
from flashsale.config import SCOPES, limit_changes

from ._dashboard import DASHBOARD
from ._dashboard_state import room_panel
from ._feed import FEED, status_of
from ._handlers import CLIENT_IP, ENGINE, METRICS, REQUEST_ID, guarded, refuse
from ._render import iso, json_response, sku_json
from ._room import room_json

log = structlog.get_logger("flashsale.admin")

TOKEN = web.AppKey("admin_token", bytes)
routes = web.RouteTableDef()
_MAX_OPERATOR = 64


def admin(handler: Any) -> Any:
    """Check the bearer token before ``handler`` runs (inside :func:`guarded`: errors are JSON)."""

    async def run(request: web.Request) -> web.StreamResponse:
        if TOKEN not in request.app:  # no admin API: the same 404 as any path that does not exist
            raise web.HTTPNotFound
        given = request.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        # Digests of equal length compared in constant time: no timing oracle on the token's content or length.
        bearer = scheme.lower() == "bearer" and hmac.compare_digest(_digest(token.strip()), request.app[TOKEN])
        if not bearer and not _dashboard_session(request):
            response = refuse(request, "send Authorization: Bearer <admin token>", "unauthenticated", 401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="flashsale-admin"'
            return response
        answer: web.StreamResponse = await handler(request)
        return answer

    run.__name__ = handler.__name__
    return guarded(run)


def _dashboard_session(request: web.Request) -> bool:
    dashboard = request.app.get(DASHBOARD)
    signer = None if dashboard is None else dashboard.signer
    return signer is not None and signer.signed_in(request)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _who(request: web.Request) -> dict[str, str | None]:
    """Who acted: the client address, and the name the operator gave in ``X-Operator`` (if sane)."""
    name = request.headers.get("X-Operator")
    if name is not None and not (0 < len(name) <= _MAX_OPERATOR and name.isprintable()):
        name = None
    if name is None and "Authorization" not in request.headers:
        name = "dashboard"  # signed in with the dashboard's session cookie
    return {"ip": request.app[CLIENT_IP](request), "operator": name}


def _acted(request: web.Request, action: str, target: str, before: Any, after: Any) -> None:
    request.app[METRICS].admin_actions[action] += 1
    log.info(
        "admin action",
        request_id=request[REQUEST_ID],
        who=_who(request),
        action=action,
        target=target,
        before=before,
        after=after,
    )


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _BadBody(f"the body is not valid JSON: {exc.msg} at position {exc.pos}") from None


class _BadBody(Exception):
    pass


@routes.post("/v1/admin/skus/{sku}/{action:pause|resume|end}")
@admin
async def sku_action(request: web.Request) -> web.Response:
    sku, action = request.match_info["sku"], request.match_info["action"]
    engine = request.app[ENGINE]
    act: Literal["pause", "resume", "end"] = "pause" if action == "pause" else "resume" if action == "resume" else "end"
    before, after = await engine.control(sku, act)
    at = engine.clock()
    b, a = sku_json(status_of(before, at)), sku_json(status_of(after, at))
    _acted(request, action, sku, b, a)
    return json_response(200, a)


@routes.post("/v1/admin/skus/{sku}/restock")
@admin
async def restock(request: web.Request) -> web.Response:
    sku = request.match_info["sku"]
    engine = request.app[ENGINE]
    before = engine.view(sku)  # UnknownSku: 404 before the body is looked at
    try:
        body = await _json_body(request)
    except _BadBody as exc:
        return refuse(request, str(exc))
    if type(body) is not dict or body.keys() != {"qty"}:
        return refuse(request, 'the body must be a JSON object like {"qty": 100}')
    after = await engine.restock(sku, body["qty"])  # InvalidRequest (400) for a bad qty: nothing changes
    at = engine.clock()
    b, a = sku_json(status_of(before, at)), sku_json(status_of(after, at))
    _acted(request, "restock", sku, b, a)
    return json_response(200, a)


def limits_json(limits: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        name: {"algorithm": s.algorithm, "rate": s.rate, "burst": s.burst, "queue": s.queue}
        for name, s in limits.items()
    }


@routes.put("/v1/admin/limits")
@admin
async def set_limits(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    try:
        body = await _json_body(request)
        missing = sorted(set(body) - set(engine.limits)) if type(body) is dict else []
        if missing and missing[0] in SCOPES:
            detail = f"limits.{missing[0]} is not configured; only a scope the config has changes live"
            return refuse(request, detail, "not_configured", 409)
        changes = limit_changes(body, engine.limits)
    except _BadBody as exc:
        return refuse(request, str(exc))
    except ConfigError as exc:
        return refuse(request, str(exc).removeprefix("PUT /v1/admin/limits: "))
    before = await engine.set_limits(changes)
    _acted(request, "limits", ",".join(changes), limits_json(before), limits_json(changes))
    return json_response(200, {"limits": limits_json(engine.limits)})


def _no_room(request: web.Request) -> web.Response | None:
    if request.app[ENGINE].has_room:
        return None
    return refuse(request, "this sale has no waiting room ([waiting_room] in the config)", "not_configured", 409)


@routes.post("/v1/admin/room/{action:pause|resume}")
@admin
async def room_action(request: web.Request) -> web.Response:
    refused = _no_room(request)
    if refused is not None:
        return refused
    engine = request.app[ENGINE]
    action = request.match_info["action"]
    before = room_json(engine.room_status())
    await (engine.pause_room() if action == "pause" else engine.resume_room())
    after = room_json(engine.room_status())
    _acted(request, f"room_{action}", "room", before, after)
    return json_response(200, after)


@routes.put("/v1/admin/room")
@admin
async def set_room(request: web.Request) -> web.Response:
    refused = _no_room(request)
    if refused is not None:
        return refused
    engine = request.app[ENGINE]
    try:
        body = await _json_body(request)
    except _BadBody as exc:
        return refuse(request, str(exc))
    if type(body) is not dict or body.keys() != {"admit_rate"}:
        return refuse(request, 'the body must be a JSON object like {"admit_rate": 50}')
    rate = body["admit_rate"]
    if type(rate) not in (int, float) or not 0 < rate <= 1_000_000:
        shown = orjson.dumps(rate).decode()
        return refuse(request, f"admit_rate must be a number > 0 and at most 1000000, got {shown}")
    before = room_json(engine.room_status())
    await engine.set_admit_rate(float(rate))
    after = room_json(engine.room_status())
    _acted(request, "room_rate", "room", before, after)
    return json_response(200, after)


@routes.get("/v1/admin/overview")
@admin
async def overview(request: web.Request) -> web.Response:
    return json_response(200, overview_json(request.app))


def overview_json(app: web.Application) -> dict[str, Any]:
    """Everything the dashboard shows, now."""
    engine: SaleEngine = app[ENGINE]
    metrics = app[METRICS]
    at = engine.clock()
    out: dict[str, Any] = {
        "at": iso(at),
        "skus": [sku_json(status_of(engine.view(s.id), at)) for s in engine.config.skus],
        "purchases": dict(sorted(metrics.purchases.items())),
        "errors": dict(sorted(metrics.errors.items())),
        "latency": metrics.purchase_latency(),
        "inflight": engine.inflight,
        "limiter_queued": engine.limiter_gauges.queued,
        "readiness": engine.readiness(),
        "limits": limits_json(engine.limits),
        "feed": {"listeners": app[FEED].listeners, "dropped": app[FEED].dropped},
        "admin_actions": dict(sorted(metrics.admin_actions.items())),
        "backend": engine.config.backend,
        "room": room_panel(app),
    }
    sink = engine.sink_gauges
    if sink is None:
        out["writer"] = {"backlog": engine.gauges.backlog, "store_ok": engine.gauges.store_ok}
    else:
        out["sink"] = {"pending": sink.pending, "ok": sink.ok, "failures": sink.failures}
    return out


def install_admin(app: web.Application, token: str | None) -> None:
    """Add the admin routes (before the app's catch-all route); without a token each answers 404."""
    if token is not None:
        app[TOKEN] = _digest(token)
    app.add_routes(routes)
