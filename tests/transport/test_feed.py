"""The live stock feeds (SSE) through a real server: snapshot, changes, coalescing, bounds."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from typing import Any

import orjson
import pytest
from aiohttp import ClientPayloadError, ClientResponse
from structlog.testing import capture_logs

from flashsale import SkuConfig
from flashsale.config import FeedConfig
from flashsale.transport import _feed
from flashsale.transport._fanout import Fanout
from flashsale.transport._feed import FEED

from .conftest import MakeClient


@pytest.fixture(autouse=True, params=["process", "loop"])
def writer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every feed test runs with the writer process and with the loop writing (where no writer process can run)."""
    if request.param == "loop":
        monkeypatch.setattr(_feed, "available", lambda: False)
    return str(request.param)


async def next_event(resp: ClientResponse, wait: float = 5.0) -> tuple[str, Any]:
    """The next SSE event of ``resp`` as (event name, parsed data); comment lines are skipped."""
    while True:
        block = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), wait)
        name, data = "message", None
        for line in block.decode().splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = orjson.loads(line[6:])
        if data is not None:
            return name, data


SKUS = (SkuConfig("moutai-53", stock=100, per_user_limit=2), SkuConfig("tshirt", stock=1000))


async def test_first_events_are_a_snapshot_per_sku(make_client: MakeClient) -> None:
    """GET /v1/events opens an event stream whose first events are each SKU exactly as GET /v1/skus/{sku}."""
    client = await make_client(*SKUS)
    resp = await client.get("/v1/events")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream"
    events = [await next_event(resp) for _ in range(2)]
    assert [name for name, _ in events] == ["sku", "sku"]
    assert [data["sku"] for _, data in events] == ["moutai-53", "tshirt"]
    for _, data in events:
        assert data == await (await client.get(f"/v1/skus/{data['sku']}")).json()
    resp.close()


async def test_sku_feed_has_only_that_sku_and_follows_purchases(make_client: MakeClient) -> None:
    """GET /v1/skus/{sku}/events snapshots that SKU, then sends its change after a purchase."""
    client = await make_client(*SKUS)
    resp = await client.get("/v1/skus/moutai-53/events")
    _, snap = await next_event(resp)
    assert (snap["sku"], snap["remaining"]) == ("moutai-53", 100)
    assert (await client.post("/v1/purchase", json={"sku": "tshirt", "user": "a"})).status == 200
    assert (await client.post("/v1/purchase", json={"sku": "moutai-53", "user": "a", "qty": 2})).status == 200
    name, change = await next_event(resp)
    assert (name, change["sku"], change["remaining"], change["reserved"]) == ("sku", "moutai-53", 98, 2)
    assert change == await (await client.get("/v1/skus/moutai-53")).json()
    resp.close()


async def test_unknown_sku_feed_is_a_json_404(make_client: MakeClient) -> None:
    """A feed of a SKU that is not on sale is a JSON 404, not a stream."""
    client = await make_client(*SKUS)
    resp = await client.get("/v1/skus/nope/events")
    assert (resp.status, (await resp.json())["error"]) == (404, "unknown_sku")
    assert client.app[FEED].listeners == 0  # type: ignore[index]


async def test_changes_are_coalesced_to_max_rate(make_client: MakeClient) -> None:
    """Forty purchases in a row reach a listener as at most max_rate events per second, the last one exact."""
    client = await make_client(*SKUS, feed=FeedConfig(max_rate=2.0))
    resp = await client.get("/v1/skus/tshirt/events")
    await next_event(resp)
    began = time.monotonic()
    for i in range(40):
        assert (await client.post("/v1/purchase", json={"sku": "tshirt", "user": f"u{i}"})).status == 200
    events = 0
    while True:
        _, data = await next_event(resp)
        events += 1
        if data["remaining"] == 960:
            break
    elapsed = time.monotonic() - began
    assert events <= elapsed * 2.0 + 2
    assert events < 40
    resp.close()


async def test_listener_bound_answers_503_overloaded(make_client: MakeClient) -> None:
    """Beyond [feed] max_listeners a feed is refused 503 overloaded; a place frees when a listener leaves."""
    client = await make_client(*SKUS, feed=FeedConfig(max_listeners=2, ping_interval=0.05))
    first = await client.get("/v1/events")
    second = await client.get("/v1/skus/tshirt/events")
    await next_event(first)
    await next_event(second)
    third = await client.get("/v1/events")
    assert third.status == 503
    assert (await third.json())["error"] == "overloaded"
    first.close()
    hub = client.app[FEED]  # type: ignore[index]
    deadline = time.monotonic() + 5
    while hub.listeners > 1:  # the hub notices the closed connection at its next write (a ping)
        assert time.monotonic() < deadline, "the closed listener was never noticed"
        await asyncio.sleep(0.02)  # sleep-ok: polling the server's own count with a deadline
    again = await client.get("/v1/events")
    assert again.status == 200
    again.close()
    second.close()


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_slow_listener_is_dropped_without_memory_growing(make_client: MakeClient) -> None:
    """A listener that stops reading is dropped once max_buffer bytes wait for it; others keep their events."""
    skus = tuple(SkuConfig(f"sku-{i:02d}-{'x' * 50}", stock=1_000_000) for i in range(20))
    client = await make_client(*skus, feed=FeedConfig(max_rate=1000.0, max_buffer=4096))
    hub = client.app[FEED]  # type: ignore[index]
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(slow, (client.host, client.port))
    await loop.sock_sendall(slow, b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
    healthy = await client.get("/v1/events")
    deadline = time.monotonic() + 30
    while hub.listeners < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)  # sleep-ok: polling the server's own count with a deadline
    rss = _rss_kib()
    n = 0
    with capture_logs() as logs:
        while not hub.dropped:
            assert time.monotonic() < deadline, "the slow listener was never dropped"
            await asyncio.gather(*(client.post("/v1/purchase", json={"sku": s.id, "user": f"u{n}"}) for s in skus))
            n += 1
            while healthy.content.is_eof() is False and healthy.content._buffer:
                await healthy.content.readany()
    dropped = [e for e in logs if e["event"] == "feed listener dropped"]
    assert len(dropped) == 1
    assert dropped[0]["buffered"] <= 4096 + 4096  # at most the bound plus one frame of 20 events
    assert hub.listeners == 1
    assert _rss_kib() - rss < 20_000  # KiB: no unbounded buffer for the reader that stalled
    # The healthy listener still follows the sale.
    await client.post("/v1/purchase", json={"sku": skus[0].id, "user": "last"})
    while True:
        _, data = await next_event(healthy)
        if data["sku"] == skus[0].id and data["reserved"] == n + 1:
            break
    slow.close()
    healthy.close()


async def wait_for_count(hub: Any, attribute: str, value: int) -> None:
    deadline = time.monotonic() + 10
    while getattr(hub, attribute) != value:
        assert time.monotonic() < deadline, f"{attribute} stayed {getattr(hub, attribute)}, not {value}"
        await asyncio.sleep(0.02)  # sleep-ok: polling the server's own count with a deadline


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_client_that_closes_is_forgotten_before_any_ping(make_client: MakeClient) -> None:
    """A feed whose client closes leaves the hub without waiting for a keep-alive comment to fail."""
    client = await make_client(*SKUS, feed=FeedConfig(ping_interval=3600))
    hub = client.app[FEED]  # type: ignore[index]
    first, second = await client.get("/v1/events"), await client.get("/v1/skus/tshirt/events")
    await next_event(first)
    await next_event(second)
    first.close()
    if isinstance(hub._out, Fanout):  # the loop notices a closed client only when it next writes to it
        await wait_for_count(hub, "listeners", 1)
    assert (await client.post("/v1/purchase", json={"sku": "tshirt", "user": "a"})).status == 200
    _, change = await next_event(second)
    assert change["remaining"] == 999
    await wait_for_count(hub, "listeners", 1)
    second.close()


async def test_shutdown_with_feeds_attached_ends_them_cleanly(make_client: MakeClient) -> None:
    """Stopping the server ends every open feed, stops the writer process, and logs no error."""
    client = await make_client(*SKUS)
    hub = client.app[FEED]  # type: ignore[index]
    feeds = [await client.get(path) for path in ("/v1/events", "/v1/skus/tshirt/events", "/v1/skus/tshirt/events")]
    for resp in feeds:
        await next_event(resp)
    pid = hub._out.pid if isinstance(hub._out, Fanout) else None
    with capture_logs() as logs:
        await client.server.close()
        for resp in feeds:  # each stream ends: the server closed it
            async with asyncio.timeout(10):
                while await resp.content.readany():
                    pass
    assert [e for e in logs if e["log_level"] in ("error", "warning", "critical")] == []
    assert hub.listeners == 0
    if pid is not None:
        assert not alive(pid), "the writer process outlived the server"
    for resp in feeds:
        resp.close()


@pytest.mark.parametrize("writer", ["process"], indirect=True)
async def test_feeds_end_when_the_writer_process_dies(make_client: MakeClient, writer: str) -> None:
    """If the writer process is killed its feeds end (clients reconnect) and the next feed starts a new one."""
    client = await make_client(*SKUS)
    hub = client.app[FEED]  # type: ignore[index]
    resp = await client.get("/v1/skus/tshirt/events")
    await next_event(resp)
    pid = hub._out.pid

    async def read_to_the_end() -> None:
        async with asyncio.timeout(10):
            while await resp.content.readany():
                pass

    with capture_logs() as logs:
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ClientPayloadError):  # cut mid-stream: not a clean end
            await read_to_the_end()
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["feed writer process ended"]
    assert hub.listeners == 0
    again = await client.get("/v1/skus/tshirt/events")
    await next_event(again)
    assert hub._out.pid not in (None, pid)
    assert (await client.post("/v1/purchase", json={"sku": "tshirt", "user": "a"})).status == 200
    _, change = await next_event(again)
    assert change["remaining"] == 999
    again.close()


async def test_a_snapshot_larger_than_any_buffer_arrives_whole_before_the_changes(make_client: MakeClient) -> None:
    """A feed of 400 SKUs gets its ~100 KB snapshot whole and in order, then the next change, framed right."""
    skus = tuple(SkuConfig(f"sku-{i:03d}-{'y' * 90}", stock=1000) for i in range(400))
    client = await make_client(*skus, feed=FeedConfig(max_buffer=1 << 20))
    resp = await client.get("/v1/events")
    assert (await client.post("/v1/purchase", json={"sku": skus[7].id, "user": "a"})).status == 200
    seen = [await next_event(resp) for _ in range(len(skus))]
    assert [data["sku"] for _, data in seen] == [s.id for s in skus]
    while True:  # the snapshot may have been taken after the purchase; else its change follows
        if seen[7][1]["remaining"] == 999:
            break
        _, data = await next_event(resp)
        assert data["sku"] == skus[7].id
        if data["remaining"] == 999:
            break
    assert (await client.post("/v1/purchase", json={"sku": skus[399].id, "user": "b"})).status == 200
    _, data = await next_event(resp)
    assert (data["sku"], data["remaining"]) == (skus[399].id, 999)
    resp.close()


async def test_idle_feeds_get_the_keep_alive_comment(make_client: MakeClient) -> None:
    """Every ping_interval an idle feed gets a ': ping' comment line (through whichever writer owns it)."""
    client = await make_client(*SKUS, feed=FeedConfig(ping_interval=0.05))
    every, one = await client.get("/v1/events"), await client.get("/v1/skus/tshirt/events")
    for resp in (every, one):
        await next_event(resp)
        async with asyncio.timeout(5):
            while (block := await resp.content.readuntil(b"\n\n")) != b": ping\n\n":
                assert block.startswith(b"event: sku"), block
        resp.close()
