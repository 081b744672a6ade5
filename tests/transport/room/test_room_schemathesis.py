"""schemathesis holds every waiting-room route, buyer's and admin's, to the document on a server whose room runs.

(tests/transport/test_schemathesis.py fuzzes every route on a sale without a
room, where these answer 404, 401 or 409 not_configured; here they act.) The
room is fuzzed in its pre-queue and while admitting, without and with proof
of work, with buyers proven by a JWT (``[auth] mode = "jwt"``: the
document's ``buyerBearer`` scheme, which schemathesis fills with a token),
and with buyers named by a gateway's header (``buyerHeader``).
Half the valid polls name a ticket a buyer really holds (``map_case``
below), so the ticket routes answer 200 as well as 404.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from flashsale import Config, ServerConfig, SkuConfig, StoreConfig, wall_clock
from flashsale.config import AuthConfig, RoomConfig
from flashsale.transport._dashboard_session import SessionSigner
from flashsale.transport._openapi import document

from ..live import LiveServer, live_server  # noqa: TID252 - the shared live-server helper

TOKEN = "schemathesis-admin-token-0123"
MINUTE = 60_000_000
POSITIVE = ["2xx", "401", "403", "404", "409", "422", "429"]
NEGATIVE = ["400", "401", "403", "404", "405", "409", "413", "422", "429"]
AUTH = {"dashboardSession": {"api_key": SessionSigner(TOKEN).issue()}, "adminBearer": {"bearer": TOKEN}}
HOLDER = "schemathesis-holder"
JWT_SECRET = "schemathesis-jwt-secret-of-32-bytes-at-least"
HOLDER_TOKEN = jwt.encode({"sub": HOLDER, "exp": int(time.time()) + 3600}, JWT_SECRET, algorithm="HS256")
held: dict[str, str] = {}  # the ticket HOLDER holds on the server under test: {"ticket": ..., "user": ...}


def sale(
    path: Path | str = "orders.db", *, state: str = "admitting", pow_bits: int = 0, auth: str = "trusted"
) -> Config:
    """A sale whose waiting room has been admitting for a minute, or is in its pre-queue for another hour.

    With ``auth="jwt"`` its buyers are proven by a token signed with :data:`JWT_SECRET`; with
    ``auth="header"`` they are named by ``X-User-Id`` from this host.
    """
    now = wall_clock()
    starts = now - MINUTE if state == "admitting" else now + 60 * MINUTE
    room = RoomConfig(starts_at=starts, opens_at=now - 2 * MINUTE, admit_rate=100.0, admit_burst=100, pow_bits=pow_bits)
    who = {"jwt": AuthConfig(mode="jwt", jwt_secret=JWT_SECRET), "header": AuthConfig(mode="header")}.get(
        auth, AuthConfig()
    )
    return Config(
        skus=(SkuConfig("moutai-53", stock=1_000_000),),
        store=StoreConfig(path=str(path)),
        waiting_room=room,
        auth=who,
        server=ServerConfig(trusted_proxies=("127.0.0.1",) if auth == "header" else ()),  # the fuzzer is the gateway
    )


def room_schema(pow_bits: int, auth: str = "trusted") -> Any:
    """The room's routes of the document a server of ``sale(pow_bits=..., auth=...)`` serves.

    With proof of work a join whose body fits the document is still refused
    400 unless its nonce solves a challenge the room issued: a proof is
    checked by the room, not by the document.
    """
    positive = [*POSITIVE, "400"] if pow_bits else POSITIVE
    checks = {
        "positive_data_acceptance": {"expected-statuses": positive},
        "negative_data_rejection": {"expected-statuses": NEGATIVE},
    }
    credential = {"jwt": {"buyerBearer": {"bearer": HOLDER_TOKEN}}, "header": {"buyerHeader": {"api_key": HOLDER}}}
    schemes = {**AUTH, **credential.get(auth, {})}
    if auth == "header":  # any name a gateway sends is a buyer: there is no wrong value to try
        checks["ignored_auth"] = {"enabled": False}
    config = SchemathesisConfig.from_dict({"checks": checks, "auth": {"openapi": schemes}, "max-stream-events": 1})
    schema = schemathesis.openapi.from_dict(document(sale(pow_bits=pow_bits, auth=auth)), config=config)
    schema.hook(map_case)
    return schema.include(path_regex="^/v1/(admin/)?room")


def map_case(context: Any, case: Any) -> Any:
    """A valid poll names the held ticket and its holder in half the cases (chosen by the generated ticket id)."""
    is_poll = case.operation.path.startswith("/v1/room/tickets/")
    negative = case.meta is not None and case.meta.generation.mode.is_negative
    if is_poll and held and not negative and hash(case.path_parameters.get("ticket")) % 2 == 0:
        case.path_parameters["ticket"] = held["ticket"]
        case.query = {**(case.query or {}), "user": held["user"]}
    return case


def serve(tmp_path: Path, state: str, pow_bits: int, auth: str = "trusted") -> Iterator[LiveServer]:
    """The sale with a room on a real socket, with an admin token and one ticket held (by the token's buyer)."""
    with live_server(sale(tmp_path / "orders.db", state=state, pow_bits=pow_bits, auth=auth), TOKEN) as live:
        body = json.dumps({"user": HOLDER}).encode()
        headers = {"Content-Type": "application/json"}
        if auth == "jwt":
            headers["Authorization"] = f"Bearer {HOLDER_TOKEN}"
        elif auth == "header":
            headers["X-User-Id"] = HOLDER
        if pow_bits:
            held.clear()  # a proof of work room: polls stay on unknown tickets
        else:
            request = urllib.request.Request(f"{live.url}/v1/room/join", body, headers)
            with urllib.request.urlopen(request, timeout=10) as answer:
                held.update(ticket=json.load(answer)["ticket"], user=HOLDER)
        try:
            yield live
        finally:
            held.clear()


plain = room_schema(pow_bits=0)
proof = room_schema(pow_bits=8)
proven = room_schema(pow_bits=0, auth="jwt")
forwarded = room_schema(pow_bits=0, auth="header")


@pytest.fixture(params=["pre_queue", "admitting"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    yield from serve(tmp_path, request.param, 0)


@pytest.fixture
def pow_server(tmp_path: Path) -> Iterator[LiveServer]:
    yield from serve(tmp_path, "admitting", 8)


@pytest.fixture(params=["pre_queue", "admitting"])
def jwt_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    yield from serve(tmp_path, request.param, 0, "jwt")


@pytest.fixture(params=["pre_queue", "admitting"])
def header_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    yield from serve(tmp_path, request.param, 0, "header")


FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
"""Examples per test; no deadline and no health checks: each example is a real request to a real server."""


@plain.parametrize()
@FUZZ
def test_room_routes_answer_as_documented(case: Any, server: LiveServer) -> None:
    """In the pre-queue and while admitting, every generated request to a room route gets a documented answer."""
    case.call_and_validate(base_url=server.url, timeout=10)


@proof.parametrize()
@FUZZ
def test_room_routes_with_proof_of_work_answer_as_documented(case: Any, pow_server: LiveServer) -> None:
    """With pow_bits > 0 the join body needs challenge and nonce; every answer is still as documented."""
    case.call_and_validate(base_url=pow_server.url, timeout=10)


@proven.parametrize()
@FUZZ
def test_room_routes_with_jwt_buyers_answer_as_documented(case: Any, jwt_server: LiveServer) -> None:
    """With [auth] mode = "jwt" the buyer's routes take the token schemathesis sends; every answer is as documented."""
    case.call_and_validate(base_url=jwt_server.url, timeout=10)


@forwarded.parametrize()
@FUZZ
def test_room_routes_with_gateway_buyers_answer_as_documented(case: Any, header_server: LiveServer) -> None:
    """With [auth] mode = "header" the buyer's routes take the gateway's X-User-Id; every answer is as documented."""
    case.call_and_validate(base_url=header_server.url, timeout=10)
