"""The flows that need the server's own features, against a real ``flashsale serve``: the stock feed."""

from __future__ import annotations

from pathlib import Path

from tests.scenarios.conftest import StartServer

from .conftest import run_load


async def test_the_stock_feed_stops_buyers_after_the_sell_out(start_server: StartServer, tmp_path: Path) -> None:
    """5 units and 200 buyers over 2 s: the feed says sold out and the later buyers are not sent."""
    server = await start_server('[[sku]]\nid = "hot"\nstock = 5\n')
    run = await run_load(server.url, "--sku", "hot", "--buyers", "200", "--duration", "2", "--feed", "on",
                         json_to=tmp_path / "f.json")  # fmt: skip
    assert run.code == 0, run.out + run.err
    assert run.json is not None
    assert run.json["feed"].startswith("watching")
    skipped = run.json["schedule"]["skipped"].get("sold out (feed)", 0)
    assert skipped >= 100
    assert run.json["phases"]["purchase"]["count"] + skipped == 200
    assert run.json["phases"]["purchase"]["status"]["200 reserved"] == 5
    await server.stop()
