"""GET /openapi.json: an OpenAPI 3.1 document that names exactly the routes the app has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flashsale import Config, LimitsConfig, ServerConfig, SkuConfig, StoreConfig, wall_clock
from flashsale.config import AuthConfig, RoomConfig
from flashsale.transport import ENGINE, create_app
from flashsale.transport._openapi import document, drift, router_operations
from flashsale.transport._openapi_kit import Op, build_document, ok

from .conftest import MakeClient


async def test_the_document_is_served_and_is_openapi_3_1(make_client: MakeClient) -> None:
    """/openapi.json is JSON, OpenAPI 3.1, and exactly the document built from the server's config."""
    client = await make_client(SkuConfig("moutai-53", stock=5), limits=LimitsConfig(max_qty=7))
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    doc = await resp.json()
    assert doc["openapi"] == "3.1.0"
    assert doc == document(client.app[ENGINE].config)  # type: ignore[index]
    purchase = doc["components"]["schemas"]["Purchase"]
    assert purchase["properties"]["qty"]["maximum"] == 7  # the sale's own bound, not a generic one
    assert purchase["additionalProperties"] is False


async def test_every_route_is_documented_and_every_entry_is_routed(make_client: MakeClient) -> None:
    """The router and the document name the same (method, path) pairs: neither can drift from the other."""
    client = await make_client()
    app = client.app
    assert app is not None
    undocumented, unrouted = drift(app, await (await client.get("/openapi.json")).json())
    assert undocumented == set(), f"routes without an entry in transport/_openapi_routes.py: {sorted(undocumented)}"
    assert unrouted == set(), f"entries in transport/_openapi_routes.py with no route: {sorted(unrouted)}"
    assert ("POST", "/v1/orders/{order_id}/pay") in router_operations(app)  # {action:pay|cancel} spelled out


async def test_a_new_route_without_an_entry_is_caught(make_client: MakeClient) -> None:
    """The drift check is not vacuous: a route added to the app and not documented shows up."""
    client = await make_client()
    app = client.app
    assert app is not None
    doc = await (await client.get("/openapi.json")).json()
    del doc["paths"]["/healthz"]
    undocumented, unrouted = drift(app, doc)
    assert undocumented == {("GET", "/healthz")}
    assert unrouted == set()


async def test_every_answer_documents_its_request_id_and_errors_their_codes(make_client: MakeClient) -> None:
    """Each answer carries X-Request-Id; each error body is the error shape with its codes listed."""
    client = await make_client()
    doc = await (await client.get("/openapi.json")).json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, answer in op["responses"].items():
                assert "X-Request-Id" in answer["headers"], (method, path, status)
                if int(status) >= 400 and (path, status) != ("/readyz", "503"):  # readiness is its own body
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema["required"] == ["error", "detail"], (method, path, status)
                    assert schema["properties"]["error"]["enum"], (method, path, status)
    purchase = doc["paths"]["/v1/purchase"]["post"]
    assert purchase["responses"]["429"]["headers"]["Retry-After"]["required"] is True
    assert purchase["parameters"][0]["name"] == "Idempotency-Key"
    conflict = purchase["responses"]["409"]["content"]["application/json"]["schema"]
    assert set(conflict["properties"]["error"]["enum"]) >= {"sold_out", "limit_reached", "sale_not_open"}


def test_one_method_and_path_cannot_be_documented_twice() -> None:
    """Two entries for one route is a mistake the builder refuses."""
    entry = Op("GET", "/x", "x", tag="t", answers={200: ok("fine")})
    with pytest.raises(ValueError, match="GET /x is documented twice"):
        build_document([entry, entry], {}, title="t", version="0")


BUYER_ROUTES = {
    ("POST", "/v1/purchase"),
    ("GET", "/v1/orders/{order_id}"),
    ("POST", "/v1/orders/{order_id}/pay"),
    ("POST", "/v1/orders/{order_id}/cancel"),
    ("POST", "/v1/room/join"),
    ("GET", "/v1/room/tickets/{ticket}"),
    ("GET", "/v1/room/tickets/{ticket}/events"),
}


@pytest.mark.parametrize(("mode", "scheme"), [("jwt", "buyerBearer"), ("header", "buyerHeader")])
async def test_the_routes_that_act_for_a_buyer_document_the_buyer_credential(
    aiohttp_client: Any, tmp_path: Path, mode: str, scheme: str
) -> None:
    """With [auth] mode jwt or header, exactly the routes that answer 401 without a credential name its scheme.

    Each such route is called without one and answers 401 ``unauthenticated``;
    no other buyer's route lists that answer (the admin's and the dashboard's
    401s are the admin token's). In trusted mode no route asks
    a buyer's credential. The purchase's 403 lists the codes this sale can
    answer: ``forbidden`` with a credential, the pass codes with a room.
    """
    now = wall_clock()
    room = RoomConfig(starts_at=now - 60_000_000, opens_at=now - 120_000_000)
    config = Config(
        skus=(SkuConfig("moutai-53", stock=5),),
        store=StoreConfig(path=str(tmp_path / "orders.db")),
        auth=AuthConfig(mode=mode, jwt_secret="openapi-test-secret-of-32-bytes-long"),  # type: ignore[arg-type]
        server=ServerConfig(trusted_proxies=("10.0.0.0/8",)),  # the test client is no trusted proxy
        waiting_room=room,
    )
    client = await aiohttp_client(create_app(config))
    doc = await (await client.get("/openapi.json")).json()
    expected = {"jwt": {"type": "http", "scheme": "bearer"}, "header": {"type": "apiKey", "in": "header"}}[mode]
    assert doc["components"]["securitySchemes"][scheme].items() >= expected.items()
    secured = set()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if {scheme: []} in op.get("security", []):
                secured.add((method.upper(), path))
            if op["tags"][0] in ("admin", "dashboard"):  # the admin token's 401s
                continue
            answers_401 = op["responses"].get("401", {}).get("content", {}).get("application/json", {})
            if "unauthenticated" in answers_401.get("schema", {}).get("properties", {}).get("error", {}).get(
                "enum", []
            ):
                assert {scheme: []} in op.get("security", []), (method, path)
    assert secured == BUYER_ROUTES
    refused = doc["paths"]["/v1/purchase"]["post"]["responses"]["403"]["content"]["application/json"]["schema"]
    assert refused["properties"]["error"]["enum"] == ["forbidden", "admission_required", "invalid_pass"]
    for method, path in sorted(secured):
        url = path.replace("{order_id}", "moutai-53-1-0000000000000000").replace("{ticket}", "t")
        body = {"sku": "moutai-53"} if path == "/v1/purchase" else {}
        resp = await client.request(method, url, json=body if method == "POST" else None)
        assert resp.status == 401, (method, path, await resp.text())
        assert (await resp.json())["error"] == "unauthenticated"
    plain = document(Config(skus=(SkuConfig("moutai-53", stock=5),)))
    assert "403" not in plain["paths"]["/v1/purchase"]["post"]["responses"]  # trusted, no room: nothing to refuse
    trusted = document(Config(skus=(SkuConfig("moutai-53", stock=5),), waiting_room=room))
    assert not {"buyerBearer", "buyerHeader"} & set(trusted["components"]["securitySchemes"])
    assert not any(
        "buyer" in name
        for item in trusted["paths"].values()
        for op in item.values()
        for sec in op.get("security", [])
        for name in sec
    )
