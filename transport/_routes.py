"""The v1 routes of the HTTP contract (the README lists them).

The purchase handler is the hot path: read the body once, parse it with
orjson, check its three fields, hand it to the engine, render the outcome.
No per-request logging above debug level and no per-request allocation that
a cached answer can avoid.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

import orjson
import structlog
from aiohttp import web

from flashsale import EngineClosed, InvalidRequest, Outcome, TransitionRefused, UnknownSku

from ._auth import IDENTITY, AuthRefused, body_buyer, request_buyer
from ._handlers import (
    CLIENT_IP,
    ENGINE,
    MAX_BODY,
    METRICS,
    REGISTRY,
    RENDER,
    REQUEST_ID,
    RESULT,
    Lane,
    body_arrived,
    guarded,
    read_body,
    refuse,
    request_id,
)
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
    """A purchase. Behind ``flashsale serve`` the usual one never gets here: :func:`purchase_lane` answers it."""
    raw = await read_body(request)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return refuse(request, f"the body is not valid JSON: {exc.msg} at position {exc.pos}")
    fields = _purchase_fields(data)
    if isinstance(fields, str):
        return refuse(request, fields)
    sku, qty = fields
    user = request_buyer(request, body_buyer(data))
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _good_key(key):
        return refuse(request, f"Idempotency-Key must be 1 to {_MAX_KEY} printable ASCII characters")
    app = request.app
    engine = app[ENGINE]
    if engine.has_room and (refused := pass_refusal(request, engine, user)) is not None:
        return refused
    rid = request[REQUEST_ID]
    outcome = await engine.purchase(
        sku, user, qty, idempotency_key=key, client_ip=app[CLIENT_IP](request), request_id=rid
    )
    request[RESULT] = outcome.result
    return _answer(app, sku, outcome, rid)


def _purchase_fields(data: object) -> tuple[str, Any] | str:
    """A purchase body's ``sku`` and ``qty`` (the engine checks ``qty``), or why the body is refused."""
    if type(data) is not dict:
        return 'the body must be a JSON object like {"sku": "moutai-53", "user": "u-1", "qty": 1}'
    if not data.keys() <= _FIELDS:
        unknown = sorted(data.keys() - _FIELDS)
        return f"unknown field {unknown[0]!r}; the fields are sku, user and qty"
    sku = data.get("sku")
    if type(sku) is not str or not sku:
        return "'sku' is required and must be a non-empty string"
    return sku, data.get("qty", 1)


def _good_key(key: str) -> bool:
    return 0 < len(key) <= _MAX_KEY and key.isprintable() and key.isascii()


def _answer(app: web.Application, sku: str, outcome: Outcome, rid: str) -> web.Response:
    """A decided purchase's answer (counted, and the room told when a unit went), for the route and the lane."""
    result = outcome.result
    engine = app[ENGINE]
    if result == "reserved" and (room := engine.waiting_room) is not None:
        room.nudge()  # the last unit? the room closes now, not at its next tick
    app[METRICS].purchases[result] += 1
    if result == "sale_not_open":
        view = engine.view(sku)
        return app[RENDER](outcome, rid, (view.starts_at, view.ends_at))
    if result == "unavailable" or result == "overloaded":  # noqa: PLR1714 - cheaper than a tuple test
        TROUBLE.note(f"purchase {result}", request_id=rid, detail=outcome.detail)
    return app[RENDER](outcome, rid)


def purchase_lane(app: web.Application) -> Lane:
    """``POST /v1/purchase``, the usual purchase, answered before aiohttp routes it (:func:`._server.before_routing`).

    The usual purchase: a body that has all arrived, within
    ``max_body_bytes``, a JSON object of ``sku``, ``user`` and ``qty``, a
    buyer the auth mode accepts, a sane ``Idempotency-Key`` if any, a valid
    ``Admission-Pass`` when the sale has a waiting room. Anything else is
    left to the routed :func:`purchase`, which reads the same body again
    (aiohttp keeps it) and refuses it with its code and detail. The engine
    raises only before it has recorded or tried anything (a bad ``qty``, an
    unknown SKU, a stopped engine), so those are left to the route too. Once
    the engine has decided, the lane answers exactly as the route:
    :func:`_answer`, the same duration tally.
    """
    engine = app[ENGINE]
    identity = app[IDENTITY]
    client_ip = app[CLIENT_IP]
    max_body = app[MAX_BODY]
    durations = app[METRICS].route("purchase")
    clock = time.perf_counter

    async def answer(request: web.Request) -> web.Response | None:
        started = clock()
        try:
            data = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return None
        fields = _purchase_fields(data)
        key = request.headers.get("Idempotency-Key")
        if isinstance(fields, str) or (key is not None and not _good_key(key)):
            return None  # refused: the route says why
        sku, qty = fields
        try:
            user = identity.resolve(request, body_buyer(data), "'user'")
        except AuthRefused:
            return None
        if engine.has_room and engine.check_pass(request.headers.get("Admission-Pass"), user)[0]:
            return None
        rid = request_id(request)
        try:
            outcome = await engine.purchase(
                sku, user, qty, idempotency_key=key, client_ip=client_ip(request), request_id=rid
            )
        except (InvalidRequest, UnknownSku, EngineClosed):
            return None  # raised before anything was recorded or tried: the route answers it
        response = _answer(app, sku, outcome, rid)
        durations.observe(outcome.result, clock() - started)
        return response

    def lane(request: web.Request) -> Awaitable[web.Response | None] | None:
        if request.raw_path != "/v1/purchase" or request.method != "POST" or not body_arrived(request, max_body):
            return None
        return answer(request)

    return lane


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
        named = body_buyer(data)
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
