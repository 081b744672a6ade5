"""The server around the app: slow clients cut off, connections capped, parser errors answered as JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from flashsale import Config, ConnectionsConfig, SaleEngine, SkuConfig, StoreConfig
from flashsale.transport import create_app
from flashsale.transport._server import serve
from flashsale.transport._trouble import TROUBLE

Serve = Callable[..., Awaitable[int]]
ATTACKER = "127.0.0.1"
BUYER = "127.0.0.2"  # another loopback address: another client as far as the caps can tell
POST = b"POST /v1/purchase HTTP/1.1\r\nHost: x\r\n"


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Serve]:
    """Run :func:`serve` in this test's loop on a free port; stopped (gracefully) at teardown."""
    stops: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(**connections: float) -> int:
        config = Config(
            skus=(SkuConfig("tshirt", stock=100_000),),
            store=StoreConfig(path=str(tmp_path / "orders.db")),
            connections=ConnectionsConfig(**connections),  # type: ignore[arg-type]
        )
        bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        app = create_app(config, engine=SaleEngine(config))
        task = asyncio.create_task(
            serve(app, config, host="0.0.0.0", port=0, listening=bound.set_result, stop=stop, signals=False)
        )
        stops.append((stop, task))
        return await asyncio.wait_for(bound, 20)

    yield start
    for stop, task in stops:
        stop.set()
        await asyncio.wait_for(task, 30)


async def raw(port: int, request: bytes, *, source: str = ATTACKER) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as is; return the answer's status, headers and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 10)
        return int(lines[0].split()[1]), headers, body
    finally:
        writer.close()


def buyer_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(BUYER, 0)))


async def test_slowloris_is_cut_off_and_others_are_served(live: Serve) -> None:
    """2,000 dripping connections from one address: 100 at a time, each cut at the header timeout; a buyer is served."""
    port = await live(header_timeout=1.0, max_per_ip=100, max_total=1_000)
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    before = TROUBLE.totals.get("connection refused: too many from one address", 0)
    for _ in range(2_000):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0))
        writer.write(b"POST /v1/purchase HTTP/1.1\r\nHost: x\r\n")
        opened.append((reader, writer))
    started = time.monotonic()

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        """One header line every 0.2 s, as long as the server keeps the connection; what it said until it closed."""
        said = b""
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(b"X-Slow: 1\r\n")
                with contextlib.suppress(TimeoutError):
                    chunk = await asyncio.wait_for(reader.read(65536), 0.2)  # the attack's own pacing, not a wait
                    if not chunk:
                        break
                    said += chunk
        return said

    dripping = [asyncio.create_task(drip(r, w)) for r, w in opened]
    async with buyer_session() as session:
        for i in range(50):
            body = {"sku": "tshirt", "user": f"b{i}"}
            async with session.post(f"http://127.0.0.1:{port}/v1/purchase", json=body) as r:
                assert r.status == 200
    answers = await asyncio.wait_for(asyncio.gather(*dripping), 20)
    elapsed = time.monotonic() - started
    for _, writer in opened:
        writer.close()
    # Refused at once: a 503, or a reset when the refused client had already sent bytes (the kernel's rule).
    # At most 100 held at a time; as the first are cut at the header timeout, later ones take their places.
    refused = TROUBLE.totals.get("connection refused: too many from one address", 0) - before
    assert 1_000 <= refused <= 1_900
    assert not any(a.startswith(b"HTTP/1.1 2") for a in answers)  # none of them ever got a request through
    assert elapsed < 10  # the admitted 100 were cut at the header timeout, not held while they drip


async def test_total_cap_and_body_timeout(live: Serve) -> None:
    """Beyond max_total, 503 at once; a body that stops arriving gets a JSON 408 after body_timeout."""
    port = await live(body_timeout=0.5, max_total=5, max_per_ip=100)
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
    status, headers, body = await raw(port, b"", source=BUYER)  # the refusal comes before any request
    assert (status, headers["content-type"], json.loads(body)["error"]) == (503, "application/json", "overloaded")
    for _, writer in held:
        writer.close()
        await writer.wait_closed()
    head = b"POST /v1/purchase HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    status, _, body = await raw(port, head + b'{"sku": "tsh', source=BUYER)
    assert (status, json.loads(body)["error"]) == (408, "request_timeout")


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GARBAGE\r\n\r\n", 400, "invalid_request"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 400, "invalid_request"),
        (b"POST /v1/purchase HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n", 400, "invalid_request"),
        (POST + b"Expect: foo\r\nContent-Length: 2\r\n\r\n{}", 417, "expectation_failed"),
        (POST + b"Expect: \xff\xfe\r\nContent-Length: 2\r\n\r\n{}", 417, "expectation_failed"),
    ],
    ids=["bad request line", "oversized header", "bad content-length", "unknown expect", "non-utf8 expect"],
)
async def test_parser_errors_are_json(live: Serve, request_bytes: bytes, status: int, code: str) -> None:
    """Requests aiohttp refuses before any handler runs get the JSON error shape too, and no traceback is logged."""
    port = await live()
    with capture_logs() as logs:
        got, headers, body = await raw(port, request_bytes)
    assert (got, headers["content-type"]) == (status, "application/json")
    payload = json.loads(body)
    assert payload["error"] == code
    assert payload["detail"]
    assert not any("exc_info" in e or "exception" in e for e in logs)


async def test_trouble_is_one_line_per_kind_per_interval(live: Serve) -> None:
    """200 malformed requests log a line at once and a summary with the count per interval, not 200 lines."""
    port = await live()
    loop = asyncio.get_running_loop()
    TROUBLE.interval = 0.5
    try:
        with capture_logs() as logs:
            for _ in range(200):
                await raw(port, b"GARBAGE\r\n\r\n")
            summary = loop.create_future()
            loop.call_later(0.6, summary.set_result, None)  # past the interval: the summary has been logged
            await summary
    finally:
        TROUBLE.interval = 10.0
    lines = [e for e in logs if e["event"] == "malformed request"]
    assert sum(e.get("count", 1) for e in lines) == 200  # every one counted ...
    assert len(lines) <= 10  # ... in two lines per half second (a loaded machine takes a few)
    assert lines[-1]["repeated"] is True


@pytest.fixture
def threaded(tmp_path: Path) -> Iterator[int]:
    """One real server for the test (all its examples), in a thread of its own with its own loop; its port."""
    config = Config(
        skus=(SkuConfig("tshirt", stock=10**9),),
        store=StoreConfig(path=str(tmp_path / "orders.db")),
        connections=ConnectionsConfig(header_timeout=2.0, body_timeout=0.5),
    )
    bound: queue.Queue[int] = queue.Queue()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def run() -> None:
        app = create_app(config, engine=SaleEngine(config))
        loop.run_until_complete(
            serve(app, config, host="127.0.0.1", port=0, listening=bound.put, stop=stop, signals=False)
        )

    thread = threading.Thread(target=run, name="fuzzed-server")
    thread.start()
    yield bound.get(timeout=20)
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)
    loop.close()


def exchange(port: int, request: bytes) -> tuple[int, str, bytes]:
    """Send raw bytes, read one whole answer: (status, content type, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"closed without an answer: {data!r}"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        while len(body) < int(headers.get("content-length", "0")):
            chunk = sock.recv(65536)
            assert chunk, "closed mid-answer"
            body += chunk
    return int(lines[0].split()[1]), headers.get("content-type", ""), body


NAMES = st.sampled_from(
    [b"Expect", b"Content-Length", b"Transfer-Encoding", b"Content-Type", b"X-Request-Id", b"Idempotency-Key",
     b"Host", b"Connection", b"X-Forwarded-For", b"Upgrade", b"Content-Encoding", b"Accept"]
) | st.binary(min_size=1, max_size=20)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAMES, value=st.binary(max_size=80))
def test_no_header_value_gives_a_500(threaded: int, name: bytes, value: bytes) -> None:
    """Any header name and any bytes as its value: never a 5xx, and every error is the JSON shape."""
    body = b'{"sku": "tshirt", "user": "fuzz"}'
    request = (
        b"POST /v1/purchase HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
        + name + b": " + value + b"\r\n"
        + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip
    status, content_type, answer = exchange(threaded, request)
    assert status < 500, answer
    if status >= 400:
        assert content_type == "application/json", answer
        assert set(json.loads(answer)) >= {"error", "detail"}


async def test_a_client_gone_mid_body_is_not_an_error(live: Serve) -> None:
    """A client that closes halfway through its body is counted as gone (info), never logged as an unhandled error."""
    port = await live()
    before = dict(TROUBLE.totals)
    gone = TROUBLE.watch("client disconnected")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(POST + b"Content-Length: 100\r\n\r\n" + b'{"sku": "tsh')
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    assert await reader.read() == b""
    await asyncio.wait_for(gone.wait(), 5)
    assert TROUBLE.totals.get("unhandled error", 0) == before.get("unhandled error", 0)


async def test_answers_held_to_the_end_of_the_pass_arrive_whole_and_in_order(live: Serve) -> None:
    """Answers leave together at the end of a loop pass (transport/_batched_writes.py): none lost, none reordered.

    Twenty purchases pipelined in one write on one connection, 40 such connections at once, then a
    ``Connection: close`` purchase whose answer must arrive whole before the server closes.
    """
    port = await live()

    def purchase(user: str, extra: str = "") -> bytes:
        body = json.dumps({"sku": "tshirt", "user": user}).encode()
        head = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nX-Request-Id: {user}\r\n{extra}\r\n"
        return POST + head.encode() + body

    async def pipelined(conn: int) -> list[tuple[int, str, str]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(BUYER, 0))
        try:
            writer.write(b"".join(purchase(f"c{conn}-{i}") for i in range(20)))
            answers = []
            for _ in range(20):
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                body = json.loads(await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10))
                answers.append((int(lines[0].split()[1]), headers["x-request-id"], body["order_id"]))
            return answers
        finally:
            writer.close()

    every = await asyncio.gather(*(pipelined(c) for c in range(40)))
    for conn, answers in enumerate(every):
        assert [(status, rid) for status, rid, _ in answers] == [(200, f"c{conn}-{i}") for i in range(20)]
    assert len({order for answers in every for _, _, order in answers}) == 800

    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(BUYER, 0))
    writer.write(purchase("closer", "Connection: close\r\n"))
    said = await asyncio.wait_for(reader.read(), 10)  # everything until the server closes
    writer.close()
    head, _, body = said.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert json.loads(body)["result"] == "reserved"
