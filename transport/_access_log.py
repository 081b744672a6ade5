"""The access log: one structlog line per request, behind ``server.access_log`` (off by default).

When it is off, aiohttp is given no access logger at all (``access_log=None``),
so a request costs nothing for it. When it is on, aiohttp calls
:class:`AccessLog` after each response with the time the request took; the
line carries method, path, status, latency in milliseconds and the request
id (the response's ``X-Request-Id``, which every route sets).
"""

from __future__ import annotations

import logging
from typing import Any

import structlog
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from flashsale import ServerConfig

log = structlog.get_logger("flashsale.access")


class AccessLog(AbstractAccessLogger):
    """aiohttp's access-logger hook, writing structlog lines instead of formatted text."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=response.status,
            ms=round(time * 1000, 3),
            request_id=response.headers.get("X-Request-Id"),
        )


def access_log_settings(server: ServerConfig) -> dict[str, Any]:
    """The ``web.run_app`` keywords for ``server.access_log``: our logger when on, none at all when off."""
    if not server.access_log:
        return {"access_log": None}
    return {"access_log": logging.getLogger("flashsale.access"), "access_log_class": AccessLog}
