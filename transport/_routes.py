"""The v1 routes of the HTTP contract (the README lists them).

The purchase handler is the hot path: read the body once, parse it with
orjson, check its three fields, hand it to the engine, render the outcome.
No per-request logging above debug level and no per-request allocation that
a cached answer can avoid.
"""

from __future__ import annotations

import orjson
import structlog
from aiohttp import web

from flashsale import TransitionRefused

from ._auth import request_buyer
from ._handlers import CLIENT_IP, ENGINE, METRICS, REGISTRY, RENDER, REQUEST_ID, RESULT, guarded, read_body, refuse
from ._metrics import render
from ._render import error, iso, json_response, order_json, sku_json
from ._room import pass_refusal
from ._trouble import TROUBLE

routes = web.RouteTableDef()
log = structlog.get_logger("flashsale.http")

_FIELDS = frozenset({"sku", "user", "qty"})
_DONE = {"pay": "paid", "cancel": "cancelled"}
_MAX_KEY = 255


@routes.post("/v1/purchase")
@guarded
async def purchase(request: web.Request) -> web.Response:
    raw = await read_body(request)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return refuse(request, f"the body is not valid JSON: {exc.msg} at position {exc.pos}")
    if type(data) is not dict:
        return refuse(request, 'the body must be a JSON object like {"sku": "moutai-53", "user": "u-1", "qty": 1}')
    if not data.keys() <= _FIELDS:
        unknown = sorted(data.keys() - _FIELDS)
        return refuse(request, f"unknown field {unknown[0]!r}; the fields are sku, user and qty")
    sku, qty = data.get("sku"), data.get("qty", 1)
    if type(sku) is not str or not sku:
        return refuse(request, "'sku' is required and must be a non-empty string")
    user = request_buyer(request, data.get("user"))
    key = request.headers.get("Idempotency-Key")
    if key is not None and (not 0 < len(key) <= _MAX_KEY or not key.isprintable() or not key.isascii()):
        return refuse(request, f"Idempotency-Key must be 1 to {_MAX_KEY} printable ASCII characters")
    app = request.app
    engine = app[ENGINE]
    if engine.has_room and (refused := pass_refusal(request, engine, user)) is not None:
        return refused
    outcome = await engine.purchase(
        sku, user, qty, idempotency_key=key, client_ip=app[CLIENT_IP](request), request_id=request[REQUEST_ID]
    )
    result = request[RESULT] = outcome.result
    if result == "reserved" and (room := engine.waiting_room) is not None:
        room.nudge()  # the last unit? the room closes now, not at its next tick
    app[METRICS].purchases[result] += 1
    if result == "sale_not_open":
        view = engine.view(sku)
        return app[RENDER](outcome, request[REQUEST_ID], (view.starts_at, view.ends_at))
    if result == "unavailable" or result == "overloaded":  # noqa: PLR1714 - cheaper than a tuple test
        TROUBLE.note(f"purchase {result}", request_id=request[REQUEST_ID], detail=outcome.detail)
    return app[RENDER](outcome, request[REQUEST_ID])


@routes.get("/v1/skus/{sku}")
@guarded
async def sku_status(request: web.Request) -> web.Response:
    status = await request.app[ENGINE].sku_status(request.match_info["sku"])
    return json_response(200, sku_json(status))


@routes.get("/v1/orders/{order_id}")
@guarded
async def get_order(request: web.Request) -> web.Response:
    named = request.query.getall("user", ())
    if len(named) > 1:
        return refuse(request, "name the buyer once: one ?user= parameter")
    user = request_buyer(request, named[0] if named else None, "'user' (the ?user= query parameter)")
    order = await request.app[ENGINE].order(request.match_info["order_id"], user=user)
    return json_response(200, order_json(order))


@routes.post("/v1/orders/{order_id}/{action:pay|cancel}")
@guarded
async def change_order(request: web.Request) -> web.Response:
    order_id, action = request.match_info["order_id"], request.match_info["action"]
    raw = await read_body(request)
    named = None
    if raw.strip():
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return refuse(request, f"the body is not valid JSON: {exc.msg} at position {exc.pos}")
        if type(data) is not dict or not data.keys() <= {"user"}:
            return refuse(request, 'the body must be a JSON object like {"user": "u-1"} (its only field is user)')
        named = data.get("user")
    user = request_buyer(request, named)
    engine = request.app[ENGINE]
    try:
        order = await (engine.pay(order_id, user=user) if action == "pay" else engine.cancel(order_id, user=user))
    except TransitionRefused as exc:
        detail = (
            f"order {order_id} expired at {iso(exc.order.expires_at)}; its units are back on sale"
            if exc.reason == "expired"
            else f"order {order_id} is {exc.order.status}; only a reserved order can be {_DONE[action]}"
        )
        request.app[METRICS].errors["invalid_transition"] += 1
        return error(409, "invalid_transition", detail, order=order_json(exc.order))
    return json_response(200, order_json(order))


@routes.get("/healthz")
@guarded
async def healthz(request: web.Request) -> web.Response:
    return json_response(200, {"status": "ok"})


@routes.get("/readyz")
@guarded
async def readyz(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    checks = engine.readiness()
    ready = all(checks.values())
    body: dict[str, object] = {"ready": ready, "checks": checks}
    keys = engine.key_gauges
    if keys is not None:  # the key table's fill: a full table refuses only its biggest holders
        body["idempotency_keys"] = {"live": keys.live, "max": keys.capacity}
    elif engine.sink_gauges is not None:  # redis: bounded per buyer and address only, counted in Redis
        body["idempotency_keys"] = {"live": engine.sink_gauges.idempotency_keys}
    return json_response(200 if ready else 503, body)


@routes.get("/metrics")
@guarded
async def metrics(request: web.Request) -> web.Response:
    body = render(request.app[REGISTRY])
    return web.Response(body=body, content_type="text/plain", charset="utf-8", headers={"Cache-Control": "no-store"})
