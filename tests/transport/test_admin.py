"""The admin API through a real server: auth, every route, bad input, logs, recording for replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from flashsale import Config, LimitsConfig, ManualClock, ScenarioRecorder, SkuConfig, load_scenario, replay, wall_clock
from flashsale.actors import BucketSpec

from .conftest import MakeClient

TOKEN = "s3cret-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SKUS = (SkuConfig("moutai-53", stock=10, per_user_limit=5), SkuConfig("tshirt", stock=1000))
LIMITS = LimitsConfig(per_user=BucketSpec(rate=0.001, burst=1))

ROUTES = [
    ("POST", "/v1/admin/skus/moutai-53/pause", None),
    ("POST", "/v1/admin/skus/moutai-53/resume", None),
    ("POST", "/v1/admin/skus/moutai-53/end", None),
    ("POST", "/v1/admin/skus/moutai-53/restock", {"qty": 5}),
    ("PUT", "/v1/admin/limits", {"per_user": {"burst": 3}}),
    ("GET", "/v1/admin/overview", None),
]


async def admin_client(make_client: MakeClient, **kw: Any) -> TestClient[Any, Any]:
    return await make_client(*SKUS, admin_token=TOKEN, limits=LIMITS, **kw)


async def buy(client: TestClient[Any, Any], user: str, sku: str = "moutai-53") -> tuple[int, dict[str, Any]]:
    resp = await client.post("/v1/purchase", json={"sku": sku, "user": user})
    return resp.status, await resp.json()


async def sku(client: TestClient[Any, Any], name: str = "moutai-53") -> dict[str, Any]:
    return await (await client.get(f"/v1/skus/{name}")).json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_admin_routes_are_404_without_a_token_configured(
    make_client: MakeClient, method: str, path: str, body: Any
) -> None:
    """With no [admin] token the admin API does not exist: a JSON 404, whatever the header says."""
    client = await make_client(*SKUS)
    resp = await client.request(method, path, json=body, headers=AUTH)
    assert (resp.status, (await resp.json())["error"]) == (404, "not_found")


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize("header", [None, "Bearer wrong-token-of-some-length", "Basic " + TOKEN, TOKEN, "Bearer "])
async def test_admin_routes_need_the_bearer_token(
    make_client: MakeClient, method: str, path: str, body: Any, header: str | None
) -> None:
    """Without the exact bearer token every admin route is 401 unauthenticated and changes nothing."""
    client = await admin_client(make_client)
    before = await sku(client)
    headers = {} if header is None else {"Authorization": header}
    resp = await client.request(method, path, json=body, headers=headers)
    assert (resp.status, (await resp.json())["error"]) == (401, "unauthenticated")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert await sku(client) == before


async def test_pause_and_resume(make_client: MakeClient) -> None:
    """A paused SKU answers purchases 409 sale_paused and shows state paused; resumed, it sells again."""
    client = await admin_client(make_client)
    resp = await client.post("/v1/admin/skus/moutai-53/pause", headers=AUTH)
    assert resp.status == 200
    assert (await resp.json())["state"] == "paused"
    assert (await sku(client))["state"] == "paused"
    status, body = await buy(client, "a")
    assert (status, body["error"]) == (409, "sale_paused")
    assert (await buy(client, "b", "tshirt"))[0] == 200  # the other SKU is not paused
    resp = await client.post("/v1/admin/skus/moutai-53/resume", headers=AUTH)
    assert (await resp.json())["state"] == "on_sale"
    assert (await buy(client, "a"))[0] == 200


async def test_end_closes_the_sale_window_now(make_client: MakeClient) -> None:
    """Ending a SKU answers its purchases 409 sale_not_open from then on; its state is ended."""
    client = await admin_client(make_client)
    resp = await client.post("/v1/admin/skus/tshirt/end", headers=AUTH)
    assert (resp.status, (await resp.json())["state"]) == (200, "ended")
    status, body = await buy(client, "a", "tshirt")
    assert (status, body["error"]) == (409, "sale_not_open")


async def test_restock_adds_units(make_client: MakeClient) -> None:
    """Restock {"qty"} adds units to stock and remaining and answers the SKU after."""
    client = await admin_client(make_client)
    resp = await client.post("/v1/admin/skus/moutai-53/restock", json={"qty": 5}, headers=AUTH)
    body = await resp.json()
    assert (resp.status, body["stock"], body["remaining"]) == (200, 15, 15)
    assert body == await sku(client)


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b'{"qty": 0}', b'{"qty": -3}', b'{"qty": "5"}', b'{"qty": 1.5}', b'{"qty": 5, "x": 1}', b"{}",
     b'{"qty": 100000000000}', b'{"qty": true}'],
)  # fmt: skip
async def test_restock_refuses_bad_bodies(make_client: MakeClient, body: bytes) -> None:
    """A restock body that is not {"qty": whole number in range} is a JSON 400 and changes nothing."""
    client = await admin_client(make_client)
    resp = await client.post("/v1/admin/skus/moutai-53/restock", data=body, headers=AUTH)
    assert (resp.status, (await resp.json())["error"]) == (400, "invalid_request")
    assert (await sku(client))["stock"] == 10


@pytest.mark.parametrize("action", ["pause", "resume", "end", "restock"])
async def test_unknown_sku_is_404(make_client: MakeClient, action: str) -> None:
    """An admin action on a SKU that is not on sale is a JSON 404 unknown_sku."""
    client = await admin_client(make_client)
    resp = await client.post(f"/v1/admin/skus/nope/{action}", json={"qty": 1}, headers=AUTH)
    assert (resp.status, (await resp.json())["error"]) == (404, "unknown_sku")


async def test_limits_change_live(make_client: MakeClient, clock: ManualClock) -> None:
    """PUT /v1/admin/limits gives a scope a new rate and burst from now on: a refused buyer refills at the new rate."""
    client = await admin_client(make_client, clock=clock)
    assert (await buy(client, "a"))[0] == 200
    assert (await buy(client, "a"))[0] == 429
    resp = await client.put("/v1/admin/limits", json={"per_user": {"rate": 1000, "burst": 3}}, headers=AUTH)
    assert resp.status == 200
    assert (await resp.json())["limits"]["per_user"] == {"algorithm": "token", "rate": 1000.0, "burst": 3, "queue": 0}
    clock.set(clock() + 10_000)  # 10 ms at 1,000/s: ten tokens, clipped to the new burst of 3
    assert [(await buy(client, "a"))[0] for _ in range(4)] == [200, 200, 200, 429]


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b"{}", b'{"per_user": {}}', b'{"per_user": {"rate": -1}}', b'{"per_user": {"rate": "fast"}}',
     b'{"per_user": {"burst": 0}}', b'{"per_user": {"burst": 2.5}}', b'{"per_user": {"algorithm": "leaky"}}',
     b'{"everyone": {"rate": 5}}', b'{"per_user": 5}'],
)  # fmt: skip
async def test_limits_refuse_bad_bodies(make_client: MakeClient, body: bytes) -> None:
    """A limits body the config would refuse (or a scope not configured) is a JSON 400 and changes nothing."""
    client = await admin_client(make_client)
    before = await (await client.get("/v1/admin/overview", headers=AUTH)).json()
    resp = await client.put("/v1/admin/limits", data=body, headers=AUTH)
    assert (resp.status, (await resp.json())["error"]) == (400, "invalid_request")
    after = await (await client.get("/v1/admin/overview", headers=AUTH)).json()
    assert after["limits"] == before["limits"]


async def test_limits_of_a_scope_not_configured_are_409(make_client: MakeClient) -> None:
    """A scope the config does not have cannot be added live: 409 not_configured, nothing changes."""
    client = await admin_client(make_client)
    resp = await client.put("/v1/admin/limits", json={"per_ip": {"rate": 5}}, headers=AUTH)
    assert (resp.status, (await resp.json())["error"]) == (409, "not_configured")
    overview = await (await client.get("/v1/admin/overview", headers=AUTH)).json()
    assert set(overview["limits"]) == {"per_user"}


async def test_overview_has_what_the_dashboard_shows(make_client: MakeClient) -> None:
    """GET /v1/admin/overview: SKUs, answers by result, latency, in-flight, backlog, readiness, limits, feed."""
    client = await admin_client(make_client)
    await buy(client, "a")
    body = await (await client.get("/v1/admin/overview", headers=AUTH)).json()
    assert [s["sku"] for s in body["skus"]] == ["moutai-53", "tshirt"]
    assert body["skus"][0] == await sku(client)
    assert body["purchases"] == {"reserved": 1}
    assert body["latency"]["count"] == 1
    assert body["latency"]["p50"] is not None
    assert body["inflight"] == 0
    assert body["writer"]["backlog"] >= 0
    assert body["readiness"]["store_ok"] is True
    assert body["limits"]["per_user"]["burst"] == 1
    assert body["feed"] == {"listeners": 0, "dropped": 0}
    assert body["room"] is None


async def test_every_action_is_one_log_line_without_the_token(make_client: MakeClient) -> None:
    """Each admin action logs one 'admin action' event with who, what, before and after; never the token."""
    client = await admin_client(make_client)
    with capture_logs() as logs:
        await client.post("/v1/admin/skus/moutai-53/pause", headers={**AUTH, "X-Operator": "alice"})
        await client.put("/v1/admin/limits", json={"per_user": {"burst": 2}}, headers=AUTH)
    actions = [e for e in logs if e["event"] == "admin action"]
    assert [a["action"] for a in actions] == ["pause", "limits"]
    assert actions[0]["who"] == {"ip": "127.0.0.1", "operator": "alice"}
    assert (actions[0]["before"]["state"], actions[0]["after"]["state"]) == ("on_sale", "paused")
    assert actions[1]["before"]["per_user"]["burst"] == 1
    assert actions[1]["after"]["per_user"]["burst"] == 2
    assert TOKEN not in repr(logs)
    text = await (await client.get("/metrics")).text()
    assert 'flashsale_admin_actions_total{action="pause"} 1.0' in text


async def test_recorded_admin_actions_replay_to_the_same_answers(make_client: MakeClient, tmp_path: Path) -> None:
    """serve --record writes admin actions; replaying the file pauses, resumes and limits at the same instants."""
    path = tmp_path / "live.jsonl"
    recorders: list[ScenarioRecorder] = []

    def record(config: Config) -> ScenarioRecorder:
        recorders.append(ScenarioRecorder(path, config, wall_clock()))
        return recorders[0]

    client = await admin_client(make_client, record=record)
    assert (await buy(client, "a"))[0] == 200
    await client.post("/v1/admin/skus/moutai-53/pause", headers=AUTH)
    assert (await buy(client, "b"))[1]["error"] == "sale_paused"
    await client.post("/v1/admin/skus/moutai-53/resume", headers=AUTH)
    assert (await buy(client, "b"))[0] == 200
    assert (await buy(client, "b"))[0] == 429
    await client.put("/v1/admin/limits", json={"per_user": {"rate": 0.001, "burst": 5}}, headers=AUTH)
    assert (await buy(client, "c"))[0] == 200  # a new buyer's bucket holds the new burst
    await client.post("/v1/admin/skus/moutai-53/end", headers=AUTH)
    assert (await buy(client, "d"))[1]["error"] == "sale_not_open"
    await client.close()
    recorders[0].close()
    scenario = load_scenario(path)
    first, second = await replay(scenario), await replay(scenario)
    assert first.digest == second.digest
    assert first.ops == {"end:ended": 1, "limits:changed": 1, "pause:paused": 1, "resume:resumed": 1}
    assert first.outcomes == {"reserved": 3, "sale_not_open": 1, "sale_paused": 1, "rate_limited": 1}


async def test_the_dashboard_session_may_steer(make_client: MakeClient) -> None:
    """The dashboard's session cookie with its header is accepted by the admin API; the cookie alone is not."""
    client = await admin_client(make_client)
    signed = await client.post("/dashboard/session", json={"token": TOKEN})
    assert signed.status == 204
    alone = await client.post("/v1/admin/skus/moutai-53/pause")
    assert (alone.status, (await alone.json())["error"]) == (401, "unauthenticated")
    with capture_logs() as logs:
        resp = await client.post("/v1/admin/skus/moutai-53/pause", headers={"X-Flashsale-Dashboard": "1"})
    assert (resp.status, (await resp.json())["state"]) == (200, "paused")
    assert [e["who"]["operator"] for e in logs if e["event"] == "admin action"] == ["dashboard"]
