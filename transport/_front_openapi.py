"""The front door in the OpenAPI document: ``GET /`` and ``GET /v1/skus`` (transport/_front.py)."""

from __future__ import annotations

from ._openapi_kit import Op, Schema, nullable, ok, ref


def front_door_operations() -> list[Op]:
    """``GET /`` (a page for a person) and ``GET /v1/skus`` (transport/_front.py)."""
    listed: Schema = {
        "allOf": [
            ref("SkuStatus"),
            {
                "type": "object",
                "required": ["name", "per_user_limit"],
                "properties": {
                    "name": {"type": "string"},
                    "per_user_limit": nullable({"type": "integer", "minimum": 1}),
                },
            },
        ]
    }
    return [
        Op(
            "GET",
            "/",
            "The sale at a glance: an HTML page (send Accept: application/json for the same as JSON)",
            tag="sale",
            answers={
                200: ok(
                    "A small HTML page: the SKUs and their state, and links.", {"type": "string"}, media="text/html"
                )
            },
        ),
        Op(
            "GET",
            "/v1/skus",
            "Every SKU with its stock counters and sale state, in config order",
            tag="sale",
            answers={
                200: ok(
                    "Every SKU.",
                    {
                        "type": "object",
                        "required": ["skus"],
                        "properties": {"skus": {"type": "array", "items": listed}},
                    },
                )
            },
        ),
    ]
