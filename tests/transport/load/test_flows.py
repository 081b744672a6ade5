"""The flows that need the server's stock feed and waiting room, against a server that speaks their contracts.

The contract server (``servers.ContractSale``) implements issues 12 and 13 as written; the same flows also
run against ``flashsale serve`` itself (test_flows_live.py).
"""

from __future__ import annotations

import pytest

from flashsale.transport.load import Settings, send_all
from flashsale.transport.load._identity import Identity
from flashsale.transport.load._plan import Crowdspec, flag_crowd, share
from flashsale.transport.load._retry import Backoff
from flashsale.transport.load._room import pow_ok, solve

from .conftest import ServeApp
from .servers import ContractSale


def _events(buyers: int, duration: float) -> list[tuple[int, object]]:
    crowd = flag_crowd(
        run_id="f", seed=5, buyers=buyers, duration=duration, pattern="uniform", skus=["hot"], qty=1,
        prefix=None, retries=0, backoff=0.01, pay=0.0, cancel=0.0, pay_after=0.0,
    )  # fmt: skip
    return share(Crowdspec(crowd=crowd).events(), 0, 1)  # type: ignore[return-value]


def _settings(url: str, **kw: object) -> Settings:
    return Settings(url=url, run_id="f", identity=Identity(), backoff=Backoff(0), max_time=30.0, **kw)  # type: ignore[arg-type]


async def test_buyers_stop_trying_once_the_feed_says_sold_out(serve_app: ServeApp) -> None:
    """5 units, 100 buyers over a second: after the feed's sold-out event the rest are skipped, not sent."""
    sale = ContractSale(5)
    url = await serve_app(sale.app())
    outcome = await send_all(_settings(url, feed="on", room="off"), _events(100, 1.0), budget=1000)  # type: ignore[arg-type]
    assert outcome.feed.startswith("watching")
    assert len(outcome.orders) == 5
    skipped = outcome.stats.skipped["sold out (feed)"]
    assert skipped >= 50
    assert sale.requests["purchase"] + skipped == 100


async def test_feed_on_without_a_feed_is_an_error(serve_app: ServeApp) -> None:
    """`--feed on` against a server without GET /v1/events fails before the first purchase."""
    from aiohttp import web  # noqa: PLC0415

    from flashsale.transport.load._feed import FeedError  # noqa: PLC0415

    url = await serve_app(web.Application())
    with pytest.raises(FeedError, match="absent"):
        await send_all(_settings(url, feed="on", room="off"), _events(3, 0.1), budget=10)  # type: ignore[arg-type]


@pytest.mark.parametrize("follow", ["poll", "sse"])
async def test_waiting_room_proof_join_follow_and_pass(serve_app: ServeApp, follow: str) -> None:
    """Each buyer solves the challenge, joins, follows its ticket until admitted and buys with its pass:
    every purchase carries a valid pass, and the join and poll phases are measured."""
    sale = ContractSale(1000, room_bits=8)
    url = await serve_app(sale.app())
    outcome = await send_all(_settings(url, feed="off", room="on", follow=follow), _events(30, 0.5), budget=1000)  # type: ignore[arg-type]
    assert outcome.room == "admitting"
    assert sale.requests["refused"] == 0
    assert len(outcome.orders) == 30
    assert outcome.stats.phases["join"].count == 60  # a challenge and a join per buyer
    assert outcome.stats.phases["poll"].count >= 30
    assert dict(outcome.stats.skipped) == {}


def test_proof_of_work_meets_the_bits() -> None:
    """The nonce found makes sha256(challenge:nonce) start with the asked number of zero bits."""
    for bits in (0, 4, 12):
        nonce = solve("c0ffee", bits)
        assert pow_ok("c0ffee", nonce, bits)
    assert not all(pow_ok("c0ffee", str(n), 12) for n in range(8))
