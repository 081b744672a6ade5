"""/dashboard over HTTP: present only with an admin token, signed in by a cookie that is not the token."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, make_mocked_request

from flashsale import SkuConfig
from flashsale.transport import ENGINE
from flashsale.transport._dashboard import DASHBOARD
from flashsale.transport._dashboard_session import COOKIE, CSRF_HEADER, SessionSigner
from flashsale.transport._dashboard_state import SalesSampler

from .conftest import MakeClient

TOKEN = "dashboard-admin-token-0123456789"
ROUTES = [
    ("GET", "/dashboard"),
    ("GET", "/dashboard/assets/dashboard.js"),
    ("POST", "/dashboard/session"),
    ("DELETE", "/dashboard/session"),
    ("GET", "/dashboard/state"),
]


async def dashboard_client(make_client: MakeClient, *skus: SkuConfig) -> TestClient[Any, Any]:
    """A server whose admin token is :data:`TOKEN`."""
    client = await make_client(*skus)
    client.app[DASHBOARD].signer = SessionSigner(TOKEN)  # type: ignore[index]
    return client


async def sign_in(client: TestClient[Any, Any]) -> str:
    resp = await client.post("/dashboard/session", json={"token": TOKEN})
    assert resp.status == 204
    return resp.cookies[COOKIE].value


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_without_an_admin_token_there_is_no_dashboard(make_client: MakeClient, method: str, path: str) -> None:
    """No [admin] token: every dashboard route is a JSON 404, as the admin API is."""
    client = await make_client()
    resp = await client.request(method, path, json={"token": TOKEN})
    assert resp.status == 404
    assert (await resp.json())["error"] == "not_found"


async def test_sign_in_sets_an_httponly_strict_cookie_that_is_not_the_token(make_client: MakeClient) -> None:
    """The right token gets 204 and a session cookie: HttpOnly, SameSite=Strict, Path=/, without the token in it."""
    client = await dashboard_client(make_client)
    resp = await client.post("/dashboard/session", json={"token": TOKEN})
    assert resp.status == 204
    header = resp.headers["Set-Cookie"]
    assert "HttpOnly" in header
    assert "SameSite=Strict" in header
    assert "Path=/" in header
    assert TOKEN not in header
    assert TOKEN not in (await resp.read()).decode()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"token": "wrong-token-wrong-token"}', 401, "unauthenticated"),
        (b'{"token": ""}', 400, "invalid_request"),
        (b'{"token": 12345}', 400, "invalid_request"),
        (b'{"token": "' + b"x" * 1025 + b'"}', 400, "invalid_request"),
        (b'{"token": "a", "user": "b"}', 400, "invalid_request"),
        (b'["token"]', 400, "invalid_request"),
        (b"token=abc", 400, "invalid_request"),
        (b"", 400, "invalid_request"),
        (b'{"token": "' + b"x" * 5000 + b'"}', 413, "payload_too_large"),
    ],
)
async def test_bad_sign_ins_are_json_4xx_and_set_no_cookie(
    make_client: MakeClient, body: bytes, status: int, code: str
) -> None:
    """A wrong token or a malformed body: a JSON 4xx naming the problem, and no session."""
    client = await dashboard_client(make_client)
    resp = await client.post("/dashboard/session", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == status
    payload = await resp.json()
    assert payload["error"] == code
    assert payload["detail"]
    assert "Set-Cookie" not in resp.headers
    assert (await client.get("/dashboard/state")).status == 401


async def test_the_page_is_the_sign_in_form_until_signed_in(make_client: MakeClient) -> None:
    """GET /dashboard is the sign-in form without a session and the dashboard with one; both forbid inline scripts."""
    client = await dashboard_client(make_client)
    resp = await client.get("/dashboard")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert 'id="signin"' in await resp.text()
    await sign_in(client)
    page = await (await client.get("/dashboard")).text()
    assert 'id="skus"' in page
    assert "signin" not in page


async def test_state_needs_a_session_and_shows_the_sale(make_client: MakeClient) -> None:
    """/dashboard/state is 401 without a session; with one, it has the stock, answers, load and checks."""
    client = await dashboard_client(make_client, SkuConfig("rare", stock=3))
    resp = await client.get("/dashboard/state")
    assert resp.status == 401
    assert (await resp.json())["error"] == "unauthenticated"
    await sign_in(client)
    await client.post("/v1/purchase", json={"sku": "rare", "user": "a"})
    state = await (await client.get("/dashboard/state")).json()
    assert [(s["sku"], s["stock"], s["remaining"]) for s in state["skus"]] == [("rare", 3, 2)]
    assert state["answers"] == {"reserved": 1}
    assert state["inflight"]["limit"] == 10_000
    assert state["backlog"]["name"] == "writer backlog"
    assert state["readiness"]["ready"] is True
    assert state["room"] is None


@pytest.mark.parametrize(
    "cookie",
    [
        "garbage",
        "99999999999.deadbeef",
        f"1.{'0' * 64}",
        "",
    ],
)
async def test_a_forged_session_is_refused(make_client: MakeClient, cookie: str) -> None:
    """A cookie the server did not sign is no session."""
    client = await dashboard_client(make_client)
    resp = await client.get("/dashboard/state", headers={"Cookie": f"{COOKIE}={cookie}"})
    assert resp.status == 401


async def test_another_token_ends_every_session(make_client: MakeClient) -> None:
    """A cookie signed for one token is refused once the token changes."""
    client = await dashboard_client(make_client)
    await sign_in(client)
    assert (await client.get("/dashboard/state")).status == 200
    client.app[DASHBOARD].signer = SessionSigner("another-admin-token-0123456789")  # type: ignore[index]
    assert (await client.get("/dashboard/state")).status == 401


async def test_sign_out_clears_the_cookie(make_client: MakeClient) -> None:
    """DELETE /dashboard/session removes the cookie from the browser."""
    client = await dashboard_client(make_client)
    await sign_in(client)
    resp = await client.delete("/dashboard/session")
    assert resp.status == 204
    assert (await client.get("/dashboard/state")).status == 401


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("dashboard.js", "text/javascript"), ("dashboard.css", "text/css"), ("logo.svg", "image/svg+xml")],
)
async def test_assets_ship_with_the_package(make_client: MakeClient, name: str, content_type: str) -> None:
    """Scripts, styles and pictures come from the package itself: nothing from a CDN."""
    client = await dashboard_client(make_client)
    resp = await client.get(f"/dashboard/assets/{name}")
    assert resp.status == 200
    assert resp.content_type == content_type
    body = await resp.text()
    assert "http://" not in body.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in body


@pytest.mark.parametrize("name", ["nope.js", "dashboard.html", "..%2F_app.py", "signin.html"])
async def test_unknown_assets_are_json_404s(make_client: MakeClient, name: str) -> None:
    """Only the shipped scripts, styles and pictures are served; the pages only at /dashboard."""
    client = await dashboard_client(make_client)
    resp = await client.get(f"/dashboard/assets/{name}")
    assert resp.status == 404
    assert (await resp.json())["error"] == "not_found"


def test_a_session_expires_and_a_tampered_one_is_refused() -> None:
    """The cookie is good until its expiry, not after, and changing any character breaks it."""
    now = [1_000_000.0]
    signer = SessionSigner(TOKEN, lifetime=60, clock=lambda: now[0])
    value = signer.issue()
    assert signer.valid(value)
    head, mac = value.split(".")
    assert not signer.valid(f"{int(head) + 1}.{mac}")
    assert not signer.valid(f"{head}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}")
    now[0] += 61
    assert not signer.valid(value)


def test_the_token_check_is_exact() -> None:
    """Only the token itself passes; a prefix, a longer string or another case does not."""
    signer = SessionSigner(TOKEN)
    assert signer.token_ok(TOKEN)
    for wrong in (TOKEN[:-1], TOKEN + "x", TOKEN.upper(), "", "\udcff"):
        assert not signer.token_ok(wrong)


async def test_changing_something_with_the_cookie_needs_the_dashboard_header(make_client: MakeClient) -> None:
    """A session cookie alone reads; a POST with it also needs X-Flashsale-Dashboard: 1 (no cross-site forms)."""
    client = await dashboard_client(make_client)
    cookie = f"{COOKIE}={await sign_in(client)}"
    signer = client.app[DASHBOARD].signer  # type: ignore[index]
    assert signer.signed_in(make_mocked_request("GET", "/dashboard/state", headers={"Cookie": cookie}))
    assert not signer.signed_in(make_mocked_request("POST", "/v1/admin/skus/a/pause", headers={"Cookie": cookie}))
    headers = {"Cookie": cookie, CSRF_HEADER: "1"}
    assert signer.signed_in(make_mocked_request("POST", "/v1/admin/skus/a/pause", headers=headers))


async def test_the_sales_chart_counts_units_sold_not_restocks(make_client: MakeClient) -> None:
    """Each sample is the units sold since the last one; a restock is not a sale."""
    client = await dashboard_client(make_client, SkuConfig("a", stock=10), SkuConfig("b", stock=10))
    engine = client.app[ENGINE]  # type: ignore[index]
    sampler = SalesSampler()
    sampler.sample(engine)  # the baseline
    for user, sku, qty in (("u1", "a", 2), ("u2", "b", 3)):
        resp = await client.post("/v1/purchase", json={"sku": sku, "user": user, "qty": qty})
        assert resp.status == 200
    sampler.sample(engine)
    await engine.restock("a", 5)
    sampler.sample(engine)
    assert list(sampler.per_interval) == [5, 0]


async def test_the_sign_in_form_never_puts_the_token_in_a_url(make_client: MakeClient) -> None:
    """Even without its script, the form posts: a browser never sends the token as a query string."""
    client = await dashboard_client(make_client)
    page = await (await client.get("/dashboard")).text()
    assert '<form id="signin" method="post" action="/dashboard/session"' in page
