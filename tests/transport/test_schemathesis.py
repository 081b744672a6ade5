"""schemathesis holds a real server to its own OpenAPI document: no 5xx, every answer as documented.

The document is the one the server serves (``test_openapi.py`` pins that
``GET /openapi.json`` is exactly :func:`document` of the server's config);
schemathesis reads it here at collection time, so each route is a test of
its own. Every case is sent over a real socket to a server started by a
fixture. schemathesis's default checks all run: no server error, status
codes, content types, headers and bodies as documented, invalid input
refused with a 4xx, valid input not refused as invalid, undocumented
methods answered 405 with ``Allow``. The buyer's routes (purchase, an order,
pay, cancel) are fuzzed again with buyers proven by a JWT (``[auth] mode =
"jwt"``: schemathesis sends the token through the document's
``buyerBearer`` scheme) and named by a gateway's header (``mode =
"header"``, ``buyerHeader``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from flashsale import Config, ServerConfig, SkuConfig, StoreConfig
from flashsale.config import AuthConfig
from flashsale.transport._dashboard_session import SessionSigner
from flashsale.transport._openapi import document

from .live import LiveServer, live_server

TOKEN = "schemathesis-admin-token-0123"
JWT_SECRET = "schemathesis-jwt-secret-of-32-bytes-at-least"
BUYER_TOKEN = jwt.encode({"sub": "schemathesis-buyer", "exp": int(time.time()) + 3600}, JWT_SECRET, algorithm="HS256")


JWT = AuthConfig(mode="jwt", jwt_secret=JWT_SECRET)
HEADER = AuthConfig(mode="header")


def sale(path: Path | str = "orders.db", auth: AuthConfig | None = None) -> Config:
    """A deep SKU (purchases keep succeeding) and a shallow one (sold out and limits show up).

    With ``auth``, buyers prove who they are (header mode trusts this host: the fuzzer is the gateway).
    """
    return Config(
        skus=(SkuConfig("moutai-53", stock=2, per_user_limit=1), SkuConfig("tshirt", stock=1_000_000)),
        store=StoreConfig(path=str(path)),
        auth=auth or AuthConfig(),
        server=ServerConfig(trusted_proxies=("127.0.0.1",) if auth is not None and auth.mode == "header" else ()),
    )


# Valid input may still be refused as a conflict (an Idempotency-Key reused with another body: 422);
# input too large for server.max_body_bytes is refused before it is read (413).
CHECKS = {
    "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]},
    "negative_data_rejection": {"expected-statuses": ["400", "401", "403", "404", "405", "409", "413", "422", "429"]},
}
# The security schemes get real credentials: schemathesis leaves them out where it tests refusals.
AUTH = {"dashboardSession": {"api_key": SessionSigner(TOKEN).issue()}, "adminBearer": {"bearer": TOKEN}}
schema = schemathesis.openapi.from_dict(
    document(sale()),
    # A feed never ends: schemathesis reads its first event, checks it against the document, and hangs up.
    config=SchemathesisConfig.from_dict({"checks": CHECKS, "auth": {"openapi": AUTH}, "max-stream-events": 1}),
)


def _whole_numbers_as_integers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers_as_integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers_as_integers(v) for v in value]
    return value


@schema.hook
def map_body(context: Any, body: Any) -> Any:
    """Integers are written as integers: flashsale refuses ``1.0`` where it takes a count (the README's
    purchase body), a stricter reading than JSON Schema's, where ``1.0`` is an integer. Cases that spell one
    so are sent as ``1``; tests/transport/test_bad_input.py pins that ``1.0`` gets a 400."""
    return _whole_numbers_as_integers(body)


def buyer_routes(auth: AuthConfig, credential: dict[str, Any]) -> Any:
    """The buyer's routes (purchase, an order, pay, cancel) of a sale whose buyers prove who they are.

    A gateway's header has no wrong value to try (any name it sends is the
    buyer), so schemathesis's "invalid credentials" check runs for the JWT only.
    """
    checks: dict[str, Any] = dict(CHECKS)
    if auth.mode == "header":
        checks["ignored_auth"] = {"enabled": False}
    config = {"checks": checks, "auth": {"openapi": {**AUTH, **credential}}}
    found = schemathesis.openapi.from_dict(document(sale(auth=auth)), config=SchemathesisConfig.from_dict(config))
    found.hook(map_body)
    return found.include(path_regex="^/v1/(purchase|orders/)")


proven = buyer_routes(JWT, {"buyerBearer": {"bearer": BUYER_TOKEN}})
forwarded = buyer_routes(HEADER, {"buyerHeader": {"api_key": "schemathesis-buyer"}})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """The sale on a real socket, with an admin token."""
    with live_server(sale(tmp_path / "orders.db"), TOKEN) as live:
        yield live


@pytest.fixture
def jwt_server(tmp_path: Path) -> Iterator[LiveServer]:
    """The same sale whose buyers are proven by a JWT signed with :data:`JWT_SECRET`."""
    with live_server(sale(tmp_path / "orders.db", JWT), TOKEN) as live:
        yield live


@pytest.fixture
def header_server(tmp_path: Path) -> Iterator[LiveServer]:
    """The same sale whose buyers are named by a gateway's X-User-Id header."""
    with live_server(sale(tmp_path / "orders.db", HEADER), TOKEN) as live:
        yield live


FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
"""Examples per test; no deadline and no health checks: each example is a real request to a real server."""


@schema.parametrize()
@FUZZ
def test_every_route_answers_as_documented(case: Any, server: LiveServer) -> None:
    """Every generated request gets a documented answer, never a 5xx."""
    case.call_and_validate(base_url=server.url, timeout=10)


@proven.parametrize()
@FUZZ
def test_the_buyer_routes_with_jwt_buyers_answer_as_documented(case: Any, jwt_server: LiveServer) -> None:
    """With [auth] mode = "jwt" every generated request to a buyer's route gets a documented answer, never a 5xx."""
    case.call_and_validate(base_url=jwt_server.url, timeout=10)


@forwarded.parametrize()
@FUZZ
def test_the_buyer_routes_with_gateway_buyers_answer_as_documented(case: Any, header_server: LiveServer) -> None:
    """With [auth] mode = "header" every generated request to a buyer's route gets a documented answer, never a 5xx."""
    case.call_and_validate(base_url=header_server.url, timeout=10)
