"""Several ``flashsale serve`` processes on one Redis and one PostgreSQL: one sale, every invariant held.

Real processes, real servers, thousands of concurrent buyers over HTTP.
Waits are polls with a deadline against those external processes.
"""

from __future__ import annotations

import asyncio
import collections
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
import redis

from flashsale import RedisConfig
from flashsale.transport import main
from tests.distributed.conftest import FLASHSALE, RedisServer, Workers, free_port, wait_until

STOCK = 300
LIMIT = 2


def write_config(tmp: Path, redis_config: RedisConfig, pg_url: str, stock: int = STOCK) -> Path:
    path = tmp / "sale.toml"
    path.write_text(
        f"""backend = "redis"

[[sku]]
id = "moutai-53"
stock = {stock}
per_user_limit = {LIMIT}

[redis]
url = "{redis_config.url}"
prefix = "{redis_config.prefix}"
breaker_failures = 3
breaker_reset = 0.2

[postgres]
url = "{pg_url}"
batch = 200
claim_idle = 1.0

[server]
log_level = "info"

[engine]
tick_interval = 0.2
""",
        encoding="utf-8",
    )
    return path


async def buy(session: aiohttp.ClientSession, port: int, user: str) -> tuple[int, dict[str, Any]]:
    async with session.post(
        f"http://127.0.0.1:{port}/v1/purchase", json={"sku": "moutai-53", "user": user, "qty": 1}
    ) as resp:
        return resp.status, await resp.json()


async def stampede(
    ports: list[int], users: int, tries: int, concurrency: int = 200, *, dropped_ok: bool = False
) -> list[tuple[str, int, Any]]:
    """``users`` buyers, each trying ``tries`` times, spread over ``ports``; ``concurrency`` requests at once.

    With ``dropped_ok`` a request whose connection fails (its server was
    killed) is status 0: no answer, so the buyer was promised nothing.
    """
    jobs = [(f"u{i}", ports[(i + t) % len(ports)]) for t in range(tries) for i in range(users)]
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(user: str, port: int) -> tuple[str, int, Any]:
            async with gate:
                try:
                    status, body = await buy(session, port, user)
                except aiohttp.ClientError:
                    if not dropped_ok:
                        raise
                    return user, 0, {}
                return user, status, body

        return await asyncio.gather(*(one(u, p) for u, p in jobs))


def ledger_meta(redis_config: RedisConfig) -> dict[str, int]:
    client = redis.Redis.from_url(redis_config.url, decode_responses=True)
    meta = client.hgetall(f"{redis_config.prefix}:{{moutai-53}}:meta")
    return {k: int(meta[k]) for k in ("stock", "remaining", "reserved", "paid")}


def pg_orders(pg_url: str) -> list[tuple[str, str, str]]:
    try:
        with psycopg.connect(pg_url, connect_timeout=2) as db:
            return db.execute("SELECT order_id, user_id, status FROM orders").fetchall()
    except psycopg.Error:  # the sink may not have created the table yet
        return []


def assert_held(answers: list[tuple[str, int, Any]], redis_config: RedisConfig, pg_url: str) -> set[str]:
    """No oversell, per-user limits, no 5xx but 503; every confirmed order in PostgreSQL. Returns confirmed ids."""
    statuses = collections.Counter(s for _, s, _ in answers)
    assert set(statuses) <= {0, 200, 409, 503}, statuses
    confirmed = {body["order_id"] for _, s, body in answers if s == 200}
    assert len(confirmed) == statuses[200]  # no order id handed out twice
    per_user = collections.Counter(u for u, s, _ in answers if s == 200)
    assert max(per_user.values()) <= LIMIT
    meta = ledger_meta(redis_config)
    assert meta["remaining"] + meta["reserved"] + meta["paid"] == meta["stock"] == STOCK
    assert len(confirmed) <= meta["reserved"]  # a 503 whose answer was lost may hold units; never the reverse
    wait_until(lambda: len(pg_orders(pg_url)) == meta["reserved"], 30.0, "every order in PostgreSQL")
    rows = pg_orders(pg_url)
    assert confirmed <= {r[0] for r in rows}
    assert max(collections.Counter(r[1] for r in rows).values()) <= LIMIT
    return confirmed


def test_workers_and_another_server_sell_exactly_the_stock(
    workers: Workers, tmp_path: Path, redis_config: RedisConfig, pg_url: str
) -> None:
    """``--workers 2`` plus a third process: 3,000 purchases by 1,000 buyers sell exactly 300, at most 2 each."""
    config = write_config(tmp_path, redis_config, pg_url)
    shared, other = free_port(), free_port()
    pool = workers.start(config, shared, "--workers", "2")
    workers.start(config, other)
    answers = asyncio.run(stampede([shared, other], users=1000, tries=3))
    statuses = collections.Counter(s for _, s, _ in answers)
    confirmed = assert_held(answers, redis_config, pg_url)
    assert statuses[503] == 0, statuses
    assert len(confirmed) == STOCK
    assert ledger_meta(redis_config)["remaining"] == 0
    pool.send_signal(signal.SIGTERM)  # forwarded to both workers; the parent exits once they have
    assert pool.wait(timeout=30) == 0
    stopped = [e for e in workers.events(pool) if e.get("event") == "workers stopped"]
    assert stopped[0]["exit_codes"] == [0, 0]


@pytest.mark.parametrize(
    ("backend", "extra", "says"),
    [
        ("memory", ["--workers", "2"], 'needs backend = "redis"'),
        ("redis", ["--workers", "0"], "--workers must be >= 1"),
        ("redis", ["--workers", "2", "--port", "0"], "needs a fixed port"),
    ],
)
def test_workers_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str, extra: list[str], says: str
) -> None:
    """--workers that cannot work exits 2 with the reason, before binding or connecting to anything."""
    path = tmp_path / "sale.toml"
    path.write_text(f'backend = "{backend}"\n[[sku]]\nid = "a"\nstock = 1\n', encoding="utf-8")
    assert main(["serve", "--config", str(path), *extra]) == 2
    assert says in capsys.readouterr().err


def test_unreachable_redis_at_start_exits_1(tmp_path: Path, pg_url: str) -> None:
    """A worker that cannot open the ledger logs one "cannot start" line with the reason and exits 1."""
    config = write_config(tmp_path, RedisConfig(url=f"redis://127.0.0.1:{free_port()}/0"), pg_url)
    done = subprocess.run(
        [FLASHSALE, "serve", "--config", str(config), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    failed = [e for e in events if e["event"] == "cannot start"]
    assert "Connection refused" in failed[0]["reason"]


def test_keys_and_rate_limits_span_processes(
    workers: Workers, tmp_path: Path, redis_config: RedisConfig, pg_url: str
) -> None:
    """One Idempotency-Key sent to two servers at once buys once; a per-user bucket of 2 counts both servers."""
    config = write_config(tmp_path, redis_config, pg_url)
    config.write_text(config.read_text() + "\n[limits]\nper_user = { rate = 0.01, burst = 2 }\n", encoding="utf-8")
    ports = [free_port(), free_port()]
    for port in ports:
        workers.start(config, port)

    async def run() -> tuple[list[tuple[int, Any]], list[int]]:
        async with aiohttp.ClientSession() as session:

            async def keyed(user: str, port: int) -> tuple[int, Any]:
                async with session.post(
                    f"http://127.0.0.1:{port}/v1/purchase",
                    json={"sku": "moutai-53", "user": user},
                    headers={"Idempotency-Key": f"key-{user}"},
                ) as resp:
                    return resp.status, await resp.json()

            twice = await asyncio.gather(*(keyed(f"k{i}", port) for i in range(40) for port in ports))
            limited = [(await buy(session, ports[n % 2], "busy"))[0] for n in range(3)]
            return twice, limited

    twice, limited = asyncio.run(run())
    for i in range(40):  # each buyer's two answers, one from each server, are the same order
        (s1, b1), (s2, b2) = twice[2 * i], twice[2 * i + 1]
        assert s1 == s2 == 200
        assert b1["order_id"] == b2["order_id"]
    assert limited == [200, 200, 429]
    assert ledger_meta(redis_config)["reserved"] == 40 + 2


def test_redis_restarted_mid_sale(
    workers: Workers, tmp_path: Path, redis_server: RedisServer, redis_config: RedisConfig, pg_url: str
) -> None:
    """Redis killed mid-sale: 503s and readyz false while down; back on its AOF, both servers sell on, no oversell."""
    config = write_config(tmp_path, redis_config, pg_url)
    ports = [free_port(), free_port()]
    for port in ports:
        workers.start(config, port)
    first = asyncio.run(stampede(ports, users=100, tries=1))
    assert collections.Counter(s for _, s, _ in first) == {200: 100}
    redis_server.kill()
    try:
        down = asyncio.run(stampede(ports, users=20, tries=1, concurrency=1))
        assert {(s, b["error"]) for _, s, b in down} == {(503, "unavailable")}
        for port in ports:
            status, checks = asyncio.run(readyz(port))
            assert (status, checks["redis_ok"]) == (503, False)
    finally:
        redis_server.start()

    def serving() -> bool:
        return all(asyncio.run(readyz(port))[1]["redis_ok"] for port in ports)

    wait_until(serving, 20.0, "both servers to see Redis again")
    rest = asyncio.run(stampede(ports, users=1000, tries=1))
    answers = first + down + rest
    confirmed = assert_held(answers, redis_config, pg_url)
    assert len(confirmed) == STOCK
    assert ledger_meta(redis_config)["remaining"] == 0


def test_worker_killed_mid_sale_loses_no_confirmed_order(
    workers: Workers, tmp_path: Path, redis_config: RedisConfig, pg_url: str
) -> None:
    """SIGKILL one of two servers mid-sale: the other's sink reclaims the dead one's entries; every 200 reaches PG."""
    config = write_config(tmp_path, redis_config, pg_url)
    ports = [free_port(), free_port()]
    victim = workers.start(config, ports[0])
    workers.start(config, ports[1])

    async def sale() -> list[tuple[str, int, Any]]:
        task = asyncio.create_task(stampede(ports, users=1000, tries=1, concurrency=50, dropped_ok=True))
        sold = lambda: ledger_meta(redis_config)["reserved"] >= STOCK // 3  # noqa: E731
        await asyncio.to_thread(wait_until, sold, 30.0, "a third of the stock sold")
        victim.send_signal(signal.SIGKILL)
        return await task

    answers = asyncio.run(sale())
    confirmed = assert_held(answers, redis_config, pg_url)
    assert len(confirmed) >= STOCK // 3


async def readyz(port: int) -> tuple[int, dict[str, bool]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/readyz", timeout=aiohttp.ClientTimeout(total=5)) as resp,
    ):
        return resp.status, (await resp.json())["checks"]
