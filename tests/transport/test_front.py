"""The server explains itself: ``GET /`` for people and clients, ``GET /v1/skus``, ``Allow`` on a 405."""

from __future__ import annotations

import importlib.metadata

from flashsale import SkuConfig
from tests.transport.conftest import MakeClient

SKUS = (
    SkuConfig("moutai-53", stock=100, per_user_limit=2, name="Kweichow Moutai 53% <500ml>"),
    SkuConfig("tshirt", stock=5),
)


async def test_front_page_is_html_naming_every_sku_and_the_links(make_client: MakeClient) -> None:
    """A browser gets an HTML page with each SKU, its state and stock, and links to the API and the dashboard."""
    client = await make_client(*SKUS)
    await client.post("/v1/purchase", json={"sku": "moutai-53", "user": "alice"})
    resp = await client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert "<code>moutai-53</code>" in page
    assert "Kweichow Moutai 53% &lt;500ml&gt;" in page  # names are escaped
    assert "on sale</td><td>99 of 100</td><td>2</td>" in page
    assert '<a href="/openapi.json">' in page
    assert '<a href="/dashboard">' in page
    assert '<a href="/v1/skus">' in page


async def test_front_page_as_json(make_client: MakeClient) -> None:
    """``Accept: application/json`` gets the same facts as JSON: version, SKUs, links."""
    client = await make_client(*SKUS)
    resp = await client.get("/", headers={"Accept": "application/json"})
    assert resp.status == 200
    body = await resp.json()
    assert body["service"] == "flashsale"
    assert body["version"] == importlib.metadata.version("flashsale")
    assert [s["sku"] for s in body["skus"]] == ["moutai-53", "tshirt"]
    assert body["links"]["api"] == "/openapi.json"
    assert body["links"]["dashboard"] == "/dashboard"
    assert resp.headers["X-Request-Id"]


async def test_skus_lists_every_sku_with_its_status(make_client: MakeClient) -> None:
    """``GET /v1/skus`` lists each SKU in config order with the fields of ``GET /v1/skus/{sku}``, name and limit."""
    client = await make_client(*SKUS)
    await client.post("/v1/purchase", json={"sku": "tshirt", "user": "bob", "qty": 5})
    resp = await client.get("/v1/skus")
    assert resp.status == 200
    listed = (await resp.json())["skus"]
    one = await (await client.get("/v1/skus/tshirt")).json()
    assert listed[1] == {**one, "name": "", "per_user_limit": None}
    assert (listed[1]["state"], listed[1]["remaining"]) == ("sold_out", 0)
    assert (listed[0]["sku"], listed[0]["state"], listed[0]["per_user_limit"]) == ("moutai-53", "on_sale", 2)


async def test_405_names_the_allowed_methods(make_client: MakeClient) -> None:
    """A wrong method gets a JSON 405 whose ``Allow`` header lists the methods the path takes."""
    client = await make_client(*SKUS)
    resp = await client.get("/v1/purchase")
    assert (resp.status, (await resp.json())["error"]) == (405, "method_not_allowed")
    assert resp.headers["Allow"] == "POST"
    resp = await client.delete("/v1/skus")
    assert resp.status == 405
    assert set(resp.headers["Allow"].split(",")) >= {"GET"}
