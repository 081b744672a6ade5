"""``GET /openapi.json``: the OpenAPI 3.1 document of this server, and the check that it matches the router.

The document is built once per app, with the app, from the entries in
:mod:`._openapi_routes` and the app's :class:`~flashsale.Config`, and
served as cached bytes. :func:`router_operations` lists what the app's
router really answers, so a test (and anyone else) can compare the two:
:func:`drift` names every route without an entry and every entry without a
route.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version

import orjson
from aiohttp import web

from flashsale import Config

from ._handlers import guarded
from ._openapi_kit import Schema, build_document
from ._openapi_routes import operations, schemas

OPENAPI = web.AppKey("openapi", bytes)

_CATCH_ALL = "/{tail}"
_GROUP = re.compile(r"\(\?P<(\w+)>((?:[^()]|\([^()]*\))*)\)")  # a named group, one level of nesting
_WORDS = re.compile(r"[\w-]+(?:\|[\w-]+)*")  # pay|cancel: a choice of fixed words


def document(config: Config) -> Schema:
    """The OpenAPI 3.1 document for a server of ``config``."""
    try:
        release = version("flashsale")
    except PackageNotFoundError:  # running from a source tree that is not installed
        release = "0+unknown"
    return build_document(operations(config), schemas(config), title="flashsale", version=release, auth=config.auth)


def router_operations(app: web.Application) -> set[tuple[str, str]]:
    """Every ``(METHOD, path)`` the app routes, with alternations spelled out.

    ``{action:pay|cancel}`` is two paths; any other regex is a plain
    ``{name}``. HEAD (added by aiohttp beside each GET) and the catch-all
    that answers JSON 404/405s are not routes of the API.
    """
    found: set[tuple[str, str]] = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        if route.method == "HEAD" or info.get("formatter") == _CATCH_ALL:
            continue
        pattern = info.get("pattern")
        paths = _spell_out(pattern.pattern) if pattern is not None else [info.get("path", "")]
        found.update((route.method, path) for path in paths)
    return found


def _spell_out(pattern: str) -> list[str]:
    """The OpenAPI paths a route's regex matches: ``/o/(?P<id>[^{}/]+)/(?P<a>pay|cancel)`` is two."""
    match = _GROUP.search(pattern)
    if match is None:
        return [_unescape(pattern)]
    head, name, body, tail = _unescape(pattern[: match.start()]), match.group(1), match.group(2), pattern[match.end() :]
    choices = body.split("|") if _WORDS.fullmatch(body) else [f"{{{name}}}"]
    return [head + choice + rest for choice in choices for rest in _spell_out(tail)]


def _unescape(text: str) -> str:
    """Undo :func:`re.escape` on the fixed parts of a route's regex."""
    return re.sub(r"\\(.)", r"\1", text)


def drift(app: web.Application, doc: Schema) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """``(routed but undocumented, documented but not routed)`` for ``app`` and ``doc``."""
    documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    routed = router_operations(app)
    return routed - documented, documented - routed


async def openapi_json(request: web.Request) -> web.Response:
    """The document, built when the app was."""
    return web.Response(
        body=request.app[OPENAPI], content_type="application/json", headers={"Cache-Control": "no-cache"}
    )


def add_openapi(app: web.Application, config: Config) -> None:
    """Serve ``GET /openapi.json`` from ``app`` (before the catch-all route)."""
    app[OPENAPI] = orjson.dumps(document(config))
    app.router.add_get("/openapi.json", guarded(openapi_json))
