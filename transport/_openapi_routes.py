"""Every route of the HTTP API, documented: one :class:`Op` entry per method and path, all listed by :func:`operations`.

The waiting room's entries are in ``_room_openapi.py``, the feeds' and the
admin API's in ``_admin_openapi.py``, the front door's in ``_front_openapi.py``.
Adding a route? Add its entry to :func:`operations` or to its group's module
(and any shared body to :func:`schemas`). ``tests/transport/test_openapi.py`` fails while a route of
the app has no entry here, or an entry names a route the app does not have.
Entries that depend on the sale (the largest ``qty``, the body limit) read
it from the :class:`~flashsale.Config` the document is built for.
"""

from __future__ import annotations

from flashsale import Config

from ._admin_openapi import feed_and_admin_operations
from ._front_openapi import front_door_operations
from ._openapi_kit import (
    BAD_BODY,
    BUYER,
    COUNT,
    JSON,
    MOMENT,
    NOT_FOUND,
    SIGN_IN,
    TOO_LARGE,
    UNAVAILABLE,
    Op,
    Param,
    Schema,
    buyer_answers,
    buyer_param,
    combined,
    fails,
    nullable,
    ok,
    ref,
    sku_id,
)
from ._room_openapi import room_operations


def schemas(config: Config) -> dict[str, Schema]:
    """The bodies several entries share (``components/schemas``)."""
    return {
        "SkuStatus": {
            "type": "object",
            "required": ["sku", "stock", "remaining", "reserved", "paid", "state", "starts_at", "ends_at"],
            "properties": {
                "sku": {"type": "string"},
                "stock": COUNT,
                "remaining": COUNT,
                "reserved": COUNT,
                "paid": COUNT,
                "state": {"enum": ["scheduled", "on_sale", "paused", "sold_out", "ended"]},
                "starts_at": nullable(MOMENT),
                "ends_at": nullable(MOMENT),
            },
        },
        "Order": {
            "type": "object",
            "required": ["order_id", "sku", "user", "qty", "status", "created_at", "expires_at"],
            "properties": {
                "order_id": {"type": "string"},
                "sku": {"type": "string"},
                "user": {"type": "string"},
                "qty": {"type": "integer", "minimum": 1},
                "status": {"enum": ["reserved", "paid", "cancelled", "expired"]},
                "created_at": MOMENT,
                "expires_at": MOMENT,
            },
        },
        "Purchase": {
            "type": "object",
            "required": ["sku", "user"] if config.auth.mode == "trusted" else ["sku"],  # [auth]: who is buying
            "additionalProperties": False,
            "properties": {
                "sku": {"type": "string", "minLength": 1, "examples": [s.id for s in config.skus[:3]]},
                "user": BUYER,
                "qty": {"type": "integer", "minimum": 1, "maximum": config.limits.max_qty, "default": 1},
            },
        },
        "Reserved": {
            "type": "object",
            "required": ["result", "order_id", "sku", "qty", "expires_at"],
            "properties": {
                "result": {"const": "reserved"},
                "order_id": {"type": "string"},
                "sku": {"type": "string"},
                "qty": {"type": "integer", "minimum": 1},
                "expires_at": MOMENT,
            },
        },
        "SkuEvent": {
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"const": "sku"},
                "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": ref("SkuStatus")},
            },
        },
        "Readiness": {
            "type": "object",
            "required": ["ready", "checks"],
            "properties": {
                "ready": {"type": "boolean"},
                "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
            },
        },
        "DashboardState": {
            "type": "object",
            "required": ["skus", "sales", "answers", "inflight", "backlog", "readiness", "latency", "feed"],
            "properties": {
                "skus": {"type": "array", "items": ref("SkuStatus")},
                "sales": {
                    "type": "object",
                    "required": ["interval", "per_interval"],
                    "properties": {
                        "interval": {"type": "number", "exclusiveMinimum": 0},
                        "per_interval": {"type": "array", "items": COUNT},
                    },
                },
                "answers": {"type": "object", "additionalProperties": COUNT},
                "inflight": {
                    "type": "object",
                    "required": ["value", "limit"],
                    "properties": {"value": COUNT, "limit": COUNT},
                },
                "backlog": {
                    "type": "object",
                    "required": ["name", "value", "limit"],
                    "properties": {"name": {"type": "string"}, "value": COUNT, "limit": COUNT},
                },
                "readiness": ref("Readiness"),
                "latency": {
                    "type": "object",
                    "required": ["p50", "p99", "count"],
                    "properties": {
                        "p50": nullable({"type": "number"}),
                        "p99": nullable({"type": "number"}),
                        "count": COUNT,
                    },
                },
                "feed": {"type": "boolean"},
                "room": nullable({"type": "object"}),
            },
        },
    }


def _buyer_body(config: Config) -> Schema:
    """The pay/cancel body: the buyer, required where the gateway names it ([auth] mode = trusted)."""
    return {
        "type": "object",
        "required": ["user"] if config.auth.mode == "trusted" else [],
        "additionalProperties": False,
        "properties": {"user": BUYER},
    }


_PASS_REFUSED = fails(
    "With a waiting room: no Admission-Pass, or one that is forged, expired or another buyer's.",
    "admission_required",
    "invalid_pass",
)


def operations(config: Config) -> list[Op]:
    """One entry per route of the app."""
    sku_param = {"sku": sku_id(config)}
    who = buyer_answers(config)
    return [
        Op(
            "POST",
            "/v1/purchase",
            "Reserve units of a SKU for a buyer",
            tag="sale",
            security="buyer",
            body=ref("Purchase"),
            params=[
                Param(
                    "Idempotency-Key",
                    "header",
                    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
                    "Retrying with the same key returns the first answer; the same key with another body is 422.",
                )
            ],
            answers=combined(
                who,
                {} if config.waiting_room is None else {403: _PASS_REFUSED},
                {
                    200: ok("Reserved: the order exists and holds the units until expires_at.", ref("Reserved")),
                    400: BAD_BODY,
                    404: fails("There is no such SKU in this sale.", "unknown_sku", extra={"sku": {"type": "string"}}),
                    409: fails(
                        "Not sold: the SKU is sold out, the buyer's limit is reached, or the sale is not open.",
                        "sold_out",
                        "limit_reached",
                        "sale_not_open",
                        "sale_paused",
                        extra={"sku": {"type": "string"}, "starts_at": nullable(MOMENT), "ends_at": nullable(MOMENT)},
                    ),
                    413: TOO_LARGE,
                    422: fails("This Idempotency-Key was used with another body.", "idempotency_key_reused"),
                    429: fails(
                        "Too many requests in one of the rate-limit scopes; retry after Retry-After seconds.",
                        "rate_limited",
                        extra={"retry_after": {"type": "number", "minimum": 0}},
                        headers={"Retry-After": {"type": "string", "pattern": "^[0-9]+$"}},
                    ),
                    503: fails("Overloaded or unavailable; nothing was bought.", "overloaded", "unavailable"),
                },
            ),
        ),
        *front_door_operations(),
        *room_operations(config),  # transport/_room_openapi.py
        Op(
            "GET",
            "/v1/skus/{sku}",
            "A SKU's stock counters and sale state",
            tag="sale",
            path_schemas=sku_param,
            answers={
                200: ok("The SKU now.", ref("SkuStatus")),
                404: fails("There is no such SKU in this sale.", "unknown_sku", "not_found"),
            },
        ),
        Op(
            "GET",
            "/v1/orders/{order_id}",
            "An order",
            tag="orders",
            security="buyer",
            params=[
                buyer_param(
                    config,
                    "The buyer, named by the gateway ([auth] mode = trusted, where it is required);"
                    " another buyer's order is 404.",
                )
            ],
            answers={
                200: ok("The order.", ref("Order")),
                **who,
                400: BAD_BODY,
                404: fails("There is no such order.", "unknown_order", "not_found"),
                503: UNAVAILABLE,
            },
        ),
        *(
            Op(
                "POST",
                f"/v1/orders/{{order_id}}/{action}",
                f"Mark a reserved order {done}",
                tag="orders",
                security="buyer",
                body=_buyer_body(config),
                answers={
                    200: ok(f"The order, now {done}.", ref("Order")),
                    **who,
                    400: BAD_BODY,
                    404: fails("There is no such order.", "unknown_order", "not_found"),
                    409: fails(
                        "The order is not reserved any more, or its payment time ran out.",
                        "invalid_transition",
                        extra={"order": ref("Order")},
                    ),
                    503: UNAVAILABLE,
                },
            )
            for action, done in (("pay", "paid"), ("cancel", "cancelled"))
        ),
        Op(
            "GET",
            "/healthz",
            "Liveness",
            tag="operations",
            answers={
                200: ok(
                    "The process answers.",
                    {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
                )
            },
        ),
        Op(
            "GET",
            "/readyz",
            "Readiness, with each check",
            tag="operations",
            answers={200: ok("Every check passes.", ref("Readiness")), 503: ok("A check fails.", ref("Readiness"))},
        ),
        Op(
            "GET",
            "/metrics",
            "Prometheus metrics (text exposition format)",
            tag="operations",
            answers={200: ok("The metrics.", {"type": "string"}, media="text/plain")},
        ),
        Op(
            "GET",
            "/openapi.json",
            "This document",
            tag="operations",
            answers={
                200: ok(
                    "The OpenAPI 3.1 document of this server.", {"type": "object", "required": ["openapi", "paths"]}
                )
            },
        ),
        Op(
            "GET",
            "/dashboard",
            "The operator's dashboard (a sign-in form without a session)",
            tag="dashboard",
            answers={200: ok("The page.", {"type": "string"}, media="text/html"), 404: NOT_FOUND},
        ),
        Op(
            "GET",
            "/dashboard/assets/{name}",
            "The dashboard's scripts, styles and pictures (shipped in the package)",
            tag="dashboard",
            answers={
                200: ok("The asset.", {"type": "string"}, media="*/*"),
                404: fails("No such asset (or the admin token is not configured).", "not_found"),
            },
        ),
        Op(
            "POST",
            "/dashboard/session",
            "Sign in to the dashboard with the admin token",
            tag="dashboard",
            body={
                "type": "object",
                "required": ["token"],
                "additionalProperties": False,
                "properties": {"token": {"type": "string", "minLength": 1, "maxLength": 1024}},
            },
            answers={
                204: ok("Signed in: the session cookie is set.", set_cookie=True),
                400: BAD_BODY,
                401: fails("That is not the admin token.", "unauthenticated"),
                404: NOT_FOUND,
                413: TOO_LARGE,
            },
        ),
        Op(
            "DELETE",
            "/dashboard/session",
            "Sign out of the dashboard",
            tag="dashboard",
            answers={204: ok("Signed out: the session cookie is cleared.", set_cookie=True), 404: NOT_FOUND},
        ),
        Op(
            "GET",
            "/dashboard/state",
            "Everything the dashboard shows, as JSON",
            tag="dashboard",
            security="dashboard",
            answers={
                200: ok("The sale now, as this worker sees it.", ref("DashboardState")),
                401: SIGN_IN,
                404: NOT_FOUND,
            },
        ),
        *feed_and_admin_operations(config),
    ]


__all__ = ["JSON", "operations", "schemas"]
