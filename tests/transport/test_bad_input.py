"""Bad input: a clear 4xx JSON error, and nothing changes."""

from __future__ import annotations

from typing import Any

import pytest

from flashsale import SkuConfig

from .conftest import MakeClient, stored_orders

GOOD = {"sku": "moutai-53", "user": "alice", "qty": 1}

BAD_BODIES: list[tuple[str, bytes | Any, int, str]] = [
    ("malformed JSON", b'{"sku": "moutai-53",', 400, "invalid_request"),
    ("empty body", b"", 400, "invalid_request"),
    ("not UTF-8", b"\xff\xfe{}", 400, "invalid_request"),
    ("a list", [GOOD], 400, "invalid_request"),
    ("a string", "moutai-53", 400, "invalid_request"),
    ("null", None, 400, "invalid_request"),
    ("missing sku", {"user": "alice"}, 400, "invalid_request"),
    ("missing user", {"sku": "moutai-53"}, 400, "invalid_request"),
    ("sku a number", {**GOOD, "sku": 53}, 400, "invalid_request"),
    ("sku empty", {**GOOD, "sku": ""}, 400, "invalid_request"),
    ("user a number", {**GOOD, "user": 7}, 400, "invalid_request"),
    ("user empty", {**GOOD, "user": ""}, 400, "invalid_request"),
    ("user too long", {**GOOD, "user": "u" * 129}, 400, "invalid_request"),
    ("user an object", {**GOOD, "user": {"id": 1}}, 400, "invalid_request"),
    ("qty zero", {**GOOD, "qty": 0}, 400, "invalid_request"),
    ("qty negative", {**GOOD, "qty": -1}, 400, "invalid_request"),
    ("qty huge", {**GOOD, "qty": 10**30}, 400, "invalid_request"),
    ("qty over max_qty", {**GOOD, "qty": 101}, 400, "invalid_request"),
    ("qty a float", {**GOOD, "qty": 1.0}, 400, "invalid_request"),
    ("qty a string", {**GOOD, "qty": "1"}, 400, "invalid_request"),
    ("qty a bool", {**GOOD, "qty": True}, 400, "invalid_request"),
    ("qty null", {**GOOD, "qty": None}, 400, "invalid_request"),
    ("unknown field", {**GOOD, "quantity": 2}, 400, "invalid_request"),
    ("unknown sku", {**GOOD, "sku": "nope"}, 404, "unknown_sku"),
]


def _post_kwargs(body: bytes | Any) -> dict[str, Any]:
    return {"data": body} if isinstance(body, bytes) else {"json": body}


@pytest.mark.parametrize(("case", "body", "status", "code"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_bad_body_is_refused_and_changes_nothing(
    make_client: MakeClient, case: str, body: bytes | Any, status: int, code: str
) -> None:
    """Each malformed purchase body gets its 4xx JSON error; stock and orders stay as they were."""
    client = await make_client(SkuConfig("moutai-53", stock=100, per_user_limit=1))
    before = await (await client.get("/v1/skus/moutai-53")).json()
    resp = await client.post("/v1/purchase", **_post_kwargs(body))
    assert resp.status == status, case
    assert resp.content_type == "application/json"
    payload = await resp.json()
    assert payload["error"] == code
    assert payload["detail"]
    assert await (await client.get("/v1/skus/moutai-53")).json() == before
    assert stored_orders(client) == {}
    # The refused request did not use the buyer's allowance either.
    assert (await client.post("/v1/purchase", json=GOOD)).status == 200


@pytest.mark.parametrize(
    "key", ["", "k" * 256, "caf\u00e9", "tab\there"], ids=["empty", "too long", "non-ascii", "control char"]
)
async def test_bad_idempotency_key_is_400(make_client: MakeClient, key: str) -> None:
    """An Idempotency-Key that is empty, too long or not printable ASCII is a 400."""
    client = await make_client()
    resp = await client.post(
        "/v1/purchase",
        data=b'{"sku": "moutai-53", "user": "a"}',
        headers={"Idempotency-Key": key.encode("utf-8").decode("latin-1")},
    )
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_request"
    assert stored_orders(client) == {}


async def test_oversized_body_is_413(make_client: MakeClient) -> None:
    """A body over server.max_body_bytes answers 413 in the JSON error shape."""
    client = await make_client(max_body_bytes=256)
    resp = await client.post("/v1/purchase", data=b'{"sku": "moutai-53", "user": "' + b"a" * 400 + b'"}')
    assert resp.status == 413
    assert (await resp.json())["error"] == "payload_too_large"
    assert stored_orders(client) == {}


async def test_unknown_route_and_method_are_json(make_client: MakeClient) -> None:
    """404 and 405 from routing use the same JSON error shape."""
    client = await make_client()
    resp = await client.get("/v1/nothing-here")
    assert (resp.status, (await resp.json())["error"]) == (404, "not_found")
    resp = await client.get("/v1/purchase")
    assert (resp.status, (await resp.json())["error"]) == (405, "method_not_allowed")
