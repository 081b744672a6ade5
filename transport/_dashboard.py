"""``/dashboard``: the operator's page, served by flashsale itself, behind the admin token.

The page and its assets (hand-written HTML, CSS, JavaScript and SVG in
``transport/static/dashboard/``, package data: no CDN, no build step) are
read once when the app is built. Without a session ``GET /dashboard`` is the
sign-in form; the form posts the token to ``POST /dashboard/session``,
which sets the session cookie (:mod:`._dashboard_session`). The page then
reads ``GET /dashboard/state`` every second, follows the stock feed
(``GET /v1/events``) when the server has one, and steers through the admin
API with its cookie. Without an admin token every dashboard route is a 404,
as the admin API is.

Routes:

- ``GET /dashboard``: the page, or the sign-in form.
- ``GET /dashboard/assets/{name}``: a script, style sheet or picture.
- ``POST /dashboard/session`` ``{"token"}``: sign in (204 and the cookie; 401).
- ``DELETE /dashboard/session``: sign out.
- ``GET /dashboard/state``: :func:`._dashboard_state.state_json` (401 without a session).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

import orjson
from aiohttp import web

from ._dashboard_session import SessionSigner, clear_cookie
from ._dashboard_state import SAMPLER, SalesSampler, run_sampler, state_json
from ._handlers import guarded, refuse
from ._render import json_response

_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
}
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_MAX_TOKEN = 1024


@dataclass(slots=True)
class Asset:
    body: bytes
    content_type: str


def load_assets() -> dict[str, Asset]:
    """Every file of ``static/dashboard`` (package data), by name."""
    folder = files("flashsale.transport").joinpath("static", "dashboard")
    assets: dict[str, Asset] = {}
    for entry in folder.iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        if entry.is_file() and suffix in _TYPES:
            assets[entry.name] = Asset(entry.read_bytes(), _TYPES[suffix])
    return assets


@dataclass(slots=True)
class Dashboard:
    """The dashboard of one app: its signer (``None``: no admin token, no dashboard) and assets."""

    signer: SessionSigner | None
    assets: dict[str, Asset]


DASHBOARD = web.AppKey("dashboard", Dashboard)


def _signer(request: web.Request) -> SessionSigner:
    signer = request.app[DASHBOARD].signer
    if signer is None:
        raise web.HTTPNotFound
    return signer


def _asset_response(asset: Asset, headers: dict[str, str]) -> web.Response:
    return web.Response(body=asset.body, content_type=asset.content_type, headers=headers)


async def page(request: web.Request) -> web.StreamResponse:
    signer = _signer(request)
    name = "dashboard.html" if signer.signed_in(request) else "signin.html"
    return _asset_response(request.app[DASHBOARD].assets[name], _PAGE_HEADERS)


async def asset(request: web.Request) -> web.StreamResponse:
    _signer(request)
    found = request.app[DASHBOARD].assets.get(request.match_info["name"])
    if found is None or found.content_type == "text/html":
        raise web.HTTPNotFound
    return _asset_response(found, {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


async def sign_in(request: web.Request) -> web.StreamResponse:
    signer = _signer(request)
    raw = await request.read()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return refuse(request, f"the body is not valid JSON: {exc.msg} at position {exc.pos}")
    if type(data) is not dict or data.keys() != {"token"}:
        return refuse(request, 'the body must be a JSON object like {"token": "<the admin token>"}')
    token = data["token"]
    if type(token) is not str or not 0 < len(token) <= _MAX_TOKEN:
        return refuse(request, f"'token' must be a string of 1 to {_MAX_TOKEN} characters")
    if not signer.token_ok(token):
        return refuse(request, "that is not the admin token", "unauthenticated", 401)
    response = web.Response(status=204, headers={"Cache-Control": "no-store"})
    signer.set_cookie(request, response)
    return response


async def sign_out(request: web.Request) -> web.StreamResponse:
    _signer(request)
    response = web.Response(status=204, headers={"Cache-Control": "no-store"})
    clear_cookie(response)
    return response


async def state(request: web.Request) -> web.StreamResponse:
    if not _signer(request).signed_in(request):
        return refuse(request, "sign in at /dashboard first", "unauthenticated", 401)
    return json_response(200, await state_json(request.app), {"Cache-Control": "no-store"})


def add_dashboard(app: web.Application, token: str | None) -> None:
    """Serve the dashboard from ``app`` when there is an admin ``token`` (before the catch-all route)."""
    app[DASHBOARD] = Dashboard(None if token is None else SessionSigner(token), load_assets())
    app[SAMPLER] = SalesSampler()
    app.router.add_get("/dashboard", guarded(page))
    app.router.add_get("/dashboard/assets/{name}", guarded(asset))
    app.router.add_post("/dashboard/session", guarded(sign_in))
    app.router.add_delete("/dashboard/session", guarded(sign_out))
    app.router.add_get("/dashboard/state", guarded(state))
    app.cleanup_ctx.append(run_sampler)
