"""Flows that need the server's own features, against a real ``flashsale serve``: identity, feed, waiting room."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.scenarios.conftest import StartServer

from .conftest import run_load

SECRET = "load-test-secret-0123456789abcdef0123456789"
SALE = '[[sku]]\nid = "hot"\nstock = 30\nper_user_limit = 1\n'


async def test_jwt_buyers_buy_and_are_audited_as_themselves(start_server: StartServer, tmp_path: Path) -> None:
    """`--auth jwt`: tokens minted from the shared secret buy, and every order reads back for its buyer."""
    server = await start_server(SALE + f'\n[auth]\nmode = "jwt"\njwt_secret = "{SECRET}"\n')
    run = await run_load(server.url, "--sku", "hot", "--buyers", "60", "--duration", "0.5", "--auth", "jwt",
                         "--jwt-secret", SECRET, "--feed", "off", json_to=tmp_path / "j.json")  # fmt: skip
    assert run.code == 0, run.out + run.err
    assert run.json is not None
    assert run.json["phases"]["purchase"]["status"] == {"200 reserved": 30, "409 sold_out": 30}
    assert run.json["verdict"]["orders_checked"] == 30
    await server.stop()


async def test_a_wrong_jwt_secret_is_refused_and_fails_nothing_silently(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Tokens signed with another secret get 401s: no order, every answer counted, the run still exits 0."""
    server = await start_server(SALE + f'\n[auth]\nmode = "jwt"\njwt_secret = "{SECRET}"\n')
    wrong = "another-secret-another-secret-another"
    run = await run_load(server.url, "--sku", "hot", "--buyers", "10", "--duration", "0.2", "--auth", "jwt",
                         "--jwt-secret", wrong, json_to=tmp_path / "w.json")  # fmt: skip
    assert run.json is not None
    assert run.json["phases"]["purchase"]["status"] == {"401 unauthenticated": 10}
    assert run.json["figures"]["orders"] == 0
    await server.stop()


async def test_header_buyers_from_a_trusted_proxy(start_server: StartServer, tmp_path: Path) -> None:
    """`--auth header`: the buyer in X-User-Id from 127.0.0.1 (a trusted proxy) buys and is audited."""
    config = SALE + '\n[auth]\nmode = "header"\n\n[server]\ntrusted_proxies = ["127.0.0.1"]\n'
    server = await start_server(config)
    run = await run_load(server.url, "--sku", "hot", "--buyers", "40", "--duration", "0.5", "--auth", "header",
                         json_to=tmp_path / "h.json")  # fmt: skip
    assert run.code == 0, run.out + run.err
    assert run.json is not None
    assert run.json["figures"]["orders"] == 30
    await server.stop()


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


def _room(pow_bits: int) -> str:
    now = datetime.now(UTC)
    opens, starts = (now - timedelta(minutes=2)), (now - timedelta(minutes=1))
    return (
        f"\n[waiting_room]\nopens_at = {opens:%Y-%m-%dT%H:%M:%SZ}\nstarts_at = {starts:%Y-%m-%dT%H:%M:%SZ}\n"
        f"admit_rate = 1000\nadmit_burst = 1000\nheartbeat = 1\npow_bits = {pow_bits}\n"
    )


async def test_the_waiting_room_end_to_end(start_server: StartServer, tmp_path: Path) -> None:
    """Proof of work, join, polls at the told interval, the pass on the purchase: every buyer gets in and buys."""
    server = await start_server('[[sku]]\nid = "hot"\nstock = 100\n' + _room(4))
    for follow in ("poll", "sse"):
        run = await run_load(server.url, "--sku", "hot", "--buyers", "25", "--duration", "0.5", "--room", "on",
                             "--room-follow", follow, json_to=tmp_path / f"{follow}.json")  # fmt: skip
        assert run.code == 0, run.out + run.err
        assert run.json is not None
        assert run.json["phases"]["purchase"]["status"] == {"200 reserved": 25}, follow
        assert run.json["phases"]["join"]["count"] == 50  # a challenge and a join per buyer
        assert run.json["phases"]["poll"]["count"] >= 25
        assert run.json["schedule"]["skipped"] == {}
    await server.stop()
