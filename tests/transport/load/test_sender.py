"""The sender against real servers: retries never buy twice, --procs merges exactly, the schedule is open-loop."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import web

from flashsale.transport.load import Settings, send_all
from flashsale.transport.load._identity import Identity
from flashsale.transport.load._plan import Crowdspec, flag_crowd, share
from flashsale.transport.load._retry import Backoff
from tests.scenarios.conftest import StartServer

from .conftest import ServeApp, run_load
from .servers import SoldOut


def _crowd(buyers: int, duration: float, *, seed: int = 3, retries: int = 3) -> Crowdspec:
    return Crowdspec(
        crowd=flag_crowd(
            run_id="t", seed=seed, buyers=buyers, duration=duration, pattern="uniform", skus=["hot"], qty=1,
            prefix=None, retries=retries, backoff=0.01, pay=0.0, cancel=0.0, pay_after=0.0,
        )
    )  # fmt: skip


def _settings(url: str, **kw: object) -> Settings:
    return Settings(url=url, run_id="t", identity=Identity(), backoff=Backoff(0), max_time=30.0, **kw)  # type: ignore[arg-type]


async def test_retries_with_the_same_key_never_make_a_second_order(
    start_server: StartServer, serve_app: ServeApp, tmp_path: Path
) -> None:
    """A proxy that loses the first answer of every key (503 after the order was made): each retry gets the
    first order back; the real server holds exactly one order per buyer, and the run passes."""
    server = await start_server('[[sku]]\nid = "hot"\nstock = 1000\n')
    seen: set[str] = set()
    async with aiohttp.ClientSession() as upstream:

        async def purchase(request: web.Request) -> web.Response:
            key = request.headers["Idempotency-Key"]
            headers = {"Content-Type": "application/json", "Idempotency-Key": key}
            async with upstream.post(f"{server.url}/v1/purchase", data=await request.read(), headers=headers) as r:
                body, status = await r.read(), r.status
            if key not in seen:
                seen.add(key)
                return web.json_response({"error": "overloaded", "detail": "answer lost"}, status=503)
            return web.Response(body=body, status=status, content_type="application/json")

        async def forward(request: web.Request) -> web.Response:
            async with upstream.get(f"{server.url}{request.path_qs}") as r:
                return web.Response(body=await r.read(), status=r.status, content_type="application/json")

        app = web.Application()
        app.router.add_post("/v1/purchase", purchase)
        app.router.add_get("/{tail:.*}", forward)
        url = await serve_app(app)
        run = await run_load(url, "--sku", "hot", "--buyers", "40", "--duration", "0.5", "--backoff", "0.01",
                             "--feed", "off", json_to=tmp_path / "r.json")  # fmt: skip
        async with upstream.get(f"{server.url}/v1/skus/hot") as r:
            sku = await r.json()
    assert run.code == 0, run.out + run.err
    assert run.json is not None
    purchase_phase = run.json["phases"]["purchase"]
    assert purchase_phase["status"] == {"200 reserved": 40, "503 overloaded": 40}
    assert purchase_phase["retries"] == 40
    assert run.json["figures"]["orders"] == 40
    assert sku["reserved"] == 40  # not 80: every retry found the first order by its key
    await server.stop()


async def test_two_processes_merge_to_the_same_totals_as_one(serve_app: ServeApp, tmp_path: Path) -> None:
    """The same seeded crowd with --procs 1 and --procs 2: the same counts, statuses and histogram totals."""
    server = SoldOut()
    url = await serve_app(server.app())
    runs = []
    for procs in ("1", "2"):
        run = await run_load(url, "--sku", "hot", "--buyers", "150", "--duration", "1", "--seed", "11",
                             "--procs", procs, json_to=tmp_path / f"p{procs}.json")  # fmt: skip
        assert run.code == 0, run.out + run.err
        assert run.json is not None
        runs.append(run.json)
    one, two = runs
    assert two["procs"] == 2
    for key in ("count", "status"):
        assert one["phases"]["purchase"][key] == two["phases"]["purchase"][key]
    assert two["phases"]["purchase"]["count"] == 150
    assert sum(b["answered"] for b in two["series"]) == 150
    assert one["schedule"]["arrivals_sent"] == two["schedule"]["arrivals_sent"] == 150
    assert server.requests["purchase"] == 300


async def test_a_stalled_server_shows_in_p99_and_the_schedule_keeps_its_pace(serve_app: ServeApp) -> None:
    """A server that stalls 1 s mid-run: the stall is in the latency (p99 near 1 s, measured from the
    scheduled time) while arrivals keep their clock: every second of the run sends what it was asked."""
    server = SoldOut(stall_after=1.0, stall_for=1.0)
    url = await serve_app(server.app())
    spec = _crowd(300, 3.0, retries=0)
    outcome = await send_all(_settings(url, connections=512, feed="off", room="off"),
                             share(spec.events(), 0, 1), budget=1000)  # fmt: skip
    stats = outcome.stats
    purchase = stats.phases["purchase"]
    assert purchase.count == 300
    assert server.stalled >= 50  # the stall happened, and requests kept arriving during it
    assert purchase.percentile_ms(99) >= 700
    assert purchase.percentile_ms(50) < 250  # outside the stall the server is fast
    # Dispatch never waited for answers: a sender that did would lag by the whole second of the stall
    # (the bounds leave room for a machine shared with other work).
    assert stats.lag.get_value_at_percentile(99) / 1000 < 250
    sent = [stats.buckets[i].sent for i in range(3)]
    assert min(sent) >= 60, sent  # about 100 a second, the stalled second included (uniform arrivals)
