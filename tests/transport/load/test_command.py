"""``flashsale load`` as a user runs it: exit codes, counts, the verdict, thresholds, --json and --report."""

from __future__ import annotations

import json
from pathlib import Path

from hdrh.histogram import HdrHistogram

from tests.scenarios.conftest import StartServer

from .conftest import ServeApp, run_load
from .servers import BrokenSale, SoldOut

SALE = """
[[sku]]
id = "hot"
stock = 40
per_user_limit = 1
"""


async def test_clean_run_exits_0_with_correct_counts(start_server: StartServer, tmp_path: Path) -> None:
    """120 buyers for 40 units of a real server: 40 reserved, 80 sold out, 40 orders audited, exit 0."""
    server = await start_server(SALE)
    report = tmp_path / "run.html"
    run = await run_load(
        server.url, "--sku", "hot", "--buyers", "120", "--duration", "1", "--seed", "7", "--report", str(report),
        "--feed", "off",  # every buyer sends its purchase (with the feed, those after the last unit would not)
        json_to=tmp_path / "run.json",
    )  # fmt: skip
    assert run.code == 0, run.out + run.err
    data = run.json
    assert data is not None
    purchase = data["phases"]["purchase"]
    assert purchase["count"] == 120
    assert purchase["status"] == {"200 reserved": 40, "409 sold_out": 80}
    assert data["figures"]["orders"] == 40
    assert data["verdict"]["orders_checked"] == 40
    assert all(c["ok"] for c in data["verdict"]["checks"].values())
    assert data["verdict"]["skus"]["hot"]["reserved"] == 40
    assert HdrHistogram.decode(purchase["hdr"].encode()).get_total_count() == 120
    assert data["schedule"]["arrivals_sent"] == 120
    assert "ok         no oversell" in run.out
    page = report.read_text()
    assert "<svg" in page
    assert "PASSED" in page
    assert "http://" not in page.replace(server.url, "")  # nothing fetched from anywhere: readable offline
    await server.stop()


async def test_threshold_breach_exits_99_and_names_it(start_server: StartServer, tmp_path: Path) -> None:
    """A p50 under one microsecond cannot hold: exit 99, the threshold named on stderr; the others pass."""
    server = await start_server(SALE)
    run = await run_load(
        server.url, "--sku", "hot", "--buyers", "20", "--duration", "0.5",
        "--threshold", "purchase.p50<0.001ms", "--threshold", "purchase.count==20",
    )  # fmt: skip
    assert run.code == 99, run.out + run.err
    assert "threshold breached: purchase.p50<0.001ms" in run.err
    assert "purchase.count==20" not in run.err
    assert "BREACHED   purchase.p50<0.001ms" in run.out
    await server.stop()


async def test_malformed_or_unknown_threshold_exits_2_before_sending(serve_app: ServeApp) -> None:
    """A typo in a metric, a bad operator or a unit on a count: exit 2, and the server saw no request at all."""
    server = SoldOut()
    url = await serve_app(server.app())
    for bad in ("purchse.p99<50ms", "purchase.p99<<50ms", "purchase.p99<50parsecs", "http.5xx<3ms", "p99"):
        run = await run_load(url, "--sku", "hot", "--buyers", "5", "--threshold", bad)
        assert run.code == 2, (bad, run.err)
        assert "threshold" in run.err
    assert sum(server.requests.values()) == 0


async def test_bad_crowd_exits_2_before_sending(serve_app: ServeApp, tmp_path: Path) -> None:
    """No SKU, a missing scenario file, a URL with a path, --jwt-secret without --auth jwt: exit 2, nothing sent."""
    server = SoldOut()
    url = await serve_app(server.app())
    cases = [
        (url, "--buyers", "5"),
        (url, "--scenario", str(tmp_path / "missing.json")),
        (url + "/v1", "--sku", "hot", "--buyers", "5"),
        (url, "--sku", "hot", "--buyers", "5", "--jwt-secret", "s"),
        (url, "--sku", "hot", "--buyers", "5", "--max-requests", "4"),
    ]
    for first, *rest in cases:
        run = await run_load(first, *rest)
        assert run.code == 2, (rest, run.err)
    assert sum(server.requests.values()) == 0


async def test_overselling_server_is_caught_and_named(serve_app: ServeApp) -> None:
    """A server that answers 200 to 30 buyers for 10 units (its counters add up) fails `no oversell`: exit 99."""
    sale = BrokenSale(10, oversell=True)
    url = await serve_app(sale.app())
    run = await run_load(url, "--sku", "hot", "--buyers", "30", "--duration", "0.5")
    assert run.code == 99, run.out + run.err
    assert "oversold==0" in run.err
    assert "VIOLATED   no oversell: hot: stock 10, remaining 0, reserved 10, paid 0; this run holds 30 units" in run.out


async def test_server_that_forgets_orders_is_caught_and_named(serve_app: ServeApp) -> None:
    """200s whose orders the server never stored fail `every 200 has its order`: exit 99, lost_orders named."""
    sale = BrokenSale(10, forget=True)
    url = await serve_app(sale.app())
    run = await run_load(url, "--sku", "hot", "--buyers", "15", "--duration", "0.5")
    assert run.code == 99, run.out + run.err
    assert "lost_orders==0" in run.err
    assert "VIOLATED   every 200 has its order: 10 of 10 not found as answered" in run.out
    assert sale.requests["order"] == 10


async def test_sends_its_crowd_and_nothing_else(serve_app: ServeApp, tmp_path: Path) -> None:
    """50 arrivals at 100/s are 50 purchases to the URL, then one SKU read by the audit: nothing more."""
    server = SoldOut()
    url = await serve_app(server.app())
    run = await run_load(url, "--sku", "hot", "--rate", "100", "--duration", "0.5", "--max-requests", "60",
                         json_to=tmp_path / "b.json")  # fmt: skip
    assert run.code == 0, run.out + run.err
    assert run.json is not None
    assert run.json["phases"]["purchase"]["count"] == 50
    assert server.requests["purchase"] == 50
    assert server.requests["sku"] == 1  # the audit's one look at the SKU


async def test_a_scenario_file_is_the_crowd(start_server: StartServer, tmp_path: Path) -> None:
    """--scenario FILE: its generator's buyers, clicks and pays go out in real time; the verdict holds."""
    server = await start_server(SALE)
    scenario = {
        "flashsale_scenario": 1,
        "name": "rush",
        "config": {"sku": [{"id": "hot", "stock": 40, "per_user_limit": 1}]},
        "generators": [
            {"name": "crowd", "seed": 4, "users": 60, "sku": "hot", "clicks": 2, "keys": "per_user",
             "arrival": {"pattern": "burst", "duration": 0.5}, "pay": {"fraction": 0.5, "after": 0.1}},
        ],
    }  # fmt: skip
    path = tmp_path / "rush.json"
    path.write_text(json.dumps(scenario))
    # --feed off: every click goes out (with the feed, clicks after the last unit would not)
    run = await run_load(server.url, "--scenario", str(path), "--feed", "off", json_to=tmp_path / "s.json")
    assert run.code == 0, run.out + run.err
    assert run.json is not None
    assert run.json["phases"]["purchase"]["count"] == 120  # two clicks each, the second answered from its key
    assert run.json["figures"]["orders"] == 40
    assert run.json["phases"]["pay"]["count"] >= 1
    assert (await run_load(server.url, "--scenario", str(path), "--sku", "hot")).code == 2  # one crowd, not two
    await server.stop()
