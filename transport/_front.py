"""The front door for people: ``GET /`` (the sale at a glance) and ``GET /v1/skus`` (every SKU and its state).

``GET /`` answers a browser with a small HTML page (no scripts, no assets)
and ``Accept: application/json`` with the same facts as JSON. Both read the
engine's published SKU views, like ``GET /v1/skus/{sku}``: no actor message.
"""

from __future__ import annotations

import html
import importlib.metadata
from typing import Any

from aiohttp import web

from ._handlers import ENGINE, guarded
from ._render import json_response, sku_json

routes = web.RouteTableDef()

LINKS = {
    "skus": "/v1/skus",
    "api": "/openapi.json",
    "dashboard": "/dashboard",
    "health": "/healthz",
    "ready": "/readyz",
    "metrics": "/metrics",
}
"""Where a person or a client goes next. The API description and the dashboard are served by their own modules."""

_LINK_TEXT = {
    "skus": "every SKU as JSON",
    "api": "the API description (OpenAPI)",
    "dashboard": "the dashboard",
    "health": "liveness",
    "ready": "readiness, check by check",
    "metrics": "Prometheus metrics",
}


def _version() -> str:
    try:
        return importlib.metadata.version("flashsale")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


async def _skus(request: web.Request) -> list[dict[str, Any]]:
    engine = request.app[ENGINE]
    listed = []
    for sku in engine.config.skus:
        item = sku_json(await engine.sku_status(sku.id))
        item["name"] = sku.name
        item["per_user_limit"] = sku.per_user_limit
        listed.append(item)
    return listed


@routes.get("/v1/skus")
@guarded
async def list_skus(request: web.Request) -> web.Response:
    return json_response(200, {"skus": await _skus(request)})


def _wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


@routes.get("/")
@guarded
async def front_page(request: web.Request) -> web.Response:
    skus = await _skus(request)
    version = _version()
    if _wants_json(request):
        return json_response(200, {"service": "flashsale", "version": version, "skus": skus, "links": LINKS})
    return web.Response(text=_page(skus, version), content_type="text/html", charset="utf-8")


def _page(skus: list[dict[str, Any]], version: str) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td><code>{e(s['sku'])}</code></td><td>{e(s['name'])}</td><td>{s['state'].replace('_', ' ')}</td>"
        f"<td>{s['remaining']:,} of {s['stock']:,}</td><td>{s['per_user_limit'] or '-'}</td>"
        f"<td>{e(s['starts_at'] or '-')}</td><td>{e(s['ends_at'] or '-')}</td></tr>"
        for s in skus
    )
    links = "".join(f'<li><a href="{LINKS[k]}">{LINKS[k]}</a>: {_LINK_TEXT[k]}</li>' for k in LINKS)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flashsale</title>
<style>body{{font-family:system-ui,sans-serif;max-width:56rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse}}td,th{{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}}</style>
</head><body>
<h1>flashsale</h1>
<p>A flash sale is running here. Buy with <code>POST /v1/purchase</code>
and a JSON body like <code>{{"sku": "{e(skus[0]["sku"]) if skus else "..."}", "user": "alice", "qty": 1}}</code>.</p>
<table><thead><tr><th>SKU</th><th>name</th><th>state</th><th>remaining</th><th>per buyer</th>
<th>starts</th><th>ends</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>More</h2>
<ul>{links}</ul>
<p><small>flashsale {e(version)}</small></p>
</body></html>
"""
