"""The live stock feeds and the admin API in the OpenAPI document (transport/_feed.py, transport/_admin.py)."""

from __future__ import annotations

from flashsale import Config

from ._openapi_kit import (
    BAD_BODY,
    NOT_FOUND,
    SIGN_IN,
    TOO_LARGE,
    UNAVAILABLE,
    Op,
    Schema,
    fails,
    ok,
    ref,
    sku_id,
)

EVENT_STREAM = "text/event-stream"
OVERLOADED = fails("This process already serves [feed] max_listeners feeds; retry shortly.", "overloaded")
UNKNOWN_SKU = fails("There is no such SKU in this sale.", "unknown_sku", "not_found")
SCOPE = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {"rate": {"type": "number", "exclusiveMinimum": 0}, "burst": {"type": "integer", "minimum": 1}},
}
LIMITS: Schema = {
    "type": "object",
    "required": ["limits"],
    "properties": {
        "limits": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["algorithm", "rate", "burst", "queue"],
                "properties": {
                    "algorithm": {"enum": ["token", "leaky"]},
                    "rate": {"type": "number"},
                    "burst": {"type": "integer"},
                    "queue": {"type": "integer"},
                },
            },
        }
    },
}


def feed_and_admin_operations(config: Config) -> list[Op]:
    """The live stock feeds and the admin API (transport/_feed.py, transport/_admin.py)."""
    sku_param = {"sku": sku_id(config)}
    stream = ok(
        "Server-Sent Events: `event: sku` with the SKU's JSON (as GET /v1/skus/{sku}) for each SKU, then one per"
        " change (at most [feed] max_rate per SKU per second); `: ping` comment lines keep the stream open."
        " The schema is one event's (OpenAPI 3.1 reads a stream's schema per event).",
        ref("SkuEvent"),
        media=EVENT_STREAM,
    )
    ops = [
        Op("GET", "/v1/events", "Live stock of every SKU (Server-Sent Events)", tag="feed",
           answers={200: stream, 400: BAD_BODY, 503: OVERLOADED}),
        Op("GET", "/v1/skus/{sku}/events", "Live stock of one SKU (Server-Sent Events)", tag="feed",
           path_schemas=sku_param, answers={200: stream, 400: BAD_BODY, 404: UNKNOWN_SKU, 503: OVERLOADED}),
    ]  # fmt: skip
    for action, what in (
        ("pause", "Pause a SKU: purchases answer 409 sale_paused"),
        ("resume", "Resume a paused SKU"),
        ("end", "End a SKU's sale now: purchases answer 409 sale_not_open"),
    ):
        answers = {200: ok("The SKU after the change.", ref("SkuStatus")), 401: SIGN_IN, 404: UNKNOWN_SKU}
        answers[503] = UNAVAILABLE
        ops.append(
            Op(
                "POST",
                f"/v1/admin/skus/{{sku}}/{action}",
                what,
                tag="admin",
                security="admin",
                path_schemas=sku_param,
                answers=answers,
            )
        )
    ops += [
        Op("POST", "/v1/admin/skus/{sku}/restock", "Add units to a SKU", tag="admin", security="admin",
           path_schemas=sku_param,
           body={"type": "object", "required": ["qty"], "additionalProperties": False,
                 "properties": {"qty": {"type": "integer", "minimum": 1, "maximum": 1_000_000_000}}},
           answers={200: ok("The SKU after the restock.", ref("SkuStatus")), 400: BAD_BODY, 401: SIGN_IN,
                    404: UNKNOWN_SKU, 413: TOO_LARGE, 503: UNAVAILABLE}),
        Op("PUT", "/v1/admin/limits", "Change configured rate-limit scopes' rate and burst live", tag="admin",
           security="admin",
           body={"type": "object", "additionalProperties": False, "minProperties": 1,
                 "properties": dict.fromkeys(("global", "per_sku", "per_user", "per_ip"), SCOPE)},
           answers={200: ok("Every scope in force, after the change.", LIMITS), 400: BAD_BODY, 401: SIGN_IN,
                    404: NOT_FOUND, 409: fails("The config has no such scope.", "not_configured"),
                    413: TOO_LARGE, 503: UNAVAILABLE}),
        Op("GET", "/v1/admin/overview", "Everything the dashboard shows, as JSON", tag="admin", security="admin",
           answers={200: ok("The sale now, as this worker sees it.", {"type": "object", "required": ["skus"]}),
                    401: SIGN_IN, 404: NOT_FOUND}),
    ]  # fmt: skip
    return ops
